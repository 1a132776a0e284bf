/**
 * Replay: the stored inputs of a model over a time range → a candidate ONNX model in batches on the
 * shadow pool → compared row by row with the stored production outputs, with a promotion verdict.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import { newId } from '../common/ids.js';
import { silentLogger, type Logger } from '../common/logger.js';
import type { Config } from '../config/schema.js';
import { defaultModelSchema, type ModelSchema } from '../config/model-schema.js';
import { ks2sampAsympPValue, psi } from '../drift/stats/math.js';
import { cbpeAggregates, finishCbpe } from '../drift/performance/metrics.js';
import type { EstimatedMetrics } from '../drift/performance/types.js';
import { decodePayloadBody } from '../ingest/payloads.js';
import { ShadowTables, Tables } from '../store/migrations.js';
import { toChTime, type Store } from '../store/store.js';
import {
  classificationPerformance,
  compareClassification,
  compareScores,
  pairedBootstrap,
  summarize,
  summarizeLatency,
  type BatchTiming,
  type ClassificationComparison,
  type ClassificationPerformance,
  type Distribution,
  type LatencySummary,
  type PairedBootstrapResult,
  type ScoreDifferences,
} from './compare.js';
import {
  batchRows,
  batchSignature,
  concatBatch,
  payloadTensors,
  rebuildFromFeatures,
  type FeatureRow,
} from './inputs.js';
import type { ShadowModel, ShadowPool } from './pool.js';
import {
  flattenOutputs,
  labelOf,
  predictionSpecOf,
  probabilitiesOf,
  scoresOf,
  type PredictionSpec,
} from './prediction.js';
import { insertOutputs, writeRun, type ShadowMetrics, type ShadowOutputRow, type ShadowRunRecord } from './results.js';
import type { ShadowTensor } from './tensors.js';
import { decideVerdict, type Verdict } from './verdict.js';

/** Why a stored call could not be scored. */
export const SkipReasons = ['expired', 'truncated', 'missing', 'undecodable', 'no_output', 'failed'] as const;
/** One of {@link SkipReasons}. */
export type SkipReason = (typeof SkipReasons)[number];

/** A candidate model: a file, or bytes with a display name. */
export type CandidateSource = { path: string; name?: string } | { bytes: Uint8Array; name: string };

/** Progress of a running replay. */
export interface ReplayProgress {
  rows: number;
  skipped: number;
  /** Calls read so far / calls in range, 0–1. */
  fraction: number;
}

/** Options of {@link runReplay}. */
export interface ReplayOptions {
  model: string;
  candidate: CandidateSource;
  /** Range start, epoch ms. @default toMs − retention.payloadDays */
  fromMs?: number | undefined;
  /** Range end (exclusive), epoch ms. @default now */
  toMs?: number | undefined;
  /** Most rows replayed. @default 100000 */
  limit?: number | undefined;
  /** Fraction of calls replayed (by a hash of the event id, so reproducible). @default 1 */
  sample?: number | undefined;
  /** Rows per candidate batch. @default config.shadow.batchRows */
  batchRows?: number | undefined;
  /** @default a new UUIDv7 */
  runId?: string | undefined;
  /** Store per-row candidate outputs in mw_shadow_outputs. @default true */
  storeOutputs?: boolean | undefined;
  onProgress?: ((p: ReplayProgress) => void) | undefined;
  signal?: AbortSignal | undefined;
}

/** What {@link runReplay} works with. */
export interface ReplayDeps {
  store: Store;
  config: Config;
  pool: ShadowPool;
  metrics?: ShadowMetrics | undefined;
  logger?: Logger | undefined;
}

/** Drift between production's and the candidate's distribution of one output column. */
export interface OutputDrift {
  column: string;
  /** Two-sample Kolmogorov–Smirnov statistic and asymptotic p-value. */
  ks: number;
  p_value: number;
  /** PSI over production's deciles. */
  psi: number;
}

