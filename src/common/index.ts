export { ErrorCodes, ModelwatchError, isModelwatchError, errorMessage } from './errors.js';
export type { ErrorCode, ModelwatchErrorOptions } from './errors.js';
export { createLogger, silentLogger, LogLevels } from './logger.js';
export type { Logger, LogLevel } from './logger.js';
export { parseTime, resolveWindow, sleep } from './time.js';
export { newId } from './ids.js';
export { counterOn, histogramOn, gaugeOn } from './metrics.js';
export { PairBuffer } from './pair-buffer.js';
export type { Pair, PairBufferOptions } from './pair-buffer.js';
