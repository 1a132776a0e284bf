export { migrate, appliedVersions, migrations, Tables } from './migrations.js';
export type { Migration, MigrateOptions } from './migrations.js';
export { clusterStatements, shardingKey, CLUSTER_NAME, LOCAL_SUFFIX } from './cluster.js';
export { ClickHouseStore, toChTime, queryMarker } from './store.js';
export type { Store, ClickHouseStoreOptions } from './store.js';
export { StoreRoles, DefaultRoleLimits, resolveRoleLimits, EncodedInsertFormats } from './port.js';
export type {
  SqlPort,
  StatementOptions,
  InsertOptions,
  StoreRole,
  RoleLimits,
  StoreSettings,
  BinaryFormat,
  BinaryQueryOptions,
  BinaryResultFile,
  EncodedInsertFormat,
  EncodedInsertOptions,
} from './port.js';
export {
  classifyStoreError,
  storeErrorCodes,
  StoreError,
  ClickHouseCodes,
  NetworkErrorCodes,
  ChdbErrorCodes,
} from './errors.js';
export type { StoreFailureClass, StoreFailureContext } from './errors.js';
export type { PredictionRow, RequestRow, LabelRow, QuarantineRow } from './rows.js';
export { openStore, createStore } from './open.js';
export type { CreateStoreOptions } from './open.js';
export { DefaultEmbeddedEngineConfig, engineConfigXml } from './engine-config.js';
export type { EmbeddedEngineConfig } from './engine-config.js';
