/**
 * Shadow results in ClickHouse (`mw_shadow_runs`, `mw_shadow_outputs`) and `modelwatch_shadow_*` metrics.
 */
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { counterOn, gaugeOn, histogramOn } from '../common/metrics.js';
import { ShadowTables } from '../store/migrations.js';
import type { SqlPort } from '../store/port.js';
import { toChTime } from '../store/store.js';

/** States of a replay run. */
export const ShadowRunStatuses = ['running', 'done', 'failed'] as const;
/** One of {@link ShadowRunStatuses}. */
export type ShadowRunStatus = (typeof ShadowRunStatuses)[number];

/** One state of a run, as stored. */
export interface ShadowRunRecord {
  run_id: string;
  model: string;
  candidate: string;
  candidate_sha256: string;
  execution_provider: string;
  status: ShadowRunStatus;
  /** 0–1. */
  progress: number;
  /** Epoch ms. */
  window_from: number;
  window_to: number;
  created_at: number;
  updated_at: number;
  rows: number;
  skipped: number;
  agreement: number | null;
  verdict: string;
  reasons: string[];
  error: string;
  /** The full report (JSON), '' while running. */
  result: string;
}

/** Writes one state of a run (the newest `updated_at` wins). */
export async function writeRun(store: SqlPort, r: ShadowRunRecord): Promise<void> {
  await store.insert(ShadowTables.runs, [
    {
      ...r,
      window_from: toChTime(r.window_from),
      window_to: toChTime(r.window_to),
      created_at: toChTime(r.created_at),
      updated_at: toChTime(r.updated_at),
    },
  ]);
}

const RUN_COLUMNS = `run_id, model, candidate, candidate_sha256, execution_provider, status, progress,
  toUnixTimestamp64Milli(window_from) AS window_from, toUnixTimestamp64Milli(window_to) AS window_to,
  toUnixTimestamp64Milli(created_at) AS created_at, toUnixTimestamp64Milli(updated_at) AS updated_at,
  rows, skipped, agreement, verdict, reasons, error, result`;

function fromRow(r: ShadowRunRecord): ShadowRunRecord {
  return {
    ...r,
    window_from: Number(r.window_from),
    window_to: Number(r.window_to),
    created_at: Number(r.created_at),
    updated_at: Number(r.updated_at),
    rows: Number(r.rows),
    skipped: Number(r.skipped),
    agreement: r.agreement === null ? null : Number(r.agreement),
  };
}

/** The newest state of a run, or undefined. */
export async function readRun(store: SqlPort, runId: string): Promise<ShadowRunRecord | undefined> {
  const rows = await store.query<ShadowRunRecord>(
    `SELECT ${RUN_COLUMNS} FROM ${ShadowTables.runs} WHERE run_id = {id:String}
     ORDER BY updated_at DESC, status = 'running' ASC LIMIT 1`,
    { params: { id: runId }, label: 'shadow run' },
  );
  return rows[0] ? fromRow(rows[0]) : undefined;
}

/** The newest state of each run, newest runs first, optionally of one model. */
export async function listRuns(store: SqlPort, model?: string, limit = 100): Promise<ShadowRunRecord[]> {
  const rows = await store.query<ShadowRunRecord>(
    `SELECT ${RUN_COLUMNS} FROM ${ShadowTables.runs}
     WHERE {model:String} = '' OR model = {model:String}
     ORDER BY updated_at DESC, status = 'running' ASC LIMIT 1 BY run_id
     LIMIT {limit:UInt32}`,
    { params: { model: model ?? '', limit }, label: 'shadow runs' },
  );
  return rows.map(fromRow).sort((a, b) => b.created_at - a.created_at);
}

/** One replayed row as stored in `mw_shadow_outputs`. */
export interface ShadowOutputRow {
  run_id: string;
  model: string;
  ts: number;
  event_id: string;
  request_id: string;
  row: number;
  input_source: 'payload' | 'features';
  outputs_num: Record<string, number>;
  outputs_cat: Record<string, string>;
  production_label: string;
  candidate_label: string;
  agree: boolean | null;
  abs_diff: number | null;
}

function finiteMap(m: Record<string, number>): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const [k, v] of Object.entries(m))
    out[k] = Number.isFinite(v) ? v : Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
  return out;
}

/** Inserts per-row candidate outputs. */
export async function insertOutputs(store: SqlPort, rows: readonly ShadowOutputRow[]): Promise<void> {
  if (rows.length === 0) return;
  await store.insert(
    ShadowTables.outputs,
    rows.map((r) => ({
      ...r,
      ts: toChTime(r.ts),
      outputs_num: finiteMap(r.outputs_num),
      abs_diff: r.abs_diff !== null && Number.isFinite(r.abs_diff) ? r.abs_diff : null,
    })),
  );
}

/** The shadow runner's Prometheus metrics. */
export interface ShadowMetrics {
  runs: Counter<'model' | 'verdict'>;
  rows: Counter<'model' | 'mode' | 'input'>;
  skipped: Counter<'model' | 'reason'>;
  batchSeconds: Histogram<'model' | 'execution_provider'>;
  agreement: Gauge<'model' | 'candidate' | 'mode'>;
  liveLatencyP99: Gauge<'model' | 'candidate'>;
  executionProvider: Gauge<'model' | 'candidate' | 'execution_provider'>;
}

/** Creates (or re-uses) the `modelwatch_shadow_*` metrics on a registry. */
export function createShadowMetrics(registry: Registry): ShadowMetrics {
  return {
    runs: counterOn(registry, {
      name: 'modelwatch_shadow_runs_total',
      help: 'Finished shadow replay runs by model and verdict (failed runs: verdict="failed").',
      labelNames: ['model', 'verdict'] as const,
    }),
    rows: counterOn(registry, {
      name: 'modelwatch_shadow_rows_total',
      help: 'Rows scored by candidates, by mode (replay|live) and input source (payload|features).',
      labelNames: ['model', 'mode', 'input'] as const,
    }),
    skipped: counterOn(registry, {
      name: 'modelwatch_shadow_skipped_rows_total',
      help: 'Rows a candidate could not score, by reason (expired, truncated, missing, undecodable, no_output, failed).',
      labelNames: ['model', 'reason'] as const,
    }),
    batchSeconds: histogramOn(registry, {
      name: 'modelwatch_shadow_batch_seconds',
      help: 'Time of one candidate batch inside session.run, by execution provider.',
      labelNames: ['model', 'execution_provider'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    }),
    agreement: gaugeOn(registry, {
      name: 'modelwatch_shadow_agreement',
      help: 'Classification agreement of a candidate with production (last replay run or last live interval).',
      labelNames: ['model', 'candidate', 'mode'] as const,
    }),
    liveLatencyP99: gaugeOn(registry, {
      name: 'modelwatch_shadow_live_latency_p99_seconds',
      help: 'p99 of live shadow batch latency over the last interval.',
      labelNames: ['model', 'candidate'] as const,
    }),
    executionProvider: gaugeOn(registry, {
      name: 'modelwatch_shadow_execution_provider',
      help: 'Execution provider a candidate runs on (value 1).',
      labelNames: ['model', 'candidate', 'execution_provider'] as const,
    }),
  };
}