/** The report of one replay (the CLI's JSON). */
export interface ShadowReport {
  run_id: string;
  model: string;
  candidate: string;
  candidate_sha256: string;
  execution_provider: string;
  execution_fallbacks: { provider: string; reason: string }[];
  window: { from: string; to: string };
  rows: number;
  skipped: number;
  skipped_by_reason: Record<SkipReason, number>;
  inputs: { payload: number; features: number };
  task: string | null;
  agreement: number | null;
  classification: Omit<ClassificationComparison, 'rows' | 'agreement'> | null;
  differences: ScoreDifferences | null;
  output_drift: OutputDrift[];
  performance: {
    labelled_rows: number;
    measured: { classification?: ClassificationPerformance; regression?: PairedBootstrapResult } | null;
    estimated: { production: EstimatedMetrics | null; candidate: EstimatedMetrics | null } | null;
  };
  latency_ms: {
    candidate: LatencySummary;
    production: Distribution;
  };
  verdict: Verdict;
  reasons: string[];
  duration_ms: number;
}

interface CallRow {
  event_id: string;
  request_id: string;
  version: string;
  t: number;
  latency_ms: number;
}

interface PayloadRead {
  event_id: string;
  source: string;
  content_type: string;
  content_encoding: string;
  header_length: number;
  truncated: boolean;
  storage: string;
  body: string;
  expired: number;
}

interface PredictionRead extends FeatureRow {
  event_id: string;
  row: number;
  outputs_num: Record<string, number>;
  outputs_cat: Record<string, string>;
}

/** One call ready for the candidate. */
interface Prepared {
  call: CallRow;
  tensors: ShadowTensor[];
  source: 'payload' | 'features';
  rows: PredictionRead[];
}

const PAGE_CALLS = 2000;
const BOOTSTRAP_MAX_ROWS = 20_000;
const SEGMENT_MAX_VALUES = 50;
const DAY_MS = 86_400_000;

const emptySkips = (): Record<SkipReason, number> => ({
  expired: 0,
  truncated: 0,
  missing: 0,
  undecodable: 0,
  no_output: 0,
  failed: 0,
});

/** The model's schema in config (default names when none). */
function schemaOf(config: Config, model: string): ModelSchema {
  return config.models[model] ?? defaultModelSchema;
}

function num(v: unknown): number {
  return typeof v === 'number' ? v : Number(v);
}

/** Reads a candidate's bytes and a display name. */
async function candidateBytes(c: CandidateSource): Promise<{ bytes: Uint8Array; name: string }> {
  if ('bytes' in c) return { bytes: c.bytes, name: c.name };
  const { readFile } = await import('node:fs/promises');
  try {
    return { bytes: new Uint8Array(await readFile(c.path)), name: c.name ?? c.path };
  } catch (err) {
    throw new ModelwatchError(ErrorCodes.inputInvalid, `candidate ${c.path}: ${errorMessage(err)}`, {
      field: 'candidate',
      cause: err,
    });
  }
}

/** Two-sample KS statistic (sorted inputs) and PSI over the reference's deciles. */
function outputDrift(column: string, prod: number[], cand: number[]): OutputDrift {
  const a = Float64Array.from(prod.filter(Number.isFinite)).sort();
  const b = Float64Array.from(cand.filter(Number.isFinite)).sort();
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < a.length && j < b.length) {
    const x = Math.min(a[i] as number, b[j] as number);
    while (i < a.length && (a[i] as number) <= x) i++;
    while (j < b.length && (b[j] as number) <= x) j++;
    d = Math.max(d, Math.abs(i / a.length - j / b.length));
  }
  const edges: number[] = [];
  for (let q = 1; q < 10; q++) {
    const e = a[Math.min(a.length - 1, Math.floor((q * a.length) / 10))];
    if (e !== undefined && edges[edges.length - 1] !== e) edges.push(e);
  }
  const bins = (v: Float64Array): number[] => {
    const counts = new Array<number>(edges.length + 1).fill(0);
    for (const x of v) {
      let k = 0;
      while (k < edges.length && x > (edges[k] as number)) k++;
      counts[k] = (counts[k] as number) + 1;
    }
    return counts.map((c) => (v.length === 0 ? 0 : c / v.length));
  };
  return {
    column,
    ks: d,
    p_value: a.length > 0 && b.length > 0 ? ks2sampAsympPValue(d, a.length, b.length) : 1,
    psi: a.length > 0 && b.length > 0 ? psi(bins(a), bins(b)) : 0,
  };
}

