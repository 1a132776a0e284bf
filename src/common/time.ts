import { ModelwatchError, ErrorCodes } from './errors.js';

/** Parses an ISO-8601 string or epoch milliseconds (DESIGN §2) into epoch ms; names `field` on error. */
export function parseTime(value: string | number, field: string): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value)) return value;
  } else if (/^\d+$/.test(value.trim())) {
    return Number(value.trim());
  } else {
    const ms = Date.parse(value);
    if (!Number.isNaN(ms)) return ms;
  }
  throw new ModelwatchError(
    ErrorCodes.badRequest,
    `${field}: not an ISO-8601 time or epoch milliseconds: ${String(value)}`,
    {
      field,
    },
  );
}

/** Resolves an optional `from`/`to` pair with defaults `to` = now, `from` = `to` − `defaultSpanMs`. */
export function resolveWindow(
  from: string | undefined,
  to: string | undefined,
  defaultSpanMs = 3_600_000,
  now = Date.now(),
): { fromMs: number; toMs: number } {
  const toMs = to === undefined ? now : parseTime(to, 'to');
  const fromMs = from === undefined ? toMs - defaultSpanMs : parseTime(from, 'from');
  if (fromMs > toMs) throw new ModelwatchError(ErrorCodes.badRequest, 'from: must not be after to', { field: 'from' });
  return { fromMs, toMs };
}

/** Resolves after `ms`, or rejects early when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal?.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
