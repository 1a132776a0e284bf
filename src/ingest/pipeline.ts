import { decodeCapture, type CapturedCall } from '../protocol/capture.js';
import type { ConsumedBatch, ConsumedMessage } from '../bus/types.js';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { silentLogger } from '../common/logger.js';
import { sleep } from '../common/time.js';
import { defaultModelSchema, type ModelSchema } from '../config/model-schema.js';
import { decodeCall, type DecodedCall } from '../protocol/index.js';
import { ShadowTables, Tables } from '../store/migrations.js';
import type { Store } from '../store/store.js';
import {
  BufferPool,
  ByteSink,
  INGEST_FORMAT,
  PayloadColumns,
  PredictionColumns,
  QuarantineColumns,
  RequestColumns,
  Slicer,
  withoutRanges,
  payloadLine,
  predictionLine,
  quarantineLine,
  requestLine,
} from './encode.js';
import type { IngestMetrics } from './metrics.js';
import { buildCallRecords, envelopeQuarantine } from './records.js';
import { payloadRowOf, payloadsDisabled, type PayloadOptions } from './payloads.js';

/** Decodes one call with its model's schema (default: `decodeCall` from `src/protocol`). */
export type DecodeFn = (call: CapturedCall, schema: ModelSchema) => DecodedCall;

/** Options of {@link IngestPipeline}; the numbers mirror the `ingest.*` config section. */
export interface IngestPipelineOptions {
  /** A store write is cut once it holds this many prediction rows. @default 10000 */
  maxBatchRows?: number;
  /** A store write is cut once its records hold this many bytes. @default 16777216 */
  maxBatchBytes?: number;
  /** First delay after a failed store write; doubles per attempt. @default 200 */
  retryInitialMs?: number;
  /** Longest delay between store write attempts. @default 10000 */
  retryMaxMs?: number;
  /** Heartbeat period while waiting to retry (keeps Kafka group membership). @default 1000 */
  heartbeatEveryMs?: number;
  /** Per-model schemas, keyed by model name (`config.models`). @default {} */
  models?: Record<string, ModelSchema>;
  /** @default decodeCall */
  decode?: DecodeFn;
  /**
   * Prefix of every insert deduplication token. Kafka offsets are durable, so the default '' is right
   * there; the in-process bus restarts its offsets at 0, so {@link startIngest} gives it a per-run prefix.
   * @default ''
   */
  tokenPrefix?: string;
  /**
   * Look up the event ids of each chunk before inserting it (drops producer retries that reached the bus
   * twice). Without it, a batch the bus re-delivers is still stored once, by the insert deduplication token.
   * @default true
   */
  eventIdLookup?: boolean;
  /** Store request bodies in `mw_payloads` for shadow replay; `false` disables. @default {days: 7, models with `payloads: false` skipped} */
  payloads?: PayloadOptions | false;
  /**
   * Longest stretch of synchronous decoding or encoding, ms, before ingest yields to the event loop (what
   * else runs in the process, e.g. the sidecar of `modelwatch up`, waits at most about this long). @default 1
   */
  sliceMs?: number;
  logger?: Logger;
}

const defaults = {
  maxBatchRows: 10_000,
  maxBatchBytes: 16 * 1024 * 1024,
  retryInitialMs: 200,
  retryMaxMs: 10_000,
  heartbeatEveryMs: 1_000,
  models: {},
  decode: decodeCall,
  tokenPrefix: '',
  eventIdLookup: true,
  payloads: {},
  sliceMs: 1,
  logger: silentLogger,
} satisfies Required<IngestPipelineOptions>;

/** What the event-id lookup needs of a call. */
export interface CallKey {
  event_id: string;
  model: string;
  /** Capture time, epoch ms. */
  ts: number;
}

/** The event-id lookup's keys of a chunk's calls, as columns (call `i` is element `i` of each). */
interface CallKeyColumns {
  eventIds: string[];
  models: string[];
  /** Capture times, epoch ms. */
  ts: number[];
}

/** Numbers per call in {@link EncodedCalls.at}. */
const AT = 9;