/** The most drifted numeric features of the model's latest detection run, for per-slice agreement. */
async function driftedFeatures(store: Store, model: string): Promise<string[]> {
  try {
    const rows = await store.query<{ feature: string }>(
      `SELECT feature FROM ${Tables.driftResults}
       WHERE model = {model:String} AND feature != '' AND NOT output
         AND run_id = (SELECT argMax(run_id, ts) FROM ${Tables.driftResults} WHERE model = {model:String})
       ORDER BY drifted DESC, score DESC LIMIT 2`,
      { params: { model }, role: 'report', label: 'shadow drifted features' },
    );
    return rows.map((r) => r.feature);
  } catch {
    return [];
  }
}

/** Quartile slice names of values ('q1 [lo, hi]' …). */
function quartileSlices(values: (number | undefined)[]): (string | null)[] {
  const finite = Float64Array.from(values.filter((v): v is number => v !== undefined && Number.isFinite(v))).sort();
  if (finite.length === 0) return values.map(() => null);
  const q = [0.25, 0.5, 0.75].map((p) => finite[Math.min(finite.length - 1, Math.floor(p * finite.length))] as number);
  const fmt = (x: number): string => Number(x.toPrecision(4)).toString();
  const names = [
    `q1 (≤ ${fmt(q[0] as number)})`,
    `q2 (≤ ${fmt(q[1] as number)})`,
    `q3 (≤ ${fmt(q[2] as number)})`,
    `q4 (> ${fmt(q[2] as number)})`,
  ];
  return values.map((v) => {
    if (v === undefined || !Number.isFinite(v)) return null;
    const k = v <= (q[0] as number) ? 0 : v <= (q[1] as number) ? 1 : v <= (q[2] as number) ? 2 : 3;
    return names[k] as string;
  });
}

/**
 * Replays a model's stored traffic through a candidate and compares. Writes the run's states to
 * `mw_shadow_runs` (running → done|failed) and per-row outputs to `mw_shadow_outputs`.
 */
