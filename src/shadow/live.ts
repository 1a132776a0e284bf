/**
 * Live shadow: consumes the bus (its own consumer group on Kafka, a tap of the in-process bus on the
 * embedded default), runs every call of a model that has configured candidates through them on the
 * shadow pool, off the inference path, and stores per-interval series (`shadow.agreement`,
 * `shadow.disagreement`, `shadow.latency_p99`) in `mw_metric_series` next to the detector's series.
 */
import { readFile } from 'node:fs/promises';
import { basename, isAbsolute, resolve } from 'node:path';
import { InProcessBus } from '../bus/in-process.js';
import type { BusConsumer, ConsumedBatch } from '../bus/types.js';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import { silentLogger, type Logger } from '../common/logger.js';
import type { Config } from '../config/schema.js';
import { defaultModelSchema, type ModelSchema } from '../config/model-schema.js';
import { decodeCapture, type CapturedCall } from '../protocol/capture.js';
import { decodeCall, type FlatRow } from '../protocol/index.js';
import type { RunningRole, RuntimeContext } from '../runtime/context.js';
import { Tables } from '../store/migrations.js';
import { toChTime, type Store } from '../store/store.js';
import { quantileSorted } from './compare.js';
import { batchRows, batchSignature, concatBatch, payloadTensors } from './inputs.js';
import { ShadowPool, type ShadowModel } from './pool.js';
import { flattenOutputs, labelOf, predictionSpecOf, scoresOf, type PredictionSpec } from './prediction.js';
import { createShadowMetrics, type ShadowMetrics } from './results.js';
import { poolOptionsOf } from './service.js';
import type { ShadowTensor } from './tensors.js';

/** The series live shadow stores, one value per candidate per interval. */
export const LiveShadowSeries = {
  agreement: 'shadow.agreement',
  disagreement: 'shadow.disagreement',
  latencyP99: 'shadow.latency_p99',
} as const;

/** A candidate scored on live traffic (`shadow.candidates[]`). */
export interface LiveCandidate {
  model: string;
  /** ONNX file; a relative path is read from `shadow.modelDir`. */
  file: string;
}

/** Options of {@link LiveShadow}. */
export interface LiveShadowOptions {
  /** @default config.shadow.candidates */
  candidates?: LiveCandidate[];
  /** Length of one series interval (event time of the calls). @default config.shadow.intervalMs */
  intervalMs?: number;
  /** An interval is stored once its end is this far in the past (late calls still land in it). @default 2000 */
  graceMs?: number;
  /** How often closed intervals are stored. @default min(intervalMs, 1000) */
  flushEveryMs?: number;
  /** Largest candidate batch, in rows. @default config.shadow.batchRows */
  batchRows?: number;
  /** In-process bus: bound of the tap's own queue (full → calls dropped for shadow, counted). @default 16 MiB */
  tapMaxBytes?: number;
  /** Topic. @default the bus's default topic */
  topic?: string;
  /** Kafka consumer group. @default config.shadow.groupId */
  groupId?: string;
  /** A pool to use (not closed by `stop`). @default a pool built from `shadow.*`, closed by `stop` */
  pool?: ShadowPool;
}

/** The running live shadow role. */
export interface LiveShadowRole extends RunningRole {
  /** Resolves once the consumer is subscribed (Kafka: after the group join). */
  ready: Promise<void>;
  live: LiveShadow;
}

/** One candidate's accumulator for one interval. */
interface Bucket {
  start: number;
  compared: number;
  agreed: number;
  batchMs: number[];
}

interface Loaded {
  candidate: LiveCandidate;
  name: string;
  model: ShadowModel;
  buckets: Map<number, Bucket>;
}

interface Work {
  call: CapturedCall;
  prod: FlatRow[];
  tensors: ShadowTensor[];
}

/** One stored series value (`mw_metric_series`, v3 columns). */
export interface LiveSeriesRow {
  run_id: string;
  model: string;
  ts: string;
  series: string;
  value: number;
}

/**
 * Scores configured candidates on live traffic. Use {@link startLiveShadow} for the role; the class is
 * exported for tests that drive {@link LiveShadow.handleBatch} and {@link LiveShadow.flush} directly.
 */