/**
 * The decoded calls of a chunk, already encoded into its byte sinks: where each call's lines are, as
 * columns (no per-call objects or tuples, no per-row objects or line strings). A backlog keeps two chunks
 * of up to 10,000 calls alive at once (one written, the next encoded), long enough for V8 to promote them,
 * and V8 lets the old generation grow to about four times what survived its last full collection before
 * the next one: every byte a chunk keeps costs about four at the heap peak.
 */
interface EncodedCalls extends CallKeyColumns {
  /**
   * {@link AT} numbers per call, byte positions `[start, end)` in the chunk's bodies: its prediction lines
   * (consecutive), their row count, its request line, its payload line, its body quarantine line (an empty
   * range when the call's body decoded).
   */
  at: number[];
}

/** Offsets into a call's {@link AT} numbers. */
const At = {
  predictionsStart: 0,
  predictionsEnd: 1,
  rows: 2,
  requestStart: 3,
  requestEnd: 4,
  payloadStart: 5,
  payloadEnd: 6,
  quarantineStart: 7,
  quarantineEnd: 8,
} as const;

/** A range's start in {@link At}. */
type AtStart = (typeof At)['predictionsStart' | 'requestStart' | 'payloadStart' | 'quarantineStart'];

/** Whether the call whose {@link AT} numbers start at `k` has a body quarantine line (a non-empty range). */
function bodyQuarantined(at: readonly number[], k: number): boolean {
  return (at[k + At.quarantineEnd] as number) > (at[k + At.quarantineStart] as number);
}

/** The byte sinks of a chunk's four insert bodies. */
interface ChunkSinks {
  predictions: ByteSink;
  requests: ByteSink;
  payloads: ByteSink;
  quarantine: ByteSink;
}

/** A contiguous run of offsets written to the store together. */
interface Chunk {
  first: string | undefined;
  last: string;
  calls: EncodedCalls;
  sinks: ChunkSinks;
  /** Envelope quarantine lines (undecodable messages: always written, no event id). */
  envelopeQuarantine: number;
  rows: number;
  bytes: number;
}

/** One {@link BufferPool} per insert body (each table's bodies have their own size). */
type ChunkPools = Record<keyof ChunkSinks, BufferPool>;

/**
 * Largest insert-body buffer kept for the next write, bytes: 2 per table, so at most 4 × 2 × 4 MiB stay
 * allocated after a burst of large writes (1,000s of rows per call); a backlog of small calls stays below it.
 */
const POOLED_BUFFER_MAX_BYTES = 4 * 1024 * 1024;

function newPools(): ChunkPools {
  const pool = (): BufferPool => new BufferPool(2, POOLED_BUFFER_MAX_BYTES);
  return { predictions: pool(), requests: pool(), payloads: pool(), quarantine: pool() };
}

function newChunk(pools: ChunkPools): Chunk {
  return {
    first: undefined,
    last: '',
    calls: { eventIds: [], models: [], ts: [], at: [] },
    sinks: {
      predictions: new ByteSink({ pool: pools.predictions }),
      requests: new ByteSink({ pool: pools.requests }),
      payloads: new ByteSink({ pool: pools.payloads }),
      quarantine: new ByteSink({ pool: pools.quarantine }),
    },
    envelopeQuarantine: 0,
    rows: 0,
    bytes: 0,
  };
}

/** The insert bodies of a chunk. */
interface ChunkBodies {
  predictions: Buffer;
  requests: Buffer;
  payloads: Buffer;
  quarantine: Buffer;
  /** Calls whose request row is written, prediction rows written, body quarantine rows written. */
  fresh: number;
  rows: number;
  bodyQuarantine: number;
}

/** Smallest first half worth writing on its own (each write costs a lookup and up to four inserts). */
const SPLIT_MIN_ROWS = 2_500;

const noStored: StoredEventIds = { requests: new Set(), predictions: new Set() };

function noop(): void {
  // An error is handled where the promise is awaited.
}

/** Event ids of a chunk already stored, per table. */
export interface StoredEventIds {
  requests: Set<string>;
  predictions: Set<string>;
}