export async function runReplay(deps: ReplayDeps, options: ReplayOptions): Promise<ShadowReport> {
  const { config, pool, metrics } = deps;
  const logger = deps.logger ?? silentLogger;
  const store = deps.store.with({ role: 'report', ...(options.signal ? { signal: options.signal } : {}) });
  const started = performance.now();
  const runId = options.runId ?? newId();
  const toMs = options.toMs ?? Date.now();
  const fromMs = options.fromMs ?? toMs - config.retention.payloadDays * DAY_MS;
  const limit = options.limit ?? 100_000;
  const sample = options.sample ?? 1;
  const batchSize = options.batchRows ?? config.shadow.batchRows;
  if (!(toMs > fromMs)) throw new ModelwatchError(ErrorCodes.badRequest, 'from must be before to', { field: 'from' });
  if (!(Number.isSafeInteger(limit) && limit >= 1))
    throw new ModelwatchError(ErrorCodes.badRequest, `limit must be a positive integer, got ${limit}`, {
      field: 'limit',
    });
  if (!(sample > 0 && sample <= 1))
    throw new ModelwatchError(ErrorCodes.badRequest, `sample must be in (0, 1], got ${sample}`, { field: 'sample' });
  const { model } = options;
  const schema = schemaOf(config, model);
  const inputMap = config.models[model]?.shadow?.inputs ?? {};
  const { bytes, name: candidateName } = await candidateBytes(options.candidate);
  const sha = createHash('sha256').update(bytes).digest('hex');
  const createdAt = Date.now();
  const record: ShadowRunRecord = {
    run_id: runId,
    model,
    candidate: candidateName,
    candidate_sha256: sha,
    execution_provider: '',
    status: 'running',
    progress: 0,
    window_from: fromMs,
    window_to: toMs,
    created_at: createdAt,
    updated_at: createdAt,
    rows: 0,
    skipped: 0,
    agreement: null,
    verdict: '',
    reasons: [],
    error: '',
    result: '',
  };
  await writeRun(store, record);
  let loaded: ShadowModel | undefined;
  try {
    loaded = await pool.load(bytes, { key: `replay-${runId}`, inputMap });
    record.execution_provider = loaded.executionProvider;
    const report = await replayWith(deps, store, loaded, {
      runId,
      model,
      schema,
      inputMap,
      fromMs,
      toMs,
      limit,
      sample,
      batchSize,
      record,
      storeOutputs: options.storeOutputs ?? true,
      onProgress: options.onProgress,
      logger,
    });
    const full: ShadowReport = {
      ...report,
      candidate: candidateName,
      candidate_sha256: sha,
      execution_provider: loaded.executionProvider,
      execution_fallbacks: loaded.fallbacks.map((f) => ({ ...f })),
      duration_ms: performance.now() - started,
    };
    await writeRun(store, {
      ...record,
      status: 'done',
      progress: 1,
      updated_at: Math.max(Date.now(), record.updated_at + 1),
      rows: full.rows,
      skipped: full.skipped,
      agreement: full.agreement,
      verdict: full.verdict,
      reasons: full.reasons,
      result: JSON.stringify(full),
    });
    metrics?.runs.inc({ model, verdict: full.verdict });
    if (full.agreement !== null)
      metrics?.agreement.set({ model, candidate: candidateName, mode: 'replay' }, full.agreement);
    metrics?.executionProvider.set({ model, candidate: candidateName, execution_provider: full.execution_provider }, 1);
    return full;
  } catch (err) {
    metrics?.runs.inc({ model, verdict: 'failed' });
    try {
      await writeRun(deps.store, {
        ...record,
        status: 'failed',
        updated_at: Math.max(Date.now(), record.updated_at + 1),
        error: errorMessage(err),
      });
    } catch (e) {
      logger.warn('shadow run failure could not be recorded', { run_id: runId, error: errorMessage(e) });
    }
    throw err;
  } finally {
    if (loaded) pool.unload(loaded);
  }
}

interface Internal {
  runId: string;
  model: string;
  schema: ModelSchema;
  inputMap: Record<string, string>;
  fromMs: number;
  toMs: number;
  limit: number;
  sample: number;
  batchSize: number;
  record: ShadowRunRecord;
  storeOutputs: boolean;
  onProgress: ((p: ReplayProgress) => void) | undefined;
  logger: Logger;
}

type PartialReport = Omit<
  ShadowReport,
  'candidate' | 'candidate_sha256' | 'execution_provider' | 'execution_fallbacks' | 'duration_ms'
>;

