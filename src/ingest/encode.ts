/**
 * Insert bodies for the ingest tables in `JSONCompactEachRow`: one JSON array per row, columns by position.
 * Each line is one `JSON.stringify` of an array (V8's fast path; no per-row object with named keys, no
 * second encoding in the client), the time as epoch milliseconds (ClickHouse reads an integer into
 * `DateTime64(3)` as milliseconds), and each line becomes bytes as soon as it is made (see {@link ByteSink}).
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

/** Options of {@link ByteSink}. */
export interface ByteSinkOptions {
  /** Size of the first page, bytes; each later page is twice the previous one, up to {@link maxPageBytes}. @default 16384 */
  firstPageBytes?: number;
  /** Largest page, bytes (a longer line gets a page of its own size). @default 1048576 */
  maxPageBytes?: number;
}

/**
 * Lines written as bytes as soon as they are added (UTF-8, each followed by a newline), into pages that grow:
 * an encoded line is garbage right away instead of living, as a string, until the insert is built. Positions
 * ({@link ByteSink.length}) taken between lines delimit ranges that {@link withoutRanges} can leave out of the
 * finished body.
 */
export class ByteSink {
  private readonly pages: Buffer[] = [];
  private page: Buffer;
  private pos = 0;
  private flushed = 0;
  private readonly maxPage: number;

  constructor(options: ByteSinkOptions = {}) {
    this.page = Buffer.allocUnsafeSlow(options.firstPageBytes ?? 16_384);
    this.maxPage = options.maxPageBytes ?? 1_048_576;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.flushed + this.pos;
  }

  /** Writes a line (without its newline) and its newline. */
  add(line: string): void {
    // A UTF-16 code unit takes at most 3 UTF-8 bytes: the exact length is needed only near a page's end.
    if (this.pos + 3 * line.length + 1 > this.page.length) {
      const need = Buffer.byteLength(line, 'utf8') + 1;
      if (this.pos + need > this.page.length) this.next(need);
    }
    this.pos += this.page.write(line, this.pos, 'utf8');
    this.page[this.pos++] = 10;
  }

  private next(need: number): void {
    if (this.pos > 0) {
      this.pages.push(this.page.subarray(0, this.pos));
      this.flushed += this.pos;
    }
    this.page = Buffer.allocUnsafeSlow(Math.max(need, Math.min(this.maxPage, 2 * this.page.length)));
    this.pos = 0;
  }

  /** The whole body (empty when nothing was added); the sink is empty afterwards. */
  body(): Buffer {
    const last = this.page.subarray(0, this.pos);
    const out = this.pages.length === 0 ? last : Buffer.concat([...this.pages, last], this.length);
    this.pages.length = 0;
    this.page = Buffer.allocUnsafeSlow(0);
    this.pos = 0;
    this.flushed = 0;
    return out;
  }
}

/**
 * `body` without the byte ranges `[start, end)` in `ranges` (sorted, not overlapping): one copy of what is
 * kept, or `body` itself when nothing is left out.
 */
export function withoutRanges(body: Buffer, ranges: readonly (readonly [number, number])[]): Buffer {
  if (ranges.length === 0) return body;
  const kept: Buffer[] = [];
  let at = 0;
  let size = 0;
  for (const [start, end] of ranges) {
    if (start > at) {
      kept.push(body.subarray(at, start));
      size += start - at;
    }
    at = Math.max(at, end);
  }
  if (at < body.length) {
    kept.push(body.subarray(at));
    size += body.length - at;
  }
  return Buffer.concat(kept, size);
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
