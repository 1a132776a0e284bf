export type { RuntimeContext, RunningRole } from './context.js';
