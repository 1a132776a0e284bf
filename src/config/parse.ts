import { ErrorCodes, ModelwatchError } from '../common/errors.js';

/** Small typed parsers for environment variables; each names the key it rejects. */
export function parseNumber(opts: {
  key: string;
  value: string;
  min?: number;
  max?: number;
  integer?: boolean;
}): number {
  const n = Number(opts.value);
  const bad =
    opts.value.trim() === '' ||
    !Number.isFinite(n) ||
    (opts.integer === true && !Number.isInteger(n)) ||
    (opts.min !== undefined && n < opts.min) ||
    (opts.max !== undefined && n > opts.max);
  if (bad) {
    const range = [opts.min !== undefined ? `>= ${opts.min}` : '', opts.max !== undefined ? `<= ${opts.max}` : '']
      .filter(Boolean)
      .join(' and ');
    throw new ModelwatchError(
      ErrorCodes.configInvalid,
      `${opts.key}: expected ${opts.integer === true ? 'an integer' : 'a number'}${range ? ' ' + range : ''}, got "${opts.value}"`,
      { field: opts.key },
    );
  }
  return n;
}

/** Parses `true/false/1/0/yes/no`. */
export function parseBoolean(opts: { key: string; value: string }): boolean {
  const v = opts.value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new ModelwatchError(ErrorCodes.configInvalid, `${opts.key}: expected true or false, got "${opts.value}"`, {
    field: opts.key,
  });
}

/** Parses one of a fixed set of strings. */
export function parseEnum<T extends string>(opts: { key: string; value: string; values: readonly T[] }): T {
  const found = opts.values.find((v) => v === opts.value.trim());
  if (found === undefined) {
    throw new ModelwatchError(
      ErrorCodes.configInvalid,
      `${opts.key}: expected one of ${opts.values.join(', ')}, got "${opts.value}"`,
      { field: opts.key },
    );
  }
  return found;
}

/** Splits a comma-separated list, dropping empty items. */
export function parseList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Parses `HOST:PORT` (IPv6 as `[::1]:PORT`). */
export function parseListen(opts: { key: string; value: string }): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(opts.value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new ModelwatchError(ErrorCodes.configInvalid, `${opts.key}: expected HOST:PORT, got "${opts.value}"`, {
      field: opts.key,
    });
  }
  return { host: (m[1] ?? m[2]) as string, port };
}
