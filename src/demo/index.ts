// Public API of the demo folder (`modelwatch demo`).
export { runDemo, DEMO_DIR } from './run.js';
export type { RunDemoOptions } from './run.js';
export { startDemoModelServer } from './model-server.js';
export type { DemoModelServer, DemoModelServerOptions } from './model-server.js';
export {
  parseDuration,
  cadenceFor,
  timelineFor,
  MIN_DURATION_MS,
  MAX_DURATION_MS,
  DEFAULT_STORY_MS,
} from './timeline.js';
export type { DemoCadence, DemoTimeline } from './timeline.js';
export {
  DEMO_MODEL,
  DEMO_VERSION,
  DEMO_FEATURES,
  CANDIDATE_FILE,
  DRIFT_SHIFT,
  DemoData,
  demoModelBytes,
  candidateModelBytes,
  demoModelParams,
  demoModelSchema,
} from './scenario.js';
export type { DemoBatch, DemoModelConfig } from './scenario.js';
