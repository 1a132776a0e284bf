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

/**
 * Insert-body buffers kept from one write for the next write of the same table: a backlog writes chunk after
 * chunk of about the same size, and reusing their buffers replaces a stream of large short-lived allocations
 * (garbage that the JavaScript heap frees only at its next major collection, tens of MB of resident memory
 * during a backlog) with a few buffers that stay. At most {@link maxBuffers} buffers of at most
 * {@link maxBytes} each are kept; larger ones are left to the garbage collector.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];

  /**
   * @param maxBuffers buffers kept at most (two chunks are alive at once: one written, the next encoded)
   * @param maxBytes largest buffer kept, bytes (what the pool can hold for good is `maxBuffers × maxBytes`)
   */
  constructor(
    readonly maxBuffers = 2,
    readonly maxBytes = 8 * 1024 * 1024,
  ) {
    if (!(Number.isInteger(maxBuffers) && maxBuffers >= 0)) throw new RangeError('maxBuffers must be an integer >= 0');
    if (!(maxBytes >= 0)) throw new RangeError('maxBytes must be >= 0');
  }

  /** Bytes held by the pool now. */
  get bytes(): number {
    let n = 0;
    for (const b of this.free) n += b.length;
    return n;
  }

  /** The largest kept buffer when it holds at least `min` bytes, else a new one of `min` bytes. */
  take(min: number): Buffer {
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const len = (this.free[i] as Buffer).length;
      if (len >= min && (best < 0 || len > (this.free[best] as Buffer).length)) best = i;
    }
    if (best >= 0) return this.free.splice(best, 1)[0] as Buffer;
    return Buffer.allocUnsafeSlow(min);
  }

  /** Hands a buffer back (its content is garbage from now on); kept when there is room. */
  give(buf: Buffer): void {
    if (buf.length === 0 || buf.length > this.maxBytes) return;
    if (this.free.length < this.maxBuffers) {
      this.free.push(buf);
      return;
    }
    // Full: keep the larger buffers (the next chunk of a backlog is as large as the last).
    let smallest = 0;
    for (let i = 1; i < this.free.length; i++) {
      if ((this.free[i] as Buffer).length < (this.free[smallest] as Buffer).length) smallest = i;
    }
    if (this.free.length > 0 && (this.free[smallest] as Buffer).length < buf.length) this.free[smallest] = buf;
  }
}

/** Options of {@link ByteSink}. */
export interface ByteSinkOptions {
  /** Capacity of a new sink's first buffer, bytes (a buffer kept by the pool may be larger). @default 16384 */
  firstBufferBytes?: number;
  /** Where buffers come from and go back to ({@link ByteSink.release}). @default a pool of its own that keeps nothing */
  pool?: BufferPool;
}

const NO_POOL = new BufferPool(0, 0);

/**
 * Lines written as bytes as soon as they are added (UTF-8, each followed by a newline), into one buffer that
 * doubles when full: an encoded line is garbage right away instead of living, as a string, until the insert is
 * built, and the finished body is a view of that buffer (no copy). Buffers come from a {@link BufferPool} and
 * go back to it on {@link ByteSink.release}, once the body's insert is done. Positions ({@link ByteSink.length})
 * taken between lines delimit ranges that {@link withoutRanges} can leave out of the finished body.
 */
export class ByteSink {
  private buf: Buffer;
  private pos = 0;
  private readonly pool: BufferPool;

  constructor(options: ByteSinkOptions = {}) {
    this.pool = options.pool ?? NO_POOL;
    this.buf = this.pool.take(options.firstBufferBytes ?? 16_384);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.pos;
  }

  /** Writes a line (without its newline) and its newline. */
  add(line: string): void {
    // A UTF-16 code unit takes at most 3 UTF-8 bytes: the exact length is needed only near the buffer's end.
    if (this.pos + 3 * line.length + 1 > this.buf.length) {
      const need = Buffer.byteLength(line, 'utf8') + 1;
      if (this.pos + need > this.buf.length) this.grow(this.pos + need);
    }
    this.pos += this.buf.write(line, this.pos, 'utf8');
    this.buf[this.pos++] = 10;
  }

  private grow(min: number): void {
    const next = this.pool.take(Math.max(min, 2 * this.buf.length));
    this.buf.copy(next, 0, 0, this.pos);
    this.pool.give(this.buf);
    this.buf = next;
  }

  /**
   * The whole body written so far (empty when nothing was added): a view of the sink's buffer, valid until
   * {@link release}.
   */
  body(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  /** Gives the buffer back to the pool; the sink is empty afterwards, and earlier bodies are invalid. */
  release(): void {
    this.pool.give(this.buf);
    this.buf = Buffer.alloc(0);
    this.pos = 0;
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
