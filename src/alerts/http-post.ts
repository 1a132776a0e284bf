import type { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { isModelwatchError } from '../common/errors.js';
import type { NotifyResult } from './notifier.js';
import { describeError, type Redactor } from './redact.js';

/** A response read through {@link sendJson}: status, a capped body and the parsed `Retry-After`. */
export interface HttpOutcome {
  result: NotifyResult;
  /** The response body (at most `maxBodyBytes`), when a response arrived. */
  body?: string;
}

/** Parses `Retry-After` (delta-seconds or HTTP-date, RFC 9110 §10.2.3) into ms; undefined when absent or bad. */
export function parseRetryAfter(value: string | string[] | null | undefined, nowMs = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v === null || v.trim() === '') return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

/**
 * Classifies an HTTP status the way Alertmanager's retrier does, plus rate limits: 2xx acknowledged;
 * 408, 429 and 5xx retryable; 3xx (redirects are never followed) and other 4xx final.
 */
export function classifyStatus(status: number, retryAfterMs: number | undefined): NotifyResult {
  if (status >= 200 && status < 300) return { ok: true, status };
  if (status >= 300 && status < 400) {
    return { ok: false, status, retryable: false, error: `receiver answered ${status}; redirects are not followed` };
  }
  const retryable = status === 408 || status === 429 || status >= 500;
  return {
    ok: false,
    status,
    retryable,
    error: `receiver answered HTTP ${status}`,
    ...(retryAfterMs !== undefined && (status === 429 || status === 503) ? { retryAfterMs } : {}),
  };
}

async function readCapped(body: Readable, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    if (size + buf.length > maxBytes) {
      chunks.push(buf.subarray(0, maxBytes - size));
      body.destroy();
      break;
    }
    chunks.push(buf);
    size += buf.length;
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** What {@link sendJson} sends. */
export interface JsonRequest {
  url: URL;
  method: 'POST' | 'PATCH' | 'PUT';
  body: unknown;
  headers?: Record<string, string>;
  dispatcher: Dispatcher;
  signal: AbortSignal;
  redactor: Redactor;
  /** @default 65536 */
  maxBodyBytes?: number;
}

/**
 * Sends a JSON body through `dispatcher` (the outbound-checked agent). Never throws; transport
 * errors come back redacted. Redirects are not followed (undici's `request` has no redirect handler).
 */
export async function sendJson(req: JsonRequest): Promise<HttpOutcome> {
  try {
    const res = await request(req.url, {
      method: req.method,
      headers: { 'content-type': 'application/json', 'user-agent': 'modelwatch', ...req.headers },
      body: JSON.stringify(req.body),
      dispatcher: req.dispatcher,
      signal: req.signal,
    });
    const text = await readCapped(res.body, req.maxBodyBytes ?? 65_536);
    const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
    return { result: classifyStatus(res.statusCode, retryAfterMs), body: text };
  } catch (err) {
    return { result: transportFailure(err, req.redactor, req.signal) };
  }
}

/** A failed attempt without a response: refused by policy (final), aborted or network (retryable). */
export function transportFailure(err: unknown, redactor: Redactor, signal?: AbortSignal): NotifyResult {
  let refused = false;
  for (let cur: unknown = err, i = 0; cur instanceof Error && i < 5; cur = cur.cause, i++) {
    if (isModelwatchError(cur, 'outbound_refused')) refused = true;
  }
  if (refused) return { ok: false, retryable: false, error: describeError(err, redactor) };
  if (signal?.aborted) return { ok: false, retryable: true, error: 'attempt timed out' };
  return { ok: false, retryable: true, error: describeError(err, redactor) };
}
