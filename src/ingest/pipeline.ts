import { decodeCapture, type CapturedCall } from '../protocol/capture.js';
import type { ConsumedBatch } from '../bus/types.js';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { silentLogger } from '../common/logger.js';
import { sleep } from '../common/time.js';
import { defaultModelSchema, type ModelSchema } from '../config/model-schema.js';
import { decodeCall, type DecodedCall } from '../protocol/index.js';
import { Tables } from '../store/migrations.js';
import type { QuarantineRow } from '../store/rows.js';
import type { Store } from '../store/store.js';
import type { IngestMetrics } from './metrics.js';
import { buildCallRecords, envelopeQuarantine, type CallRecords } from './records.js';
import { insertPayloads, payloadRowOf, payloadsDisabled, type PayloadOptions, type PayloadRow } from './payloads.js';

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
  logger: silentLogger,
} satisfies Required<IngestPipelineOptions>;

/** A contiguous run of offsets written to the store together. */
interface Chunk {
  first: string | undefined;
  last: string;
  calls: CallRecords[];
  envelopeQuarantine: QuarantineRow[];
  payloads: Map<string, PayloadRow>;
  rows: number;
  bytes: number;
}

function newChunk(): Chunk {
  return { first: undefined, last: '', calls: [], envelopeQuarantine: [], payloads: new Map(), rows: 0, bytes: 0 };
}

/** Event ids of a chunk already stored, per table. */
export interface StoredEventIds {
  requests: Set<string>;
  predictions: Set<string>;
}

/**
 * Event ids of `calls` already in `mw_requests` and in `mw_predictions` (one round trip). Duplicates
 * carry the same model and capture time as the original, so the lookup is pruned by the primary key
 * `(model, ts, …)` instead of scanning every stored id.
 */
export async function storedEventIds(store: Store, calls: CallRecords[]): Promise<StoredEventIds> {
  const out: StoredEventIds = { requests: new Set(), predictions: new Set() };
  if (calls.length === 0) return out;
  let from = Infinity;
  let to = -Infinity;
  const models = new Set<string>();
  for (const c of calls) {
    from = Math.min(from, c.request.ts);
    to = Math.max(to, c.request.ts);
    models.add(c.request.model);
  }
  const where = `model IN {models:Array(String)}
      AND ts BETWEEN fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND fromUnixTimestamp64Milli({to:Int64}, 'UTC')
      AND event_id IN {ids:Array(String)}`;
  const rows = await store.query<{ t: 'requests' | 'predictions'; event_id: string }>(
    `SELECT DISTINCT 'requests' AS t, event_id FROM ${Tables.requests} WHERE ${where}
      UNION ALL
      SELECT DISTINCT 'predictions' AS t, event_id FROM ${Tables.predictions} WHERE ${where}`,
    {
      role: 'ingest',
      label: 'dedupe lookup',
      params: { models: [...models], from, to, ids: calls.map((c) => c.request.event_id) },
    },
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

  /** The bus batch handler (bound; pass it to `bus.consume`). */
  readonly handleBatch = async (batch: ConsumedBatch): Promise<void> => {
    this.metrics.recordsConsumed.inc(batch.messages.length);
    const seen = new Set<string>();
    let chunk = newChunk();
    let duplicates = 0;
    const decode = (call: CapturedCall): DecodedCall =>
      this.opts.decode(call, this.opts.models[call.model] ?? defaultModelSchema);
    for (const m of batch.messages) {
      const origin = `${batch.topic}/${batch.partition}/${m.offset}`;
      chunk.first ??= m.offset;
      chunk.last = m.offset;
      chunk.bytes += m.value.length;
      let call: CapturedCall;
      try {
        call = decodeCapture(m);
      } catch (err) {
        chunk.envelopeQuarantine.push(envelopeQuarantine(m, origin, err));
        continue;
      }
      if (seen.has(call.eventId)) {
        duplicates++;
        continue;
      }
      seen.add(call.eventId);
      const rec = buildCallRecords(call, origin, m.value, decode);
      chunk.calls.push(rec);
      const payload =
        this.opts.payloads === false
          ? undefined
          : payloadRowOf(call, rec.request.model, rec.request.version, this.opts.payloads);
      if (payload) chunk.payloads.set(call.eventId, payload);
      chunk.rows += rec.predictions.length;
      if (chunk.rows >= this.opts.maxBatchRows || chunk.bytes >= this.opts.maxBatchBytes) {
        await this.write(batch, chunk);
        chunk = newChunk();
      }
    }
    if (chunk.first !== undefined) await this.write(batch, chunk);
    if (duplicates > 0) this.metrics.duplicatesDropped.inc(duplicates);
    this.metrics.batches.inc();
    if (batch.backlog !== undefined) this.metrics.backlog.set(`${batch.topic}/${batch.partition}`, batch.backlog);
  };

  private async write(batch: ConsumedBatch, chunk: Chunk): Promise<void> {
    // Same offsets → same token: a batch re-delivered after a crash between insert and commit is
    // dropped by ClickHouse itself (insert_deduplication_token); event_id lookups cover producer retries.
    const dedupToken = `${this.opts.tokenPrefix}${batch.topic}-${batch.partition}-${chunk.first}-${chunk.last}`;
    const result = await this.withRetry(batch, async () => {
      const stored = this.opts.eventIdLookup
        ? await storedEventIds(this.store, chunk.calls)
        : { requests: new Set<string>(), predictions: new Set<string>() };
      const storedRequests = stored.requests;
      const storedPredictions = stored.predictions;
      const fresh = chunk.calls.filter((c) => !storedRequests.has(c.request.event_id));
      const predictions = chunk.calls
        .filter((c) => !storedPredictions.has(c.request.event_id))
        .flatMap((c) => c.predictions);
      const bodyQuarantine = fresh.flatMap((c) => (c.quarantine ? [c.quarantine] : []));
      // Predictions first, requests last: a request row marks its call as completely stored.
      await this.store.insertPredictions(predictions, { dedupToken });
      await insertPayloads(
        this.store,
        fresh.flatMap((c) => chunk.payloads.get(c.request.event_id) ?? []),
        { dedupToken },
      );
      await this.store.insertQuarantine([...chunk.envelopeQuarantine, ...bodyQuarantine], { dedupToken });
      await this.store.insertRequests(
        fresh.map((c) => c.request),
        { dedupToken },
      );
      return {
        duplicates: chunk.calls.length - fresh.length,
        rows: predictions.length,
        bodyQuarantine: bodyQuarantine.length,
      };
    });
    this.metrics.rowsInserted.inc(result.rows);
    if (result.duplicates > 0) this.metrics.duplicatesDropped.inc(result.duplicates);
    if (chunk.envelopeQuarantine.length > 0) {
      this.metrics.recordsQuarantined.inc({ reason: 'envelope' }, chunk.envelopeQuarantine.length);
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
