import type { Config } from '../../config/schema.js';
import type { FeatureKind } from '../../config/model-schema.js';
import { Tables } from '../../store/migrations.js';
import type { Store } from '../../store/store.js';
import { mergeOverrides, type DriftDetection, type WindowQuality } from '../detect-drift.js';
import type { CurrentWindow, SortedReference } from '../exact/index.js';
import { decodeNative, numberColumn, stringColumn, type NativeResult } from '../exact/native.js';
import { mergeFeatures, type FeatureMethod } from '../reference.js';
import { storedFeatureSpecs, type StoredFeature } from '../stats/sample.js';
import type { DriftOverrides, FeatureSpec, SampleProfile } from '../stats/types.js';
import { compareModel, type ModelComparison } from './compare-job.js';
import { failedAnswer, sharedFleetPool, type BatchAnswer, type FleetComparePool } from './compare-pool.js';
import { abortError, driftOutcome, type FleetDriftFn, type FleetDriftResult } from './drift.js';

/** Options of {@link batchedDrift}. */
export interface BatchedDriftOptions {
  /** `detect` (dataset share, FDR) and `models` (overrides, configured references, segments). */
  config: Pick<Config, 'detect' | 'models'>;
  /**
   * The per-model step for the models the batch leaves to it: a configured reference (`models.<m>.reference`),
   * configured segments, or no stored reference yet (the default one may need freezing).
   */
  fallback: FleetDriftFn;
  /** Numeric features read per query (one scan of the map columns per group and slice). @default 25 */
  groupSize?: number;
  /**
   * Values (reference + window, numeric) held in memory at once; larger fleets are read in slices of models,
   * two slices at a time (the next one is read while this one is compared), each at most half of this.
   * @default 16 000 000 (≈ 128 MB of Float64)
   */
  maxValuesInMemory?: number;
  /**
   * Where the comparisons run: a pool of worker threads, or `'inline'` (the calling thread).
   * @default the process-wide fleet pool of two workers
   */
  workers?: FleetComparePool | 'inline';
  /** A slice with fewer numeric values than this is compared inline (no worker start-up). @default 1 000 000 */
  inlineMaxValues?: number;
  /** Models per worker task. @default 16 */
  modelsPerTask?: number;
  /** Volume drop when current rows per hour fall below this share of the reference rate. @default 0.5 */
  volumeDropRatio?: number;
  /** No volume verdict when the reference rate predicts fewer rows than this for the window. @default 20 */
  volumeMinExpectedRows?: number;
}

const defaults = {
  groupSize: 25,
  maxValuesInMemory: 16_000_000,
  inlineMaxValues: 1_000_000,
  modelsPerTask: 16,
  volumeDropRatio: 0.5,
  volumeMinExpectedRows: 20,
};

/** A stored reference record, as much of it as a comparison needs. */
interface RefRecord {
  id: string;
  model: string;
  source: 'traffic' | 'file';
  kind: string;
  fromMs: number | null;
  toMs: number | null;
  firstMs: number | null;
  lastMs: number | null;
  file: string;
  rows: number;
  features: StoredFeature[];
  profile: SampleProfile;
  methods: FeatureMethod[];
}