async function replayWith(deps: ReplayDeps, store: Store, cand: ShadowModel, o: Internal): Promise<PartialReport> {
  const { pool, metrics } = deps;
  const { model, schema } = o;
  const base = {
    model,
    from: toChTime(o.fromMs),
    to: toChTime(o.toMs),
    sample: Math.round(o.sample * 1_000_000),
  };
  const where = `model = {model:String} AND ts >= toDateTime64({from:String}, 3, 'UTC') AND ts < toDateTime64({to:String}, 3, 'UTC')
    AND status BETWEEN 200 AND 299 AND rows > 0 AND cityHash64(event_id) % 1000000 < {sample:UInt32}`;
  const totals = await store.query<{ calls: number }>(
    `SELECT uniqExact(event_id) AS calls FROM ${Tables.requests} WHERE ${where}`,
    { params: base, label: 'shadow replay count' },
  );
  const totalCalls = Math.max(1, num(totals[0]?.calls ?? 0));

  const skips = emptySkips();
  const inputsBy = { payload: 0, features: 0 };
  const prodLabels: string[] = [];
  const candLabels: string[] = [];
  const versions: string[] = [];
  const catValues = new Map<string, (string | null)[]>();
  const driftFeatures = await driftedFeatures(store, model);
  const driftValues = new Map<string, (number | undefined)[]>(driftFeatures.map((f) => [f, []]));
  const prodScores: number[] = [];
  const candScores: number[] = [];
  const prodColumns = new Map<string, number[]>();
  const candColumns = new Map<string, number[]>();
  const truthCls: string[] = [];
  const truthProd: string[] = [];
  const truthCand: string[] = [];
  const truthNum: number[] = [];
  const regProd: number[] = [];
  const regCand: number[] = [];
  const prodProbs: number[][] = [];
  const candProbs: number[][] = [];
  const prodLatency: number[] = [];
  const timings: BatchTiming[] = [];
  let spec: PredictionSpec | null | undefined;
  let rowsDone = 0;
  let callsRead = 0;
  let lastProgressWrite = Date.now();
  const wall0 = performance.now();

  const labels = new Map<string, string>();
  const pending = new Map<string, Prepared[]>();
  const inflight = new Set<Promise<void>>();
  const maxInflight = Math.max(2, pool.size * 2);

  const compareBatch = async (batch: Prepared[], outputs: ShadowTensor[]): Promise<void> => {
    const total = batch.reduce((n, p) => n + batchRows(p.tensors), 0);
    const flat = flattenOutputs(outputs, total, schema);
    const stored: ShadowOutputRow[] = [];
    let offset = 0;
    for (const p of batch) {
      for (let r = 0; r < p.rows.length; r++) {
        const prod = p.rows[r] as PredictionRead;
        const c = flat[offset + r];
        if (c === undefined) continue;
        spec ??= predictionSpecOf(schema, { num: Object.keys(prod.outputs_num), cat: Object.keys(prod.outputs_cat) });
        const pl = spec ? labelOf(spec, prod) : undefined;
        const cl = spec ? labelOf(spec, c) : undefined;
        let absDiff: number | null = null;
        if (spec) {
          const ps = scoresOf(spec, prod);
          const cs = scoresOf(spec, c);
          for (let k = 0; k < ps.length; k++) {
            prodScores.push(ps[k] as number);
            candScores.push(cs[k] as number);
            const d = Math.abs((cs[k] as number) - (ps[k] as number));
            absDiff = absDiff === null ? d : Math.max(absDiff, d);
          }
          for (const col of spec.columns) {
            let a = prodColumns.get(col);
            if (!a) prodColumns.set(col, (a = []));
            a.push(prod.outputs_num[col] ?? NaN);
            let b = candColumns.get(col);
            if (!b) candColumns.set(col, (b = []));
            b.push(c.outputs_num[col] ?? NaN);
          }
          const pp = probabilitiesOf(spec, prod);
          const cp = probabilitiesOf(spec, c);
          if (pp && cp) {
            prodProbs.push(pp);
            candProbs.push(cp);
          }
        }
        const i = prodLabels.length;
        prodLabels.push(pl ?? '');
        candLabels.push(cl ?? '');
        versions.push(p.call.version);
        for (const [k, v] of Object.entries(prod.features_cat)) {
          let arr = catValues.get(k);
          if (!arr) catValues.set(k, (arr = new Array<string | null>(i).fill(null)));
          arr.push(v);
        }
        for (const arr of catValues.values()) while (arr.length < i + 1) arr.push(null);
        for (const [f, arr] of driftValues) arr.push(prod.features_num[f]);
        const truth = labels.get(`${p.call.request_id}\u0000${prod.row}`);
        if (truth !== undefined && spec) {
          if (spec.task === 'regression') {
            const t = Number(truth);
            const pv = scoresOf(spec, prod)[0];
            const cv = scoresOf(spec, c)[0];
            if (
              Number.isFinite(t) &&
              pv !== undefined &&
              cv !== undefined &&
              Number.isFinite(pv) &&
              Number.isFinite(cv)
            ) {
              truthNum.push(t);
              regProd.push(pv);
              regCand.push(cv);
            }
          } else if (pl !== undefined && cl !== undefined) {
            truthCls.push(truth);
            truthProd.push(pl);
            truthCand.push(cl);
          }
        }
        stored.push({
          run_id: o.runId,
          model,
          ts: p.call.t,
          event_id: p.call.event_id,
          request_id: p.call.request_id,
          row: prod.row,
          input_source: p.source,
          outputs_num: c.outputs_num,
          outputs_cat: c.outputs_cat,
          production_label: pl ?? '',
          candidate_label: cl ?? '',
          agree: pl !== undefined && cl !== undefined ? pl === cl : null,
          abs_diff: absDiff,
        });
      }
      offset += batchRows(p.tensors);
      inputsBy[p.source] += p.rows.length;
      metrics?.rows.inc({ model, mode: 'replay', input: p.source }, p.rows.length);
    }
    rowsDone += stored.length;
    if (o.storeOutputs) await insertOutputs(store, stored);
  };

  const runBatch = async (batch: Prepared[]): Promise<void> => {
    const tensors = concatBatch(batch.map((p) => p.tensors));
    const rows = batchRows(tensors);
    let result;
    try {
      result = await pool.run(cand, tensors);
    } catch (err) {
      if (err instanceof ModelwatchError && err.code === ErrorCodes.badRequest) {
        // The candidate refuses these inputs (name, datatype or shape): every later batch would too.
        throw err;
      }
      skips.failed += batch.reduce((n, p) => n + p.rows.length, 0);
      metrics?.skipped.inc({ model, reason: 'failed' }, rows);
      o.logger.warn('shadow batch failed', { run_id: o.runId, error: errorMessage(err) });
      return;
    }
    timings.push({ rows, ms: result.runMs });
    metrics?.batchSeconds.observe({ model, execution_provider: cand.executionProvider }, result.runMs / 1000);
    await compareBatch(batch, result.outputs);
  };

  const submit = async (batch: Prepared[]): Promise<void> => {
    const p: Promise<void> = runBatch(batch).finally(() => inflight.delete(p));
    inflight.add(p);
    if (inflight.size >= maxInflight) await Promise.race(inflight);
  };

  const enqueue = async (p: Prepared): Promise<void> => {
    const sig = batchSignature(p.tensors);
    let list = pending.get(sig);
    if (!list) pending.set(sig, (list = []));
    list.push(p);
    const rows = list.reduce((n, x) => n + batchRows(x.tensors), 0);
    if (rows >= o.batchSize) {
      pending.delete(sig);
      await submit(list);
    }
  };

  const skip = (reason: SkipReason, rows: number): void => {
    skips[reason] += rows;
    metrics?.skipped.inc({ model, reason }, rows);
  };

  const retentionMs = deps.config.retention.payloadDays * DAY_MS;
  let cursor = { t: -1, id: '' };
  let budget = o.limit;
  while (budget > 0) {
    const calls = (
      await store.query<CallRow>(
        `SELECT event_id, any(request_id) AS request_id, any(version) AS version,
                toUnixTimestamp64Milli(min(ts)) AS t, any(latency_ms) AS latency_ms
         FROM ${Tables.requests}
         WHERE ${where} AND (toUnixTimestamp64Milli(ts), event_id) > ({ct:Int64}, {cid:String})
         GROUP BY event_id ORDER BY t, event_id LIMIT {page:UInt32}`,
        { params: { ...base, ct: cursor.t, cid: cursor.id, page: PAGE_CALLS }, label: 'shadow replay calls' },
      )
    ).map((c) => ({ ...c, t: num(c.t), latency_ms: num(c.latency_ms) }));
    if (calls.length === 0) break;
    const last = calls[calls.length - 1] as CallRow;
    cursor = { t: last.t, id: last.event_id };
    const ids = calls.map((c) => c.event_id);
    const range = { ...base, ids, pfrom: toChTime(calls[0]?.t ?? o.fromMs), pto: toChTime(last.t) };
    const inRange = `model = {model:String} AND ts BETWEEN toDateTime64({pfrom:String}, 3, 'UTC') AND toDateTime64({pto:String}, 3, 'UTC') AND event_id IN {ids:Array(String)}`;
    const [payloads, predictions, labelRows] = await Promise.all([
      store.query<PayloadRead>(
        `SELECT event_id, source, content_type, content_encoding, header_length, truncated, storage, body,
                expires_at <= now() AS expired
         FROM ${ShadowTables.payloads} WHERE ${inRange}
         ORDER BY inserted_at DESC LIMIT 1 BY event_id`,
        { params: range, label: 'shadow replay payloads' },
      ),
      store.query<PredictionRead>(
        `SELECT event_id, row, features_num, features_cat, outputs_num, outputs_cat
         FROM ${Tables.predictions} WHERE ${inRange}
         ORDER BY event_id, row LIMIT 1 BY event_id, row`,
        { params: range, label: 'shadow replay predictions' },
      ),
      store.query<{ request_id: string; row: number; label: string }>(
        `SELECT request_id, row, argMax(label, received_at) AS label FROM ${Tables.labels}
         WHERE request_id IN {rids:Array(String)} GROUP BY request_id, row`,
        { params: { rids: [...new Set(calls.map((c) => c.request_id))] }, label: 'shadow replay labels' },
      ),
    ]);
    for (const l of labelRows) labels.set(`${l.request_id}\u0000${num(l.row)}`, l.label);
    const payloadBy = new Map(payloads.map((p) => [p.event_id, p]));
    const rowsBy = new Map<string, PredictionRead[]>();
    for (const r of predictions) {
      let list = rowsBy.get(r.event_id);
      if (!list) rowsBy.set(r.event_id, (list = []));
      list.push({ ...r, row: num(r.row) });
    }
    for (const call of calls) {
      if (budget <= 0) break;
      callsRead++;
      const rows = (rowsBy.get(call.event_id) ?? []).sort((a, b) => a.row - b.row);
      if (rows.length === 0) continue;
      const n = rows.length;
      if (rows.every((r) => Object.keys(r.outputs_num).length === 0 && Object.keys(r.outputs_cat).length === 0)) {
        skip('no_output', n);
        continue;
      }
      const p = payloadBy.get(call.event_id);
      let tensors: ShadowTensor[] | undefined;
      let source: Prepared['source'] = 'payload';
      let reason: SkipReason | undefined;
      // A row deleted by its TTL looks like one never stored: older than the retention means expired.
      if (p === undefined) reason = call.t + retentionMs <= Date.now() ? 'expired' : 'missing';
      else if (num(p.expired) === 1) reason = 'expired';
      else if (p.truncated) reason = 'truncated';
      else {
        try {
          tensors = payloadTensors({
            source: p.source,
            body: decodePayloadBody(p.storage, p.body),
            contentType: p.content_type,
            contentEncoding: p.content_encoding,
            headerLength: num(p.header_length) >= 0 ? num(p.header_length) : undefined,
          });
          if (batchRows(tensors) !== n) {
            tensors = undefined;
            reason = 'undecodable';
          }
        } catch {
          reason = 'undecodable';
        }
      }
      if (tensors === undefined) {
        tensors = rebuildFromFeatures(cand.inputs, rows, schema, o.inputMap);
        source = 'features';
      }
      if (tensors === undefined) {
        skip(reason ?? 'missing', n);
        continue;
      }
      if (n > budget) {
        // Keep the row limit exact: the first `budget` rows of this call.
        tensors = tensors.map((t) => sliceRows(t, budget));
        rows.length = budget;
      }
      budget -= rows.length;
      prodLatency.push(call.latency_ms);
      await enqueue({ call, tensors, source, rows });
    }
    const fraction = Math.min(1, callsRead / totalCalls);
    o.onProgress?.({ rows: rowsDone, skipped: sumSkips(skips), fraction });
    if (Date.now() - lastProgressWrite > 2000) {
      lastProgressWrite = Date.now();
      o.record.updated_at = Math.max(Date.now(), o.record.updated_at + 1);
      await writeRun(store, { ...o.record, progress: fraction, rows: rowsDone, skipped: sumSkips(skips) });
    }
    if (calls.length < PAGE_CALLS) break;
  }
  for (const list of pending.values()) await submit(list);
  pending.clear();
  await Promise.all(inflight);
  const wallMs = performance.now() - wall0;
  o.onProgress?.({ rows: rowsDone, skipped: sumSkips(skips), fraction: 1 });

  const skipped = sumSkips(skips);
  const classify = spec !== null && spec !== undefined && spec.task !== 'regression';
  let classification: ClassificationComparison | null = null;
  if (classify) {
    const segments: Record<string, (string | null)[]> = { version: versions };
    for (const [k, arr] of catValues) {
      if (new Set(arr.filter((v) => v !== null)).size <= SEGMENT_MAX_VALUES) segments[`feature:${k}`] = arr;
    }
    for (const [f, arr] of driftValues) segments[`drifted:${f}`] = quartileSlices(arr);
    classification = compareClassification(prodLabels, candLabels, { segments });
  }
  const differences = prodScores.length > 0 ? compareScores(prodScores, candScores) : null;
  const drift = [...prodColumns].map(([col, a]) => outputDrift(col, a, candColumns.get(col) ?? []));
  let measured: ShadowReport['performance']['measured'] = null;
  let labelled = 0;
  if (truthCls.length > 0) {
    labelled = truthCls.length;
    measured = { classification: classificationPerformance(truthCls, truthProd, truthCand) };
  } else if (truthNum.length > 0) {
    labelled = truthNum.length;
    const n = Math.min(truthNum.length, BOOTSTRAP_MAX_ROWS);
    measured = { regression: pairedBootstrap(truthNum.slice(0, n), regProd.slice(0, n), regCand.slice(0, n)) };
  }
  let estimated: ShadowReport['performance']['estimated'] = null;
  if (spec && classify && candProbs.length > 0 && (spec.task === 'binary' || spec.task === 'multiclass')) {
    const est = (probs: number[][]): EstimatedMetrics | null => {
      try {
        return finishCbpe(
          cbpeAggregates({
            task: spec?.task as 'binary' | 'multiclass',
            classes: spec?.classes ?? [],
            positive: spec?.positive ?? '1',
            probabilities: probs,
          }),
        );
      } catch {
        return null;
      }
    };
    estimated = { production: est(prodProbs), candidate: est(candProbs) };
  }
  const latency = summarizeLatency(timings, wallMs);
  const { verdict, reasons } = decideVerdict(
    {
      rows: rowsDone,
      skipped,
      agreement: classification?.agreement,
      differences: differences ?? undefined,
      classification: measured?.classification,
      regression: measured?.regression,
      latency,
    },
    deps.config.shadow.verdict,
  );
  if (spec === null) reasons.push('no prediction column could be read from the stored outputs');
  return {
    run_id: o.runId,
    model,
    window: { from: new Date(o.fromMs).toISOString(), to: new Date(o.toMs).toISOString() },
    rows: rowsDone,
    skipped,
    skipped_by_reason: skips,
    inputs: inputsBy,
    task: spec?.task ?? null,
    agreement: classification ? classification.agreement : null,
    classification: classification
      ? {
          agreements: classification.agreements,
          classes: classification.classes,
          flipMatrix: classification.flipMatrix,
          flips: classification.flips,
          segments: classification.segments,
        }
      : null,
    differences,
    output_drift: drift,
    performance: { labelled_rows: labelled, measured, estimated },
    latency_ms: { candidate: latency, production: summarize(prodLatency) },
    verdict,
    reasons,
  };
}

function sumSkips(s: Record<SkipReason, number>): number {
  return Object.values(s).reduce((a, b) => a + b, 0);
}

function sliceRows(t: ShadowTensor, rows: number): ShadowTensor {
  const per = t.shape.slice(1).reduce((a, b) => a * b, 1);
  return { ...t, shape: [rows, ...t.shape.slice(1)], data: t.data.slice(0, rows * per) };
}
