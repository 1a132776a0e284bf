/**
 * Insert bodies for the ingest tables in `JSONCompactEachRow`: one JSON array per row, columns by position.
 * Each line is one `JSON.stringify` of an array (V8's fast path; no per-row object with named keys, no
 * second encoding in the client), the time as epoch milliseconds (ClickHouse reads an integer into
 * `DateTime64(3)` as milliseconds), and the lines become bytes in slices so that the event loop is never held
 * for long (see {@link LineSink}).
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { EncodedInsertFormat } from '../store/port.js';
import type { PredictionRow, QuarantineRow, RequestRow } from '../store/rows.js';
import type { PayloadRow } from './payloads.js';

/** The format of every body made here. */
export const INGEST_FORMAT: EncodedInsertFormat = 'JSONCompactEachRow';

/** Column order of a `mw_predictions` line. */
export const PredictionColumns = [
  'model',
  'version',
  'ts',
  'event_id',
  'request_id',
  'row',
  'features_num',
  'features_cat',
  'outputs_num',
  'outputs_cat',
] as const;

/** Column order of a `mw_requests` line. */
export const RequestColumns = [
  'model',
  'version',
  'ts',
  'event_id',
  'request_id',
  'source',
  'route',
  'status',
  'latency_ms',
  'request_bytes',
  'response_bytes',
  'request_truncated',
  'response_truncated',
  'rows',
  'error',
] as const;

/** Column order of a `mw_payloads` line. */
export const PayloadColumns = [
  'model',
  'version',
  'ts',
  'event_id',
  'request_id',
  'source',
  'content_type',
  'content_encoding',
  'header_length',
  'size',
  'truncated',
  'storage',
  'body',
  'expires_at',
] as const;

/** Column order of a `mw_quarantine` line. */
export const QuarantineColumns = [
  'event_id',
  'request_id',
  'model',
  'source',
  'origin',
  'code',
  'field',
  'reason',
  'payload',
] as const;

/**
 * A Float64 map as JSON can carry it: JSON has no NaN/Infinity, so those become the words ClickHouse parses
 * into Float64 ('nan', 'inf', '-inf'). The map itself is returned (no copy) when every value is finite.
 */
export function jsonFloatMap(map: Record<string, number>): Record<string, number | string> {
  let out: Record<string, number | string> | undefined;
  for (const k in map) {
    const v = map[k] as number;
    if (Number.isFinite(v) || !Object.hasOwn(map, k)) continue;
    out ??= { ...map };
    out[k] = Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
  }
  return out ?? map;
}

/** Epoch ms as an integer (what `DateTime64(3)` reads as milliseconds; a fraction would read as seconds). */
function ms(ts: number): number {
  return Math.floor(ts);
}

/** One `mw_predictions` line (no newline). */
export function predictionLine(r: PredictionRow): string {
  return JSON.stringify([
    r.model,
    r.version,
    ms(r.ts),
    r.event_id,
    r.request_id,
    r.row,
    jsonFloatMap(r.features_num),
    r.features_cat,
    jsonFloatMap(r.outputs_num),
    r.outputs_cat,
  ]);
}

/** One `mw_requests` line (no newline). A non-finite latency is stored as 0. */
export function requestLine(r: RequestRow): string {
  return JSON.stringify([
    r.model,
    r.version,
    ms(r.ts),
    r.event_id,
    r.request_id,
    r.source,
    r.route,
    r.status,
    Number.isFinite(r.latency_ms) ? r.latency_ms : 0,
    r.request_bytes,
    r.response_bytes,
    r.request_truncated,
    r.response_truncated,
    r.rows,
    r.error,
  ]);
}

/** One `mw_payloads` line (no newline). */
export function payloadLine(r: PayloadRow): string {
  return JSON.stringify([
    r.model,
    r.version,
    r.ts,
    r.event_id,
    r.request_id,
    r.source,
    r.content_type,
    r.content_encoding,
    r.header_length,
    r.size,
    r.truncated,
    r.storage,
    r.body,
    r.expires_at,
  ]);
}

/** One `mw_quarantine` line (no newline). */
export function quarantineLine(r: QuarantineRow): string {
  return JSON.stringify([r.event_id, r.request_id, r.model, r.source, r.origin, r.code, r.field, r.reason, r.payload]);
}

/**
 * Collects lines and turns them into bytes a slice at a time: {@link LineSink.flush} converts what was
 * added since the last flush, so no single join or UTF-8 conversion covers a whole insert.
 */
export class LineSink {
  private lines: string[] = [];
  private parts: Buffer[] = [];
  private bytes = 0;
  private done = 0;

  /** Adds a line (without its newline). */
  add(line: string): void {
    this.lines.push(line);
  }

  /** Number of lines added so far (flushed or not). */
  get count(): number {
    return this.done + this.lines.length;
  }

  /** Converts the lines added since the last flush into bytes. */
  flush(): void {
    if (this.lines.length === 0) return;
    const b = Buffer.from(this.lines.join('\n') + '\n', 'utf8');
    this.parts.push(b);
    this.bytes += b.length;
    this.done += this.lines.length;
    this.lines = [];
  }

  /** The whole body (empty when no line was added). */
  body(): Buffer {
    this.flush();
    const out = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.bytes);
    this.parts = [];
    this.bytes = 0;
    this.done = 0;
    return out;
  }
}

/**
 * A cooperative time slicer: {@link Slicer.tick} yields to the event loop once `budgetMs` of synchronous
 * work has passed since the last yield (checked every `every` ticks), calling `beforeYield` first.
 */
export class Slicer {
  private since = performance.now();
  private n = 0;

  constructor(
    private readonly budgetMs: number,
    private readonly every = 16,
  ) {}

  /** True when the slice is used up (the caller then flushes and awaits {@link Slicer.pause}). */
  due(): boolean {
    if (++this.n < this.every) return false;
    this.n = 0;
    return performance.now() - this.since >= this.budgetMs;
  }

  /** Yields to the event loop and starts a new slice. */
  async pause(): Promise<void> {
    await yieldToLoop();
    this.since = performance.now();
    this.n = 0;
  }
}