interface Job {
  model: string;
  ref: RefRecord;
  /** The window under test starts here (after a default reference's end). */
  fromMs: number;
  features: StoredFeature[];
  specs: FeatureSpec[];
  windowRows: number;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function native(store: Store, sql: string, params: Record<string, unknown>, label: string): Promise<NativeResult> {
  if (store.queryBinary === undefined) throw new Error('the batched drift step needs a store with queryBinary');
  return store
    .queryBinary(sql, {
      label,
      params,
      format: 'Native',
      // Plain types only (the decoder reads no LowCardinality dictionaries).
      settings: { low_cardinality_allow_in_native_format: 0 },
    })
    .then(decodeNative);
}

/** The reference each model uses when none is named: its active one, else its newest default (or legacy) one. */
async function referenceIds(store: Store, models: readonly string[]): Promise<Map<string, string>> {
  const rows = await store.query<{ model: string; pinned: string; implicit: string }>(
    `SELECT model, argMax(reference_id, activated_at) AS pinned, '' AS implicit FROM ${Tables.referenceActive}
       WHERE model IN {models:Array(String)} GROUP BY model
     UNION ALL
     SELECT model, '' AS pinned, argMax(id, (created_at, id)) AS implicit FROM ${Tables.references} FINAL
       WHERE model IN {models:Array(String)} AND kind IN ('default', 'legacy') GROUP BY model`,
    { label: 'fleet reference ids', params: { models: [...models] } },
  );
  const pinned = new Map<string, string>();
  const implicit = new Map<string, string>();
  for (const r of rows) {
    if (r.pinned !== '') pinned.set(r.model, r.pinned);
    if (r.implicit !== '') implicit.set(r.model, r.implicit);
  }
  const out = new Map<string, string>();
  for (const m of models) {
    const id = pinned.get(m) ?? implicit.get(m);
    if (id !== undefined) out.set(m, id);
  }
  return out;
}

async function referenceRecords(store: Store, ids: readonly string[]): Promise<Map<string, RefRecord>> {
  const rows = await store.query<{
    id: string;
    model: string;
    source: string;
    kind: string;
    from_ms: number | null;
    to_ms: number | null;
    first_ms: number | null;
    last_ms: number | null;
    file: string;
    rows: number;
    profile: string;
    methods: string;
  }>(
    `SELECT id, model, source, kind,
       toUnixTimestamp64Milli(window_from) AS from_ms, toUnixTimestamp64Milli(window_to) AS to_ms,
       toUnixTimestamp64Milli(first_row_at) AS first_ms, toUnixTimestamp64Milli(last_row_at) AS last_ms,
       file, rows, profile, methods
     FROM ${Tables.references} FINAL WHERE id IN {ids:Array(String)}
     ORDER BY created_at DESC LIMIT 1 BY id`,
    { label: 'fleet reference records', params: { ids: [...ids] } },
  );
  const out = new Map<string, RefRecord>();
  for (const r of rows) {
    const stored = JSON.parse(r.profile) as { features: StoredFeature[]; profile: SampleProfile };
    out.set(r.id, {
      id: r.id,
      model: r.model,
      source: r.source === 'file' ? 'file' : 'traffic',
      kind: r.kind,
      fromMs: num(r.from_ms),
      toMs: num(r.to_ms),
      firstMs: num(r.first_ms),
      lastMs: num(r.last_ms),
      file: r.file,
      rows: Number(r.rows),
      features: stored.features,
      profile: stored.profile,
      methods: r.methods === '' ? [] : (JSON.parse(r.methods) as FeatureMethod[]),
    });
  }
  return out;
}

/** Features present in each model's traffic in the window (by model), sorted as `mergeFeatures` sorts. */
async function currentFeatures(
  store: Store,
  models: readonly string[],
  fromMs: number,
  toMs: number,
): Promise<Map<string, StoredFeature[]>> {
  const rows = await store.query<{ model: string; fn: string[]; fc: string[]; on: string[]; oc: string[] }>(
    `SELECT model, groupUniqArrayArray(mapKeys(features_num)) AS fn, groupUniqArrayArray(mapKeys(features_cat)) AS fc,
            groupUniqArrayArray(mapKeys(outputs_num)) AS on, groupUniqArrayArray(mapKeys(outputs_cat)) AS oc
     FROM ${Tables.predictions}
     WHERE model IN {models:Array(String)}
       AND ts >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
     GROUP BY model`,
    { label: 'fleet window features', params: { models: [...models], from: Math.floor(fromMs), to: Math.floor(toMs) } },
  );
  const out = new Map<string, StoredFeature[]>();
  for (const r of rows) {
    const list: StoredFeature[] = [];
    const add = (names: string[], kind: FeatureKind, output: boolean): void => {
      for (const name of names) list.push({ name, kind, ...(output ? { output: true } : {}) });
    };
    add(r.fn, 'numeric', false);
    add(r.fc, 'categorical', false);
    add(r.on, 'numeric', true);
    add(r.oc, 'categorical', true);
    out.set(r.model, mergeFeatures([], list));
  }
  return out;
}

const mapOf = (f: StoredFeature): string =>
  `${f.output === true ? 'outputs' : 'features'}_${f.kind === 'numeric' ? 'num' : 'cat'}`;

function overridesFor(config: BatchedDriftOptions['config'], model: string): DriftOverrides | undefined {
  const d = config.models[model]?.drift;
  if (d === undefined) return undefined;
  return { default: d.default, features: d.features };
}

/** Numeric values (reference + window) of a job. */
function valuesOf(j: Job): number {
  return (j.ref.rows + j.windowRows) * j.specs.filter((s) => s.kind === 'numeric').length;
}

/**
 * Splits `jobs` into slices whose numeric values (reference + window) stay under `budget`; one slice when
 * the whole fleet fits.
 */
function slices(jobs: readonly Job[], budget: number): Job[][] {
  const out: Job[][] = [];
  let cur: Job[] = [];
  let size = 0;
  for (const j of jobs) {
    const v = valuesOf(j);
    if (cur.length > 0 && size + v > budget) {
      out.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(j);
    size += v;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/**
 * The drift step of a cycle for a whole fleet, exact as the per-model engine: the models' stored references
 * and their windows are read together — reference ids and records in one statement each, the stored sorted
 * reference values and the current windows in one `Native` query per group of numeric features for all models
 * (split by model in memory), categorical counts in one query, quarantine counts in one — then each model's
 * window is compared in memory against its sorted reference ({@link compareModel}: the exact engine's
 * comparison), in the worker pool in tasks of `modelsPerTask` models while the next slice of models is read.
 * Models with a configured reference, configured segments, or no stored reference yet go to `fallback`
 * (per model).
 */
export function batchedDrift(options: BatchedDriftOptions): FleetDriftFn {
  const o = { ...defaults, ...options };
  return async (store, request) => {
    const { from, to, signal } = request;
    const check = (): void => {
      if (signal?.aborted === true) throw abortError(signal);
    };
    const out = new Map<string, FleetDriftResult>();
    const all = request.models.map((m) => m.model);
    request.inFlight(all);
    const candidates = request.models.filter(
      (m) => m.splits.length === 0 && o.config.models[m.model]?.reference === undefined,
    );
    const ids =
      candidates.length > 0
        ? await referenceIds(
            store,
            candidates.map((m) => m.model),
          )
        : new Map<string, string>();
    check();
    const records =
      ids.size > 0 ? await referenceRecords(store, [...new Set(ids.values())]) : new Map<string, RefRecord>();
    check();
    const jobs: Job[] = [];
    for (const m of candidates) {
      const id = ids.get(m.model);
      const ref = id === undefined ? undefined : records.get(id);
      if (ref === undefined) continue;
      // The window under test never overlaps a default reference: it starts after the reference's end.
      const fromMs = ref.kind === 'default' && ref.toMs !== null ? Math.min(to, Math.max(from, ref.toMs)) : from;
      jobs.push({ model: m.model, ref, fromMs, features: [], specs: [], windowRows: m.rows ?? 0 });
    }
    const batched = new Set(jobs.map((j) => j.model));

    if (jobs.length > 0) {
      const cur = await currentFeatures(store, [...batched], Math.min(...jobs.map((j) => j.fromMs)), to);
      check();
      for (const j of jobs) {
        j.features = mergeFeatures(j.ref.features, cur.get(j.model) ?? []);
        j.specs = storedFeatureSpecs(j.features);
      }
      const quarantine = await quarantineByModel(store, [...batched], Math.min(...jobs.map((j) => j.fromMs)), to);
      check();
      const parts = slices(jobs, o.maxValuesInMemory / 2);
      const read = async (slice: Job[]): Promise<SliceData> => ({
        slice,
        windows: await readWindows(store, slice, to, o.groupSize, check),
        refs: await readReferences(store, slice, o.groupSize, check),
      });
      // The next slice is read while this one is compared (in the workers).
      let pending: Promise<SliceData> | undefined = parts.length > 0 ? read(parts[0]!) : undefined;
      for (let k = 0; pending !== undefined; k++) {
        const { slice, windows, refs } = await pending;
        pending = k + 1 < parts.length ? read(parts[k + 1]!) : undefined;
        pending?.catch(() => undefined);
        const work: Array<{ job: Job; comparison: ModelComparison }> = [];
        for (const j of slice) {
          const current = windows.get(j.model);
          const reference = refs.get(j.model);
          if (!current || !reference) continue;
          work.push({
            job: j,
            comparison: {
              reference,
              current,
              features: j.specs,
              overrides: mergeOverrides(overridesFor(o.config, j.model), j.ref.methods),
              datasetShare: o.config.detect.datasetShare,
              fdr: o.config.detect.fdr,
            },
          });
        }
        const answers = await compareAll(
          work.map((w) => w.comparison),
          slice.reduce((t, j) => t + valuesOf(j), 0) < o.inlineMaxValues ? 'inline' : (o.workers ?? sharedFleetPool()),
          o.modelsPerTask,
        );
        check();
        work.forEach(({ job: j }, i) => {
          const answer = answers[i]!;
          if (!answer.ok) {
            const error = Object.assign(
              new Error(answer.message),
              answer.code !== undefined ? { code: answer.code } : {},
            );
            out.set(j.model, { outcome: driftOutcome({ error }), segments: [] });
            return;
          }
          const report = answer.report;
          const quality = windowQuality(j, to, report.current.rows, quarantine.get(j.model) ?? [], o);
          const detection: DriftDetection = {
            ...report,
            reference: {
              id: j.ref.id,
              source: j.ref.source,
              kind: j.ref.kind,
              from: iso(j.ref.fromMs),
              to: iso(j.ref.toMs),
              ...(j.ref.file !== '' ? { file: j.ref.file } : {}),
              rows: report.reference.rows,
            },
            current: { rows: report.current.rows, from: iso(j.fromMs), to: iso(to) },
            model: j.model,
            window: { from: new Date(j.fromMs).toISOString(), to: new Date(to).toISOString() },
            quality,
          };
          out.set(j.model, { outcome: driftOutcome({ report: detection }), segments: [] });
        });
      }
    }
    // Whatever the batch did not answer (no stored reference, configured ones, unsorted legacy ones): per model.
    const rest = request.models.filter((m) => !out.has(m.model));
    if (rest.length > 0) {
      const more = await o.fallback(store, { ...request, models: rest });
      for (const [k, v] of more) out.set(k, v);
    }
    request.inFlight(all);
    return out;
  };
}

/** One slice of models with its windows and sorted references read. */
interface SliceData {
  slice: Job[];
  windows: Map<string, CurrentWindow>;
  refs: Map<string, SortedReference>;
}

/**
 * Compares models (answers in order): on the calling thread, or in the pool's workers in tasks of
 * `perTask` models (all tasks queued at once, the workers take them in turn). A failed task fails its models.
 */
async function compareAll(
  list: readonly ModelComparison[],
  workers: FleetComparePool | 'inline',
  perTask: number,
): Promise<BatchAnswer[]> {
  if (workers === 'inline') {
    const out: BatchAnswer[] = [];
    for (const c of list) {
      try {
        out.push({ ok: true, report: await compareModel(c) });
      } catch (err) {
        out.push(failedAnswer(err));
      }
    }
    return out;
  }
  const tasks: Array<Promise<BatchAnswer[]>> = [];
  for (let i = 0; i < list.length; i += perTask) {
    const batch = list.slice(i, i + perTask);
    tasks.push(workers.run(batch).catch((err: unknown) => batch.map(() => failedAnswer(err))));
  }
  return (await Promise.all(tasks)).flat();
}

/** Quarantined records per model (receipt time ms, code) from `fromMs` to `toMs`, one statement. */
async function quarantineByModel(
  store: Store,
  models: readonly string[],
  fromMs: number,
  toMs: number,
): Promise<Map<string, Array<{ t: number; code: string; n: number }>>> {
  const rows = await store.query<{ model: string; t: number; code: string; n: number }>(
    `SELECT model, toUnixTimestamp64Milli(received_at) AS t, code, count() AS n FROM ${Tables.quarantine}
     WHERE model IN {models:Array(String)}
       AND received_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND received_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
     GROUP BY model, t, code`,
    {
      label: 'fleet quarantine query',
      params: { models: [...models], from: Math.floor(fromMs), to: Math.floor(toMs) },
    },
  );
  const out = new Map<string, Array<{ t: number; code: string; n: number }>>();
  for (const r of rows) {
    let list = out.get(r.model);
    if (!list) out.set(r.model, (list = []));
    list.push({ t: Number(r.t), code: r.code, n: Number(r.n) });
  }
  return out;
}

/** Window-level data quality of one model, as the per-model engine computes it (now = the window's end). */
function windowQuality(
  j: Job,
  toMs: number,
  currentRows: number,
  quarantined: ReadonlyArray<{ t: number; code: string; n: number }>,
  o: { volumeDropRatio: number; volumeMinExpectedRows: number },
): WindowQuality {
  const byCode: Record<string, number> = {};
  let total = 0;
  for (const q of quarantined) {
    if (q.t < j.fromMs || q.t >= toMs) continue;
    byCode[q.code] = (byCode[q.code] ?? 0) + q.n;
    total += q.n;
  }
  const sorted = Object.fromEntries(Object.entries(byCode).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const first = j.ref.firstMs;
  const last = j.ref.lastMs;
  const rate = first !== null && last !== null && last > first ? { rows: j.ref.rows, spanMs: last - first } : null;
  const elapsed = Math.max(0, toMs - j.fromMs);
  const expected = rate === null ? null : (rate.rows / rate.spanMs) * elapsed;
  const ratio = expected !== null && expected > 0 ? currentRows / expected : null;
  const judged = expected !== null && expected >= o.volumeMinExpectedRows;
  return {
    quarantined: total,
    quarantined_by_code: sorted,
    volume: {
      current_rows: currentRows,
      expected_rows: expected,
      ratio,
      drop: judged && ratio !== null && ratio < o.volumeDropRatio,
    },
  };
}

/**
 * The current windows of a slice of models: numeric features (the union over the slice) in groups, one
 * `Native` query per group for all models, rows split by model; categorical counts in one query.
 */
async function readWindows(
  store: Store,
  jobs: readonly Job[],
  toMs: number,
  groupSize: number,
  check: () => void,
): Promise<Map<string, CurrentWindow>> {
  const models = jobs.map((j) => j.model);
  const index = new Map(models.map((m, i) => [m, i]));
  const fromMs = Math.min(...jobs.map((j) => j.fromMs));
  const starts = jobs.map((j) => j.fromMs);
  const needTime = starts.some((s) => s > fromMs);
  const union = new Map<string, StoredFeature>();
  for (const j of jobs) for (const f of j.features) union.set(storedFeatureSpecs([f])[0]!.column, f);
  const numeric = [...union.entries()].filter(([, f]) => f.kind === 'numeric');
  const categorical = [...union.entries()].filter(([, f]) => f.kind === 'categorical');
  const base = {
    models,
    idx: models.map((_m, i) => i),
    from: Math.floor(fromMs),
    to: Math.floor(toMs),
  };
  // FINAL collapses duplicate deliveries, as the per-model sample does.
  const where = `FROM ${Tables.predictions} FINAL
     WHERE model IN {models:Array(String)}
       AND ts >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({to:Int64}, 'UTC')`;
  const mi = `CAST(transform(toString(model), {models:Array(String)}, {idx:Array(UInt32)}, toUInt32(0)) AS UInt32) AS __mw_m`;
  const tcol = needTime ? ', toUnixTimestamp64Milli(ts) AS __mw_t' : '';
  const rows = new Float64Array(models.length);
  const keep = (m: number, t: number): boolean => !needTime || t >= (starts[m] ?? 0);
  const numericOut = models.map(() => new Map<string, Float64Array>());
  const groups: Array<Array<[string, StoredFeature]>> = [];
  for (let i = 0; i < numeric.length; i += groupSize) groups.push(numeric.slice(i, i + groupSize));
  if (groups.length === 0) groups.push([]);
  let counted = false;
  for (const group of groups) {
    const params: Record<string, unknown> = { ...base };
    const cols = group.map(([, f], i) => {
      params[`k${i}`] = f.name;
      const map = mapOf(f);
      return `if(mapContains(${map}, {k${i}:String}), ${map}[{k${i}:String}], nan) AS __mw_n${i}`;
    });
    const res = await native(store, `SELECT ${[mi, ...cols].join(', ')}${tcol} ${where}`, params, 'fleet window read');
    check();
    const m = numberColumn(res, '__mw_m');
    const t = needTime ? numberColumn(res, '__mw_t') : null;
    const sizes = new Float64Array(models.length);
    for (let r = 0; r < res.rows; r++) if (keep(m[r]!, t ? t[r]! : 0)) sizes[m[r]!]!++;
    if (!counted) {
      rows.set(sizes);
      counted = true;
    }
    group.forEach(([column], i) => {
      const src = numberColumn(res, `__mw_n${i}`);
      const dst = models.map((_x, k) => new Float64Array(sizes[k]!));
      const at = new Uint32Array(models.length);
      for (let r = 0; r < res.rows; r++) {
        const k = m[r]!;
        if (!keep(k, t ? t[r]! : 0)) continue;
        dst[k]![at[k]!++] = src[r]!;
      }
      dst.forEach((arr, k) => numericOut[k]!.set(column, arr));
    });
  }
  const catOut = models.map(() => new Map<string, Map<string, number>>());
  if (categorical.length > 0) {
    const params: Record<string, unknown> = { ...base };
    const branches = categorical.map(([, f], i) => {
      params[`c${i}`] = f.name;
      const map = mapOf(f);
      return `SELECT toUInt32(${i}) AS __mw_f, __mw_m, __mw_v, count() AS __mw_c FROM (
          SELECT ${mi}, if(mapContains(${map}, {c${i}:String}), ${map}[{c${i}:String}], '') AS __mw_v${tcol} ${where}
          ${needTime ? `AND __mw_t >= {starts:Array(Int64)}[__mw_m + 1]` : ''}
        ) GROUP BY __mw_m, __mw_v`;
    });
    if (needTime) params.starts = starts.map((s) => Math.floor(s));
    const res = await native(store, branches.join('\nUNION ALL\n'), params, 'fleet window categories');
    check();
    const fi = numberColumn(res, '__mw_f');
    const mm = numberColumn(res, '__mw_m');
    const vs = stringColumn(res, '__mw_v');
    const cs = numberColumn(res, '__mw_c');
    for (let r = 0; r < res.rows; r++) {
      const col = categorical[fi[r]!]?.[0];
      const k = mm[r]!;
      if (col === undefined) continue;
      let counts = catOut[k]!.get(col);
      if (!counts) catOut[k]!.set(col, (counts = new Map<string, number>()));
      counts.set(vs[r]!, cs[r]!);
    }
  }
  const out = new Map<string, CurrentWindow>();
  for (const j of jobs) {
    const k = index.get(j.model)!;
    const wanted = new Set(j.specs.map((s) => s.column));
    const numericMap = new Map([...numericOut[k]!].filter(([c]) => wanted.has(c)));
    // A feature the model does not have in this window is missing on every row (the engine's rule).
    out.set(j.model, {
      rows: rows[k]!,
      numeric: numericMap,
      categorical: new Map([...catOut[k]!].filter(([c]) => wanted.has(c))),
    });
  }
  return out;
}

/**
 * The sorted references of a slice of models: the stored sorted values (`mw_reference_sorted`), one `Native`
 * query per group of numeric columns for every reference of the slice.
 */
async function readReferences(
  store: Store,
  jobs: readonly Job[],
  groupSize: number,
  check: () => void,
): Promise<Map<string, SortedReference>> {
  const ids = [...new Set(jobs.map((j) => j.ref.id))];
  const columns = new Set<string>();
  for (const j of jobs)
    for (const p of j.ref.profile.features) if (p.kind === 'numeric' && p.n > 0) columns.add(p.column);
  const sorted = new Map<string, Float64Array>();
  const list = [...columns];
  for (let i = 0; i < list.length; i += groupSize) {
    const res = await native(
      store,
      `SELECT reference_id, column, values FROM ${Tables.referenceSorted}
       WHERE reference_id IN {ids:Array(String)} AND column IN {cols:Array(String)}
       LIMIT 1 BY reference_id, column`,
      { ids, cols: list.slice(i, i + groupSize) },
      'fleet sorted references',
    );
    check();
    const rid = stringColumn(res, 'reference_id');
    const col = stringColumn(res, 'column');
    const v = res.columns.get('values');
    if (v?.type !== 'Array(Float64)') continue;
    // Shared memory: the workers read the references without a copy.
    const values = new Float64Array(new SharedArrayBuffer(v.values.length * 8));
    values.set(v.values);
    for (let r = 0; r < res.rows; r++) {
      const start = r === 0 ? 0 : v.offsets[r - 1]!;
      sorted.set(`${rid[r]}\u0000${col[r]}`, values.subarray(start, v.offsets[r]));
    }
  }
  const out = new Map<string, SortedReference>();
  for (const j of jobs) {
    const wanted = new Set(j.specs.map((s) => s.column));
    const features = j.ref.profile.features
      .filter((p) => wanted.has(p.column))
      .map((p) => {
        const s = sorted.get(`${j.ref.id}\u0000${p.column}`);
        return {
          name: p.name,
          kind: p.kind,
          column: p.column,
          ...(p.output === true ? { output: true } : {}),
          profile: p,
          ...(s !== undefined ? { sorted: s } : {}),
        };
      });
    // A numeric feature whose sorted values were not stored (a reference older than sorted storage): leave the
    // model to the per-model engine, which sorts such references from their rows.
    if (features.some((f) => f.kind === 'numeric' && f.profile.n > 0 && f.sorted === undefined)) continue;
    out.set(j.model, { id: j.ref.id, rows: j.ref.profile.rows, features });
  }
  return out;
}