/** Options of {@link storedEventIds}. */
export interface StoredEventIdsOptions {
  /**
   * The range read is trusted when it returns at most `max(rangeReadMin, 2 × calls)` ids per table; beyond,
   * the lookup names the ids. @default 4096
   */
  rangeReadMin?: number;
}

/**
 * Event ids of `calls` already in `mw_requests` and in `mw_predictions`. Duplicates carry the same model
 * and capture time as the original, so only stored rows of those models within the chunk's capture-time
 * range can match, and the primary key `(model, ts, …)` prunes the read to them.
 *
 * First, one cheap read of the distinct ids stored in that range (nothing is sent but the range: usually
 * it is empty, fresh traffic being newer than what is stored), intersected with the chunk's ids here.
 * Only when the range holds more than `max(rangeReadMin, 2 × calls)` ids per table (a chunk that spans old
 * traffic) does a second read name the ids, as one JSON string parameter that the engine expands into a
 * set (a bound `Array(String)` of thousands of literals costs far more to parse).
 */
export async function storedEventIds(
  store: Store,
  calls: readonly CallKey[],
  options: StoredEventIdsOptions = {},
): Promise<StoredEventIds> {
  return storedEventIdsOf(
    store,
    { eventIds: calls.map((c) => c.event_id), models: calls.map((c) => c.model), ts: calls.map((c) => c.ts) },
    options,
  );
}

/** {@link storedEventIds} of calls given as columns. */
async function storedEventIdsOf(
  store: Store,
  calls: CallKeyColumns,
  options: StoredEventIdsOptions = {},
): Promise<StoredEventIds> {
  const out: StoredEventIds = { requests: new Set(), predictions: new Set() };
  const n = calls.eventIds.length;
  if (n === 0) return out;
  let from = Infinity;
  let to = -Infinity;
  const models = new Set<string>();
  const ids = new Set<string>();
  for (let i = 0; i < n; i++) {
    const ts = calls.ts[i] as number;
    if (ts < from) from = ts;
    if (ts > to) to = ts;
    models.add(calls.models[i] as string);
    ids.add(calls.eventIds[i] as string);
  }
  const range = `model IN {models:Array(String)}
      AND ts BETWEEN fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND fromUnixTimestamp64Milli({to:Int64}, 'UTC')`;
  const params = { models: [...models], from: Math.floor(from), to: Math.ceil(to) };
  const limit = Math.max(options.rangeReadMin ?? 4_096, 2 * ids.size);
  const inRange = await store.query<{ t: 'requests' | 'predictions'; event_id: string }>(
    `SELECT 'requests' AS t, event_id FROM (SELECT DISTINCT event_id FROM ${Tables.requests} WHERE ${range} LIMIT ${limit + 1})
      UNION ALL
      SELECT 'predictions' AS t, event_id FROM (SELECT DISTINCT event_id FROM ${Tables.predictions} WHERE ${range} LIMIT ${limit + 1})`,
    { role: 'ingest', label: 'dedupe lookup', params },
  );
  let requests = 0;
  let predictions = 0;
  for (const r of inRange) {
    if (r.t === 'requests') requests++;
    else predictions++;
  }
  if (requests <= limit && predictions <= limit) {
    // Complete: every stored id of the range came back.
    for (const r of inRange) if (ids.has(r.event_id)) out[r.t].add(r.event_id);
    return out;
  }
  const where = `${range} AND event_id IN (SELECT arrayJoin(JSONExtract({ids:String}, 'Array(String)')))`;
  const rows = await store.query<{ t: 'requests' | 'predictions'; event_id: string }>(
    `SELECT DISTINCT 'requests' AS t, event_id FROM ${Tables.requests} WHERE ${where}
      UNION ALL
      SELECT DISTINCT 'predictions' AS t, event_id FROM ${Tables.predictions} WHERE ${where}`,
    { role: 'ingest', label: 'dedupe lookup', params: { ...params, ids: JSON.stringify([...ids]) } },
  );
  for (const r of rows) out[r.t].add(r.event_id);
  return out;
}

/**
 * Consume → decode → dedupe → insert, one bus batch at a time. {@link IngestPipeline.handleBatch} is a
 * {@link BatchHandler}: it resolves only after every row of the batch is stored, so the bus commits
 * offsets only behind stored data (DESIGN §4 rule 6); it throws (nothing committed) when the consumer
 * stops while the store is failing.
 */
