// Entry of the detection bundle: scripts/bundle-report.mjs bundles this module and everything it imports into
// dist/cli/detect.bundle.cjs, one CommonJS script that bin/cached-script.js's `loadCachedScript` compiles with
// a V8 code cache. It exports the API a program needs to detect drift once against the store (open the store,
// parse the configuration, run the detection): loaded this way it starts several times faster than the same
// modules imported one by one. No top-level await: the bundle is CommonJS.

export { createStore } from '../store/open.js';
export { configSchema } from '../config/schema.js';
export { detectDrift } from './detect-drift.js';
export { lastSortedReadStats } from './exact/index.js';