export class LiveShadow {
  private readonly byModel = new Map<string, Loaded[]>();
  private readonly specs = new Map<string, PredictionSpec | null>();
  readonly metrics: ShadowMetrics;
  private readonly intervalMs: number;
  private readonly graceMs: number;
  private readonly batchLimit: number;
  /** Series rows stored so far (diagnostics). */
  stored = 0;

  constructor(
    private readonly store: Store,
    private readonly config: Config,
    private readonly pool: ShadowPool,
    metrics: ShadowMetrics,
    private readonly logger: Logger = silentLogger,
    options: Pick<LiveShadowOptions, 'intervalMs' | 'graceMs' | 'batchRows'> = {},
  ) {
    this.metrics = metrics;
    this.intervalMs = options.intervalMs ?? config.shadow.intervalMs;
    this.graceMs = options.graceMs ?? 2000;
    this.batchLimit = options.batchRows ?? config.shadow.batchRows;
  }

  /** Loads every candidate into the pool (a bad file fails the start, naming the candidate). */
  async load(candidates: readonly LiveCandidate[]): Promise<void> {
    for (const c of candidates) {
      const path = isAbsolute(c.file) ? c.file : resolve(this.config.shadow.modelDir, c.file);
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await readFile(path));
      } catch (err) {
        throw new ModelwatchError(ErrorCodes.configInvalid, `shadow candidate ${c.file}: ${errorMessage(err)}`, {
          field: 'shadow.candidates',
          cause: err,
        });
      }
      const name = basename(c.file);
      const model = await this.pool.load(bytes, {
        key: `live-${c.model}-${name}`,
        inputMap: this.config.models[c.model]?.shadow?.inputs ?? {},
      });
      let list = this.byModel.get(c.model);
      if (!list) this.byModel.set(c.model, (list = []));
      list.push({ candidate: c, name, model, buckets: new Map() });
      this.metrics.executionProvider.set(
        { model: c.model, candidate: name, execution_provider: model.executionProvider },
        1,
      );
      this.logger.info('live shadow candidate loaded', {
        model: c.model,
        candidate: name,
        execution_provider: model.executionProvider,
      });
    }
  }

  private schemaOf(model: string): ModelSchema {
    return this.config.models[model] ?? defaultModelSchema;
  }

  private skip(model: string, reason: string, rows: number): void {
    this.metrics.skipped.inc({ model, reason }, rows);
  }

  /** Calls dropped before scoring (the in-process tap was full). */
  dropped(messages: number): void {
    this.metrics.skipped.inc({ model: '', reason: 'dropped' }, messages);
  }

  /**
   * Scores one bus batch: each call of a model with candidates is decoded (production's outputs with the
   * ingest decoder, the request tensors bit for bit from the captured body), calls with one tensor
   * layout are concatenated up to `batchRows`, and run through every candidate of the model.
   */
  readonly handleBatch = async (batch: ConsumedBatch): Promise<void> => {
    const work = new Map<string, Map<string, Work[]>>();
    for (const m of batch.messages) {
      let call: CapturedCall;
      try {
        call = decodeCapture(m);
      } catch {
        continue; // not a capture: ingest quarantines it
      }
      if (!this.byModel.has(call.model)) continue;
      if (call.status < 200 || call.status > 299 || call.error !== '') continue;
      const schema = this.schemaOf(call.model);
      let prod: FlatRow[];
      let tensors: ShadowTensor[];
      try {
        prod = decodeCall(call, schema).rows;
        tensors = payloadTensors({
          source: call.source,
          body: call.request.body,
          contentType: call.request.contentType,
          contentEncoding: call.request.contentEncoding,
          headerLength: call.request.headerLength,
        });
      } catch {
        this.skip(call.model, call.request.truncated ? 'truncated' : 'undecodable', 1);
        continue;
      }
      if (prod.length === 0 || batchRows(tensors) !== prod.length) {
        this.skip(call.model, 'undecodable', prod.length);
        continue;
      }
      if (prod.every((r) => Object.keys(r.outputs_num).length === 0 && Object.keys(r.outputs_cat).length === 0)) {
        this.skip(call.model, 'no_output', prod.length);
        continue;
      }
      let bySig = work.get(call.model);
      if (!bySig) work.set(call.model, (bySig = new Map<string, Work[]>()));
      const sig = batchSignature(tensors);
      let list = bySig.get(sig);
      if (!list) bySig.set(sig, (list = []));
      list.push({ call, prod, tensors });
    }
    const runs: Promise<void>[] = [];
    for (const [model, bySig] of work) {
      for (const calls of bySig.values()) {
        for (const chunk of this.chunks(calls)) {
          for (const cand of this.byModel.get(model) ?? []) runs.push(this.score(cand, chunk));
        }
      }
    }
    await Promise.all(runs);
  };

  /** Calls grouped into batches of at most `batchRows` rows (a bigger call is its own batch). */
  private *chunks(calls: Work[]): Generator<Work[]> {
    let cur: Work[] = [];
    let rows = 0;
    for (const w of calls) {
      const n = w.prod.length;
      if (cur.length > 0 && rows + n > this.batchLimit) {
        yield cur;
        cur = [];
        rows = 0;
      }
      cur.push(w);
      rows += n;
    }
    if (cur.length > 0) yield cur;
  }

  private async score(cand: Loaded, chunk: Work[]): Promise<void> {
    const model = cand.candidate.model;
    const rows = chunk.reduce((n, w) => n + w.prod.length, 0);
    let result;
    try {
      result = await this.pool.run(cand.model, concatBatch(chunk.map((w) => w.tensors)));
    } catch (err) {
      this.skip(model, 'failed', rows);
      this.logger.warn('live shadow batch failed', { model, candidate: cand.name, error: errorMessage(err) });
      return;
    }
    this.metrics.batchSeconds.observe({ model, execution_provider: cand.model.executionProvider }, result.runMs / 1000);
    const schema = this.schemaOf(model);
    const flat = flattenOutputs(result.outputs, rows, schema);
    let offset = 0;
    for (const w of chunk) {
      const b = this.bucket(cand, w.call.startedAt);
      for (let r = 0; r < w.prod.length; r++) {
        const prod = w.prod[r] as FlatRow;
        const c = flat[offset + r];
        if (c === undefined) continue;
        let spec = this.specs.get(model);
        if (spec === undefined) {
          spec = predictionSpecOf(schema, { num: Object.keys(prod.outputs_num), cat: Object.keys(prod.outputs_cat) });
          this.specs.set(model, spec);
        }
        if (!spec) continue;
        const pl = labelOf(spec, prod);
        const cl = labelOf(spec, c);
        if (pl !== undefined && cl !== undefined) {
          b.compared++;
          if (pl === cl) b.agreed++;
        } else if (spec.task === 'regression') {
          // Regression: a row "agrees" when the candidate's value is within 1e-6 (relative) of production's.
          const p = scoresOf(spec, prod)[0];
          const q = scoresOf(spec, c)[0];
          if (p !== undefined && q !== undefined && Number.isFinite(p) && Number.isFinite(q)) {
            b.compared++;
            if (Math.abs(p - q) <= 1e-6 * Math.max(1, Math.abs(p))) b.agreed++;
          }
        }
      }
      offset += w.prod.length;
    }
    // One latency sample per candidate batch, in the interval of the batch's first call.
    this.bucket(cand, (chunk[0] as Work).call.startedAt).batchMs.push(result.runMs);
    this.metrics.rows.inc({ model, mode: 'live', input: 'payload' }, rows);
  }

  private bucket(cand: Loaded, t: number): Bucket {
    const start = Math.floor(t / this.intervalMs) * this.intervalMs;
    let b = cand.buckets.get(start);
    if (!b) cand.buckets.set(start, (b = { start, compared: 0, agreed: 0, batchMs: [] }));
    return b;
  }

  /**
   * Stores the intervals that closed (end + grace ≤ `now`), or every interval with `all`. One row per
   * series per candidate per interval, at the interval's start; `run_id` is `shadow-live:<candidate>`.
   */
  async flush(now: number = Date.now(), all = false): Promise<LiveSeriesRow[]> {
    const rows: LiveSeriesRow[] = [];
    const done: [Loaded, number][] = [];
    for (const list of this.byModel.values()) {
      for (const cand of list) {
        for (const b of cand.buckets.values()) {
          if (!all && b.start + this.intervalMs + this.graceMs > now) continue;
          done.push([cand, b.start]);
          const base = { run_id: `shadow-live:${cand.name}`, model: cand.candidate.model, ts: toChTime(b.start) };
          const labels = { model: cand.candidate.model, candidate: cand.name };
          if (b.compared > 0) {
            const agreement = b.agreed / b.compared;
            rows.push({ ...base, series: LiveShadowSeries.agreement, value: agreement });
            rows.push({ ...base, series: LiveShadowSeries.disagreement, value: 1 - agreement });
            this.metrics.agreement.set({ ...labels, mode: 'live' }, agreement);
          }
          if (b.batchMs.length > 0) {
            const p99 = quantileSorted(Float64Array.from(b.batchMs).sort(), 0.99);
            rows.push({ ...base, series: LiveShadowSeries.latencyP99, value: p99 });
            this.metrics.liveLatencyP99.set(labels, p99 / 1000);
          }
        }
      }
    }
    if (rows.length > 0) await this.store.insert(Tables.metricSeries, rows, { role: 'ingest' });
    // Removed only once stored: a failed insert keeps the intervals for the next flush.
    for (const [cand, start] of done) cand.buckets.delete(start);
    this.stored += rows.length;
    return rows;
  }

  /** Unloads the candidates from the pool. */
  unload(): void {
    for (const list of this.byModel.values()) for (const c of list) this.pool.unload(c.model);
    this.byModel.clear();
  }
}