export class IngestPipeline {
  private readonly opts: Required<IngestPipelineOptions>;
  private readonly store: Store;
  /** Insert-body buffers reused from write to write (see {@link BufferPool}). */
  private readonly pools = newPools();

  constructor(
    store: Store,
    private readonly metrics: IngestMetrics,
    options: IngestPipelineOptions = {},
  ) {
    this.store = store.with({ role: 'ingest' });
    this.opts = { ...defaults, ...options };
    const o = this.opts;
    if (o.payloads !== false) o.payloads = { disabled: payloadsDisabled(o.models), ...o.payloads };
    for (const [k, v] of Object.entries({
      maxBatchRows: o.maxBatchRows,
      maxBatchBytes: o.maxBatchBytes,
      retryInitialMs: o.retryInitialMs,
      retryMaxMs: o.retryMaxMs,
      heartbeatEveryMs: o.heartbeatEveryMs,
    })) {
      if (!(Number.isFinite(v) && v > 0)) throw new RangeError(`${k} must be > 0`);
    }
    if (o.retryMaxMs < o.retryInitialMs) throw new RangeError('retryMaxMs must be >= retryInitialMs');
  }

  /** The last write started (of this batch or an earlier one); writes run one at a time, in offset order. */
  private writing: Promise<void> | undefined;

  /**
   * The bus batch handler (bound; pass it to `bus.consume`): resolves once every row of the batch is
   * stored.
   */
  readonly handleBatch = async (batch: ConsumedBatch): Promise<void> => {
    const { stored } = await this.takeBatch(batch);
    try {
      await stored;
    } catch (err) {
      // Not stored: the batch is delivered again, and its writes must not wait on this failure.
      if (this.writing === stored) this.writing = undefined;
      throw err;
    }
  };

  /**
   * The bus batch taker (bound; pass it to `bus.consume` as `take`): resolves once the batch is decoded
   * and its last write started, with that write as `stored`, so that a bus which can overlap batches hands
   * over the next one while this one's last chunk is written. Writes never overlap: each waits for the
   * previous one (which may be the previous batch's), so the event-id lookup of a chunk sees every chunk
   * before it stored.
   */
  readonly takeBatch = async (batch: ConsumedBatch): Promise<{ stored: Promise<void> }> => {
    this.metrics.recordsConsumed.inc(batch.messages.length);
    const seen = new Set<string>();
    const slicer = new Slicer(this.opts.sliceMs);
    let chunk = newChunk(this.pools);
    let duplicates = 0;
    // Each write runs (in the engine) while the next chunk is decoded; at most one is in flight.
    let wrote = false;
    const write = async (c: Chunk): Promise<void> => {
      const prev = this.writing;
      if (prev) {
        try {
          await prev;
        } catch (err) {
          // The previous write failed (the consumer stops): neither it nor this batch is committed, and
          // their redelivery starts afresh.
          if (this.writing === prev) this.writing = undefined;
          throw err;
        }
      }
      const w = this.write(batch, c);
      this.writing = w;
      w.catch(noop);
      wrote = true;
    };
    const decode = (call: CapturedCall): DecodedCall =>
      this.opts.decode(call, this.opts.models[call.model] ?? defaultModelSchema);
    const total = batch.messages.length;
    for (let i = 0; i < total; i++) {
      const m = batch.messages[i] as ConsumedMessage;
      if (slicer.due()) await slicer.pause();
      const origin = `${batch.topic}/${batch.partition}/${m.offset}`;
      chunk.first ??= m.offset;
      chunk.last = m.offset;
      chunk.bytes += m.value.length;
      let call: CapturedCall;
      try {
        call = decodeCapture(m);
      } catch (err) {
        chunk.sinks.quarantine.add(quarantineLine(envelopeQuarantine(m, origin, err)));
        chunk.envelopeQuarantine++;
        continue;
      }
      if (seen.has(call.eventId)) {
        duplicates++;
        continue;
      }
      seen.add(call.eventId);
      const rec = buildCallRecords(call, origin, m.value, decode);
      const sinks = chunk.sinks;
      const p0 = sinks.predictions.length;
      for (const p of rec.predictions) {
        sinks.predictions.add(predictionLine(p));
        if (slicer.due()) await slicer.pause();
      }
      const payload =
        this.opts.payloads === false
          ? undefined
          : payloadRowOf(call, rec.request.model, rec.request.version, this.opts.payloads);
      const r0 = sinks.requests.length;
      sinks.requests.add(requestLine(rec.request));
      const y0 = sinks.payloads.length;
      if (payload) sinks.payloads.add(payloadLine(payload));
      const q0 = sinks.quarantine.length;
      if (rec.quarantine) sinks.quarantine.add(quarantineLine(rec.quarantine));
      const calls = chunk.calls;
      calls.eventIds.push(rec.request.event_id);
      calls.models.push(rec.request.model);
      calls.ts.push(rec.request.ts);
      calls.at.push(
        p0,
        sinks.predictions.length,
        rec.predictions.length,
        r0,
        sinks.requests.length,
        y0,
        sinks.payloads.length,
        q0,
        sinks.quarantine.length,
      );
      chunk.rows += rec.predictions.length;
      // A large batch is cut in two halves at least, so that the second is decoded while the first is written.
      const half = !wrote && chunk.rows >= SPLIT_MIN_ROWS && 2 * (i + 1) >= total && i + 1 < total;
      if (half || chunk.rows >= this.opts.maxBatchRows || chunk.bytes >= this.opts.maxBatchBytes) {
        await write(chunk);
        chunk = newChunk(this.pools);
      }
    }
    if (chunk.first !== undefined) await write(chunk);
    if (duplicates > 0) this.metrics.duplicatesDropped.inc(duplicates);
    this.metrics.batches.inc();
    if (batch.backlog !== undefined) this.metrics.backlog.set(`${batch.topic}/${batch.partition}`, batch.backlog);
    return { stored: this.writing ?? Promise.resolve() };
  };

