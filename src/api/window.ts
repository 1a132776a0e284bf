import { ErrorCodes } from '../common/errors.js';
import { parseTime, resolveWindow } from '../common/time.js';
import { ApiError } from './errors.js';

/** Default span of a window without `from`: one hour (never wider than the cap). */
const DEFAULT_SPAN_MS = 3_600_000;

/** Names of one window's bounds in the query (`from`/`to`, or `reference_from`/`reference_to`). */
export interface WindowFields {
  from: string;
  to: string;
}

/**
 * Resolves an optional `from`/`to` pair (defaults: `to` = now, `from` = `to` − 1 h) and refuses a window wider
 * than `maxWindowMs` with a 400 naming the bound that was given (`from` when both were).
 */
export function cappedWindow(
  from: string | undefined,
  to: string | undefined,
  maxWindowMs: number,
  fields: WindowFields = { from: 'from', to: 'to' },
  now = Date.now(),
): { fromMs: number; toMs: number } {
  let fromMs: number;
  let toMs: number;
  if (fields.from === 'from') {
    ({ fromMs, toMs } = resolveWindow(from, to, Math.min(DEFAULT_SPAN_MS, maxWindowMs), now));
  } else {
    // Both bounds of a reference window are required by the caller; parse them naming their own fields.
    toMs = parseTime(to ?? '', fields.to);
    fromMs = parseTime(from ?? '', fields.from);
    if (fromMs > toMs)
      throw new ApiError(400, ErrorCodes.badRequest, `${fields.from}: must not be after ${fields.to}`, {
        field: fields.from,
      });
  }
  if (toMs - fromMs > maxWindowMs) {
    const field = from !== undefined ? fields.from : fields.to;
    throw new ApiError(
      400,
      ErrorCodes.badRequest,
      `${field}: window of ${toMs - fromMs} ms is wider than api.maxWindowMs (${maxWindowMs} ms)`,
      { field },
    );
  }
  return { fromMs, toMs };
}
