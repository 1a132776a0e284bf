export type { RuntimeContext, RunningRole } from './context.js';
export { createRuntime, inProcessBusOptions } from './create.js';
export type { CreateRuntimeOptions, Runtime } from './create.js';
export { registerDefaultMetrics } from './metrics.js';