  /** The chunk's insert bodies as encoded (every call): views of its sinks' buffers. */
  private static encoded(chunk: Chunk): ChunkBodies {
    let bodyQuarantine = 0;
    const at = chunk.calls.at;
    for (let k = 0; k < at.length; k += AT) if (bodyQuarantined(at, k)) bodyQuarantine++;
    return {
      predictions: chunk.sinks.predictions.body(),
      requests: chunk.sinks.requests.body(),
      payloads: chunk.sinks.payloads.body(),
      quarantine: chunk.sinks.quarantine.body(),
      fresh: chunk.calls.eventIds.length,
      rows: chunk.rows,
      bodyQuarantine,
    };
  }

  /** `all` (every call of the chunk) without the calls already stored: copies of the kept byte ranges. */
  private static withoutStored(chunk: Chunk, all: ChunkBodies, stored: StoredEventIds): ChunkBodies {
    const drop = { predictions: [] as [number, number][], requests: [] as [number, number][] };
    const dropPayloads: [number, number][] = [];
    const dropQuarantine: [number, number][] = [];
    let fresh = 0;
    let rows = 0;
    let bodyQuarantine = 0;
    const { eventIds, at } = chunk.calls;
    const range = (k: number, start: AtStart): [number, number] => [
      at[k + start] as number,
      at[k + start + 1] as number,
    ];
    for (let i = 0, k = 0; i < eventIds.length; i++, k += AT) {
      const id = eventIds[i] as string;
      if (stored.predictions.has(id)) drop.predictions.push(range(k, At.predictionsStart));
      else rows += at[k + At.rows] as number;
      if (stored.requests.has(id)) {
        drop.requests.push(range(k, At.requestStart));
        dropPayloads.push(range(k, At.payloadStart));
        dropQuarantine.push(range(k, At.quarantineStart));
      } else {
        fresh++;
        if (bodyQuarantined(at, k)) bodyQuarantine++;
      }
    }
    return {
      predictions: withoutRanges(all.predictions, drop.predictions),
      requests: withoutRanges(all.requests, drop.requests),
      payloads: withoutRanges(all.payloads, dropPayloads),
      quarantine: withoutRanges(all.quarantine, dropQuarantine),
      fresh,
      rows,
      bodyQuarantine,
    };
  }

