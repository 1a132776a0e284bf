export { uiMiddleware, resolveUiAssetsDir, resolveUplotDistDir, isUiPath, UI_ASSETS_PREFIX } from './serve.js';
export type { UiOptions } from './serve.js';