/**
 * Starts the live shadow role: loads `shadow.candidates`, subscribes to the bus (Kafka: consumer group
 * `shadow.groupId`, so ingest's offsets are untouched; in-process: a lossy tap next to ingest's queue),
 * and stores closed intervals every `flushEveryMs`. `stop()` stops consuming, stores every interval
 * still open, and closes the pool it created.
 */
export async function startLiveShadow(ctx: RuntimeContext, options: LiveShadowOptions = {}): Promise<LiveShadowRole> {
  const { config, logger } = ctx;
  const candidates = options.candidates ?? config.shadow.candidates;
  if (candidates.length === 0) {
    throw new ModelwatchError(ErrorCodes.configInvalid, 'live shadow needs shadow.candidates', {
      field: 'shadow.candidates',
    });
  }
  const ownPool = options.pool === undefined;
  const pool = options.pool ?? new ShadowPool(poolOptionsOf(ctx));
  const live = new LiveShadow(ctx.store, config, pool, createShadowMetrics(ctx.metrics), logger, options);
  let consumer: BusConsumer | undefined;
  let markReady!: () => void;
  const ready = new Promise<void>((r) => (markReady = r));
  try {
    await live.load(candidates);
    const topic = options.topic ?? ctx.bus.topic;
    consumer =
      ctx.bus instanceof InProcessBus
        ? await ctx.bus.tap({
            topic,
            handler: live.handleBatch,
            onReady: () => markReady(),
            onDrop: (n) => live.dropped(n),
            ...(options.tapMaxBytes !== undefined ? { maxBufferedBytes: options.tapMaxBytes } : {}),
          })
        : await ctx.bus.consume({
            topic,
            groupId: options.groupId ?? config.shadow.groupId,
            handler: live.handleBatch,
            onReady: () => markReady(),
          });
  } catch (err) {
    live.unload();
    if (ownPool) await pool.close();
    throw err;
  }
  const intervalMs = options.intervalMs ?? config.shadow.intervalMs;
  let flushing: Promise<unknown> = Promise.resolve();
  const timer = setInterval(
    () => {
      flushing = flushing
        .then(() => live.flush())
        .catch((err: unknown) => logger.warn('live shadow series not stored; retried', { error: errorMessage(err) }));
    },
    options.flushEveryMs ?? Math.min(intervalMs, 1000),
  );
  timer.unref();
  logger.info('live shadow started', { bus: ctx.bus.kind, candidates: candidates.length });
  let stopping: Promise<void> | undefined;
  return {
    name: 'shadow',
    urls: [],
    ready,
    live,
    stop: () => {
      stopping ??= (async () => {
        clearInterval(timer);
        await consumer?.stop();
        await flushing;
        try {
          await live.flush(Date.now(), true);
        } catch (err) {
          logger.warn('live shadow: last intervals not stored', { error: errorMessage(err) });
        }
        live.unload();
        if (ownPool) await pool.close();
        logger.info('live shadow stopped');
      })();
      return stopping;
    },
  };
}