  private async write(batch: ConsumedBatch, chunk: Chunk): Promise<void> {
    // Same offsets → same token: a batch re-delivered after a crash between insert and commit is
    // dropped by ClickHouse itself (insert_deduplication_token); event_id lookups cover producer retries.
    const dedupToken = `${this.opts.tokenPrefix}${batch.topic}-${batch.partition}-${chunk.first}-${chunk.last}`;
    const opts = { dedupToken, format: INGEST_FORMAT };
    // Encoded as the calls were decoded; the calls found already stored are cut out of these bodies.
    const all = IngestPipeline.encoded(chunk);
    const result = await this.withRetry(batch, async () => {
      const stored = this.opts.eventIdLookup ? await storedEventIdsOf(this.store, chunk.calls) : noStored;
      const b =
        stored.requests.size > 0 || stored.predictions.size > 0
          ? IngestPipeline.withoutStored(chunk, all, stored)
          : all;
      // Predictions first, requests last: a request row marks its call as completely stored.
      await this.store.insertEncoded(Tables.predictions, b.predictions, { ...opts, columns: PredictionColumns });
      await this.store.insertEncoded(ShadowTables.payloads, b.payloads, { ...opts, columns: PayloadColumns });
      await this.store.insertEncoded(Tables.quarantine, b.quarantine, { ...opts, columns: QuarantineColumns });
      await this.store.insertEncoded(Tables.requests, b.requests, { ...opts, columns: RequestColumns });
      return { duplicates: chunk.calls.eventIds.length - b.fresh, rows: b.rows, bodyQuarantine: b.bodyQuarantine };
    });
    // Every insert is done: the bodies' buffers serve the next chunk. (Not after a failed write: the engine
    // may still read a body whose statement was cancelled.)
    const { predictions, requests, payloads, quarantine } = chunk.sinks;
    for (const sink of [predictions, requests, payloads, quarantine]) sink.release();
    this.metrics.rowsInserted.inc(result.rows);
    if (result.duplicates > 0) this.metrics.duplicatesDropped.inc(result.duplicates);
    if (chunk.envelopeQuarantine > 0) {
      this.metrics.recordsQuarantined.inc({ reason: 'envelope' }, chunk.envelopeQuarantine);
    }
    if (result.bodyQuarantine > 0) this.metrics.recordsQuarantined.inc({ reason: 'body' }, result.bodyQuarantine);
  }

  private async withRetry<T>(batch: ConsumedBatch, fn: () => Promise<T>): Promise<T> {
    let delay = this.opts.retryInitialMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (!batch.isRunning()) {
          throw new ModelwatchError(
            ErrorCodes.storeUnavailable,
            `store write failed while the consumer stops; batch left uncommitted: ${errorMessage(err)}`,
            { retryable: true, cause: err },
          );
        }
        this.metrics.insertRetries.inc();
        const retryable = err instanceof ModelwatchError && err.retryable;
        // Non-retryable errors are retried too (never drop accepted data), but loudly.
        const fields = {
          topic: batch.topic,
          partition: batch.partition,
          attempt,
          delayMs: delay,
          error: errorMessage(err),
        };
        if (retryable) this.opts.logger.warn('ingest store write failed; retrying', fields);
        else this.opts.logger.error('ingest store write failed (not transient); retrying anyway', fields);
        await this.pause(batch, delay);
        delay = Math.min(delay * 2, this.opts.retryMaxMs);
      }
    }
  }

  /** Waits `ms`, heartbeating so a long store outage does not cost the partition (no rebalance storm). */
  private async pause(batch: ConsumedBatch, ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (batch.isRunning()) {
      try {
        await batch.heartbeat();
      } catch (err) {
        this.opts.logger.warn('heartbeat during store retry failed', { error: errorMessage(err) });
      }
      const left = until - Date.now();
      if (left <= 0) return;
      await sleep(Math.min(left, this.opts.heartbeatEveryMs));
    }
  }
}
