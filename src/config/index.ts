export { loadConfig, EnvVars } from './load.js';
export type { LoadConfigOptions } from './load.js';
export { configSchema, DriftMethods, driftOverrideSchema } from './schema.js';
export type { Config, ConfigInput, DriftMethod } from './schema.js';
export {
  modelSchemaSchema,
  featureMappingSchema,
  defaultModelSchema,
  FeatureKinds,
  TaskTypes,
} from './model-schema.js';
export type { ModelSchema, FeatureMapping, FeatureKind, TaskType } from './model-schema.js';
export { parseNumber, parseBoolean, parseEnum, parseList, parseListen } from './parse.js';
