import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import { parseTime } from '../common/time.js';
import type { Config } from '../config/schema.js';
import { embeddingColumnsSkipped } from '../config/model-schema.js';
import { Tables } from '../store/migrations.js';
import type { Store } from '../store/store.js';
import { storeErrorCodes } from '../store/errors.js';
import {
  NoReferenceError,
  discoverFeatures,
  getReference,
  mergeFeatures,
  resolveModelReference,
  successfulRowsSql,
  type FeatureMethod,
  type ReferenceInfo,
} from './reference.js';
import { computeDrift } from './stats/engine.js';
import { stage } from './exact/profile.js';
import {
  compareSampleToReference,
  groupWithin,
  readSortedReference,
  warmSortPool,
  INLINE_MAX_VALUES,
  type SortedCacheOptions,
  type StoredSortedReference,
} from './exact/index.js';
import {
  referenceRowsSample,
  storedFeatureSpecs,
  inlineParams,
  trafficSample,
  type MapLookup,
  type NumericKeyOrders,
  type SampleFilter,
  type StoredFeature,
} from './stats/sample.js';
import type { DriftOverride, DriftOverrides, DriftReport, FeatureSpec, Sample, SampleProfile } from './stats/types.js';
import { readTrafficNumeric } from './exact/traffic-read.js';

/** ClickHouse's exception code for a function the server does not have. */
const UNKNOWN_FUNCTION = 46;

/** How to split the current window into segments. */
export type SegmentBy = 'version' | { feature: string };

/** Which reference to compare against. */
export type ReferenceChoice =
  /** A stored reference by id. */
  | { id: string }
  /** An ad hoc window of the model's own traffic (not stored). */
  | { from: string | number; to: string | number };

/** Options of {@link detectDrift}. */
export interface DetectDriftOptions {
  model: string;
  /** Current window start (ISO-8601 or epoch ms), inclusive. */
  from: string | number;
  /** Current window end, exclusive. */
  to: string | number;
  /**
   * The reference. Default: the model's configured or active reference; without one, its default reference
   * (first `detect.reference.rows` successful rows or `detect.reference.spanMs`, whichever completes first),
   * frozen once complete. The window under test then starts after it. Until it is complete, detection throws
   * {@link NoReferenceError} (code `no_reference`).
   */
  reference?: ReferenceChoice | undefined;
  /** `detect` (dataset share, FDR, default reference size) and `models` (per-model overrides, reference) sections. */
  config: Pick<Config, 'detect' | 'models'>;
  /** Also report drift per model version or per value of a categorical feature. */
  segmentBy?: SegmentBy | undefined;
  /** Most segments reported, largest first. @default 20 */
  maxSegments?: number;
  /** Volume drop when current rows per hour fall below this share of the reference rate. @default 0.5 */
  volumeDropRatio?: number;
  /** No volume verdict when the reference rate predicts fewer rows than this for the window. @default 20 */
  volumeMinExpectedRows?: number;
  /** Clock, epoch ms (tests). @default Date.now() */
  now?: number;
  /**
   * How the window's features are found against a stored reference. `auto`: read the reference's features,
   * count every key of the window's rows (the maps' sizes only) and discover the window's own keys only when
   * some key may lie outside the reference's features; `always`: discover them (read every key of every row)
   * alongside the first reads. Both give the same report. @default 'auto'
   */
  discovery?: 'auto' | 'always' | undefined;
  /**
   * The local cache of a stored reference's sorted values (a stored reference never changes; the store stays
   * the source of truth and every cached file is verified against it). `{dir: false}` turns it off.
   * @default {dir: defaultSortedCacheDir()} (`MODELWATCH_REFERENCE_CACHE`, else `$XDG_CACHE_HOME/modelwatch/sorted-references`)
   */
  referenceCache?: SortedCacheOptions | undefined;
  /**
   * How the window's numeric features are read against a stored reference once its size is known: `lookup`
   * looks each feature up in its `Map` column, a group of features per query (the next group read while the
   * previous one is sorted); `aligned` reads as `lookup` does, except that a row whose keys are in the order of
   * one row of the window (nearly every row) gives each feature at its position there, without comparing it
   * with the row's keys (at 1M rows × 20 features about 0.2–0.3 s less CPU per read, measured under load);
   * `scan` reads each numeric `Map` column once (every value of a row in one scan, split by key position here)
   * when all the window's values fit in 256 MiB, else as `lookup`. Measured at 1M rows × 20 features, `scan`
   * spends about as much CPU in all as `lookup` (less in the engine, more here), holds about 300 MB more, and
   * sorts only after the whole window is read. All three give the same report. @default 'aligned'
   */
  numericRead?: 'aligned' | 'lookup' | 'scan' | undefined;
}

const defaults = {
  maxSegments: 20,
  volumeDropRatio: 0.5,
  volumeMinExpectedRows: 20,
  discovery: 'auto',
  numericRead: 'aligned',
} satisfies Pick<
  Required<DetectDriftOptions>,
  'maxSegments' | 'volumeDropRatio' | 'volumeMinExpectedRows' | 'discovery' | 'numericRead'
>;

/**
 * Numeric features of the window read per query when its row count is known first: each read decodes the
 * whole `Map` column of every row, so fewer, wider reads cost less (the read budget still bounds a group).
 */
const WIDE_GROUP = 20;

/**
 * Bytes of values one wide read holds (the window's, or the stored reference's); a window that fits two of them
 * may be read in one query (see {@link windowReadPlan}).
 */
// 80 MiB: at 1M rows, 10 features per read (when each read held its values about three times while decoded,
// it ran as fast as 192 MiB with about 430 MB less peak RSS).
const WIDE_READ_BYTES = 80 * 2 ** 20;

/**
 * Most bytes of values (8 per key of the window's maps, an upper bound on the numeric values) read by one scan
 * of the window's `Map` columns; larger windows are read per group of features. The scan holds the values
 * about three times while it is decoded and split: at 256 MiB, under 800 MB.
 */
const SCAN_READ_BYTES = 256 * 2 ** 20;

/**
 * How the window's numeric features are read when its row count is known first: features per read, the bytes
 * of values a read may hold, and the reads started ahead of the one before (0: one after the other; 1: two at
 * once).
 *
 * When the window's numeric values fit two wide reads (at 1M rows, 20 features): reads at once, so that they and
 * the category counts, then the sorts, keep both cores busy rather than each waiting for the one before; and a
 * read may hold what two held, so that one query reads all of them. Each read decodes the whole `Map` column of
 * every row: at 1M rows × 20 features one read instead of two took 0.25–0.4 s less engine CPU (of 1.2–1.7 s,
 * measured under load) at the same peak RSS. This holds whether the stored reference comes from the local cache
 * or is read from the store alongside (a cache miss: the sorts wait for it whole either way; measured under load,
 * one read instead of two took about 0.3 s less engine CPU there too, peak RSS within the hit's). Larger windows
 * are read one group of {@link WIDE_READ_BYTES} at a time, which bounds memory to a group being read and the
 * groups being sorted.
 */
export function windowReadPlan(
  rows: number,
  numericFeatures: number,
): { groupSize: number; readBudgetBytes: number; readAhead: number } {
  const atOnce = 8 * rows * numericFeatures <= 2 * WIDE_READ_BYTES;
  return {
    groupSize: WIDE_GROUP,
    readBudgetBytes: atOnce ? 2 * WIDE_READ_BYTES : WIDE_READ_BYTES,
    readAhead: atOnce ? 1 : 0,
  };
}

/** Rows per window against the reference rate. */
export interface VolumeCheck {
  current_rows: number;
  /**
   * The reference's real rate (rows over the time from its first to its last row) × the elapsed part of the
   * window; null when the reference has no time span (files, a single instant).
   */
  expected_rows: number | null;
  ratio: number | null;
  drop: boolean;
}

/** Window-level data quality. */
export interface WindowQuality {
  /** Records of the model quarantined by ingest in the window (shape/type violations), by error code. */
  quarantined: number;
  quarantined_by_code: Record<string, number>;
  volume: VolumeCheck;
}

/** One segment's result. */
export interface SegmentReport {
  by: 'version' | 'feature';
  feature?: string;
  value: string;
  report: DriftReport;
}

/** A drift report for a model's window, with its full context (DESIGN §2 shape plus context keys). */
export interface DriftDetection extends DriftReport {
  model: string;
  window: { from: string; to: string };
  quality: WindowQuality;
  segments?: SegmentReport[];
}

function rows<T>(store: Store, query: string, params: Record<string, unknown>): Promise<T[]> {
  return store.query<T>(query, { label: 'drift detection query', params });
}

interface ResolvedReference {
  sample: Sample;
  features: StoredFeature[];
  profile?: SampleProfile;
  info: Record<string, unknown>;
  /** Real span of the reference (first to last row), ms, and its rows; null for files. */
  rate: { rows: number; spanMs: number } | null;
  /** Methods fixed at the reference's creation. */
  methods: FeatureMethod[];
  /** The window under test starts here at the earliest (the end of a default reference). */
  notBeforeMs: number | null;
}

/** The reference before the current window's features are merged in. */
interface BaseReference {
  stored?: ReferenceInfo;
  window?: { fromMs: number; toMs: number };
}

async function baseReference(store: Store, o: DetectDriftOptions, now: number): Promise<BaseReference> {
  const choice = o.reference;
  if (choice !== undefined && 'id' in choice) {
    const ref = await getReference(store, { id: choice.id });
    if (ref === null)
      throw new ModelwatchError(ErrorCodes.notFound, `reference not found: ${choice.id}`, { field: 'reference' });
    return { stored: ref };
  }
  if (choice !== undefined) {
    const fromMs = parseTime(choice.from, 'reference_from');
    const toMs = parseTime(choice.to, 'reference_to');
    if (fromMs >= toMs)
      throw new ModelwatchError(ErrorCodes.badRequest, 'reference_from: must be before reference_to', {
        field: 'reference_from',
      });
    return { window: { fromMs, toMs } };
  }
  return { stored: await resolveModelReference(store, o.model, { config: o.config, now }) };
}

/** Rows of a window and the keys of their four maps, counted from the maps' sizes (no key is read). */
interface WindowKeys {
  rows: number;
  keys: number;
  /** The key order of one row of the window in each numeric map (see `TrafficSampleOptions.keyOrders`). */
  orders: NumericKeyOrders;
}

/** {@link WindowKeys} over the rows {@link discoverFeatures} reads (the same filter, no FINAL). */
async function windowKeys(store: Store, model: string, fromMs: number, toMs: number): Promise<WindowKeys> {
  const params = { model, from: Math.floor(fromMs), to: Math.floor(toMs) };
  const where = `model = {model:String}
       AND ts >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({to:Int64}, 'UTC')`;
  // One row's key orders (no FINAL: only the common order's guess, every row is checked against it). Its
  // parameters as SQL literals: the embedded engine then runs it alongside the count, not after it.
  const order = inlineParams({
    sql: `SELECT mapKeys(features_num) AS f, mapKeys(outputs_num) AS o FROM ${Tables.predictions} WHERE ${where} LIMIT 1`,
    params,
  });
  const [[r], [first]] = await Promise.all([
    store.query<{ n: number | string; k: number | string }>(
      `SELECT toUInt64(count()) AS n,
              toUInt64(sum(length(features_num) + length(features_cat) + length(outputs_num) + length(outputs_cat))) AS k
       FROM ${Tables.predictions} WHERE ${where}`,
      { label: 'count window keys', params },
    ),
    store.query<{ f: string[]; o: string[] }>(order.sql, { label: 'window key order', params: order.params }),
  ]);
  const orders: NumericKeyOrders = first === undefined ? {} : { features_num: first.f, outputs_num: first.o };
  return { rows: Number(r?.n ?? 0), keys: Number(r?.k ?? 0), orders };
}

/**
 * True when a report over the reference's features proves that the window has no other key: each feature f
 * is present in at least `rows - missing_current(f)` rows (a missing value is an absent key, or a present
 * NaN / empty string), and Σ over f of the rows where f is present is at most the window's key count, equal
 * exactly when no row holds a key outside the features (nor one key twice). So equality of the lower bound
 * with the key count settles it (over the same rows: the row counts must agree too); anything else leaves it
 * to discovery.
 */
function coversWindowKeys(report: DriftReport, features: readonly StoredFeature[], keys: WindowKeys): boolean {
  if (report.features.length !== features.length) return false;
  // The count and the comparison's read are two statements: rows stored (or merged away) between them would
  // make the sums incomparable, so they must have seen the same rows.
  if (report.current.rows !== keys.rows) return false;
  let present = 0;
  for (const f of report.features) present += report.current.rows - f.quality.missing_current;
  return present === keys.keys;
}

async function windowRate(
  store: Store,
  model: string,
  fromMs: number,
  toMs: number,
): Promise<{ rows: number; spanMs: number } | null> {
  const [r] = await rows<{ n: number; first_ms: number | null; last_ms: number | null }>(
    store,
    `SELECT count() AS n, toUnixTimestamp64Milli(min(ts)) AS first_ms, toUnixTimestamp64Milli(max(ts)) AS last_ms
     FROM ${Tables.predictions} FINAL
     WHERE model = {model:String}
       AND ts >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
       AND ${successfulRowsSql()}`,
    { model, from: Math.floor(fromMs), to: Math.floor(toMs) },
  );
  if (r === undefined || Number(r.n) === 0 || r.first_ms === null || r.last_ms === null) return null;
  const spanMs = Number(r.last_ms) - Number(r.first_ms);
  return spanMs > 0 ? { rows: Number(r.n), spanMs } : null;
}

async function resolveReference(
  store: Store,
  model: string,
  base: BaseReference,
  currentFeatures: StoredFeature[],
): Promise<ResolvedReference> {
  const ref = base.stored;
  if (ref !== undefined) {
    const features = mergeFeatures(ref.features, currentFeatures);
    const sameFeatures = features.length === ref.features.length;
    const first = ref.first_row_at === null ? null : Date.parse(ref.first_row_at);
    const last = ref.last_row_at === null ? null : Date.parse(ref.last_row_at);
    return {
      sample: referenceRowsSample(ref.id, features, 'r_'),
      features,
      // The stored profile covers the stored features; with extra current-only features, re-profile.
      ...(sameFeatures ? { profile: reorderProfile(ref.profile, features) } : {}),
      info: {
        id: ref.id,
        source: ref.source,
        kind: ref.kind,
        from: ref.from,
        to: ref.to,
        ...(ref.file !== null ? { file: ref.file } : {}),
      },
      rate: first !== null && last !== null && last > first ? { rows: ref.rows, spanMs: last - first } : null,
      methods: ref.methods,
      notBeforeMs: ref.kind === 'default' && ref.to !== null ? Date.parse(ref.to) : null,
    };
  }
  const { fromMs, toMs } = base.window ?? { fromMs: 0, toMs: 0 };
  const refFeatures = await discoverFeatures(store, model, fromMs, toMs);
  const features = mergeFeatures(refFeatures, currentFeatures);
  return {
    sample: trafficSample({ model, fromMs, toMs, features, paramPrefix: 'r_' }),
    features,
    info: { source: 'traffic', from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() },
    rate: await windowRate(store, model, fromMs, toMs),
    methods: [],
    notBeforeMs: null,
  };
}

/** Same features (name, kind, input/output) in the same order. */
function sameFeatures(a: readonly StoredFeature[], b: readonly StoredFeature[]): boolean {
  return (
    a.length === b.length &&
    a.every((f, i) => f.name === b[i]!.name && f.kind === b[i]!.kind && (f.output === true) === (b[i]!.output === true))
  );
}

function reorderProfile(profile: SampleProfile, features: StoredFeature[]): SampleProfile {
  const specs = storedFeatureSpecs(features);
  const byColumn = new Map(profile.features.map((p) => [p.column, p]));
  return { rows: profile.rows, features: specs.flatMap((s) => byColumn.get(s.column) ?? []) };
}

/**
 * The drift overrides of a run: per feature, the method and threshold fixed in the reference, under the
 * model's configured overrides (a configured feature override, else the configured default, wins key by key).
 */
export function mergeOverrides(
  configured: DriftOverrides | undefined,
  recorded: readonly FeatureMethod[],
): DriftOverrides | undefined {
  const byName = new Map<string, DriftOverride | null>();
  for (const m of recorded) {
    const prev = byName.get(m.name);
    // An input and an output of one name with different methods: leave that name to the automatic choice.
    if (prev === undefined) byName.set(m.name, { method: m.method, threshold: m.threshold });
    else if (prev !== null && (prev.method !== m.method || prev.threshold !== m.threshold)) byName.set(m.name, null);
  }
  const features: Record<string, DriftOverride> = { ...(configured?.features ?? {}) };
  for (const [name, fixed] of byName) {
    if (fixed === null) continue;
    const c = configured?.features?.[name] ?? configured?.default;
    if (c === undefined) features[name] = fixed;
    else if (c.method === undefined)
      features[name] = { method: fixed.method, threshold: c.threshold ?? fixed.threshold };
    else features[name] = c;
  }
  if (configured === undefined && Object.keys(features).length === 0) return undefined;
  return { default: configured?.default, features };
}

function overridesFor(config: DetectDriftOptions['config'], model: string): DriftOverrides | undefined {
  const d = config.models[model]?.drift;
  if (d === undefined) return undefined;
  return { default: d.default, features: d.features };
}

async function windowQuality(
  store: Store,
  model: string,
  window: { fromMs: number; toMs: number; now: number },
  currentRows: number,
  ref: ResolvedReference,
  o: { volumeDropRatio: number; volumeMinExpectedRows: number },
): Promise<WindowQuality> {
  const { fromMs, toMs, now } = window;
  const q = await rows<{ code: string; n: number }>(
    store,
    `SELECT code, count() AS n FROM ${Tables.quarantine}
     WHERE model = {model:String}
       AND received_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND received_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
     GROUP BY code ORDER BY code`,
    { model, from: Math.floor(fromMs), to: Math.floor(toMs) },
  );
  const byCode = Object.fromEntries(q.map((r) => [r.code, Number(r.n)]));
  const quarantined = q.reduce((s, r) => s + Number(r.n), 0);
  // The reference's real rate (rows over first..last row) times the part of the window that has elapsed.
  const elapsed = Math.max(0, Math.min(toMs, now) - fromMs);
  const expected = ref.rate === null ? null : (ref.rate.rows / ref.rate.spanMs) * elapsed;
  const ratio = expected !== null && expected > 0 ? currentRows / expected : null;
  const judged = expected !== null && expected >= o.volumeMinExpectedRows;
  return {
    quarantined,
    quarantined_by_code: byCode,
    volume: {
      current_rows: currentRows,
      expected_rows: expected,
      ratio,
      drop: judged && ratio !== null && ratio < o.volumeDropRatio,
    },
  };
}

async function segmentValues(
  store: Store,
  model: string,
  fromMs: number,
  toMs: number,
  by: SegmentBy,
  limit: number,
): Promise<string[]> {
  const expr = by === 'version' ? 'toString(version)' : 'features_cat[{sf:String}]';
  const r = await rows<{ v: string }>(
    store,
    `SELECT ${expr} AS v, count() AS n FROM ${Tables.predictions}
     WHERE model = {model:String}
       AND ts >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
     GROUP BY v ORDER BY n DESC, v LIMIT {limit:UInt32}`,
    { model, from: Math.floor(fromMs), to: Math.floor(toMs), limit, ...(by === 'version' ? {} : { sf: by.feature }) },
  );
  return r.map((x) => x.v);
}

/**
 * Drift of a model's traffic in `[from, to)` against its reference: every input feature and every output
 * (prediction drift, flagged `"output": true`), per DESIGN §3 with the model's overrides, plus window data
 * quality (quarantined records, volume against the reference rate) and optional per-segment reports.
 */
export async function detectDrift(store: Store, options: DetectDriftOptions): Promise<DriftDetection> {
  const o = { ...defaults, ...options };
  if (!Number.isInteger(o.maxSegments) || o.maxSegments < 1) {
    throw new ModelwatchError(ErrorCodes.configInvalid, 'maxSegments: must be a positive integer', {
      field: 'maxSegments',
    });
  }
  const now = o.now ?? Date.now();
  let fromMs = parseTime(o.from, 'from');
  const toMs = parseTime(o.to, 'to');
  if (fromMs > toMs) throw new ModelwatchError(ErrorCodes.badRequest, 'from: must not be after to', { field: 'from' });
  const base = await baseReference(store, o, now);
  // A stored reference this large sends every numeric feature's job to the sort pool, whatever the window: its
  // workers start now, alongside the window's key count and the reference's cache lookup (cores the engine's
  // start-up and these short statements leave idle), rather than while the window is read.
  if (
    base.stored !== undefined &&
    base.stored.profile.rows >= INLINE_MAX_VALUES &&
    base.stored.features.some((f) => f.kind === 'numeric')
  )
    warmSortPool();
  // The window under test never overlaps the default reference: it starts after the reference's end.
  if (base.stored?.kind === 'default' && base.stored.to !== null)
    fromMs = Math.min(toMs, Math.max(fromMs, Date.parse(base.stored.to)));
  // Embedding elements are left to the multivariate methods unless the embedding says `univariate: true`.
  const skipped = embeddingColumnsSkipped(o.config.models[o.model]);
  const kept = (f: StoredFeature): boolean => f.output === true || !skipped.has(f.name);
  // A stored reference is read once as stored (sorted values per numeric feature): each comparison then reads
  // and sorts only its window. Its read starts now, alongside the window's feature discovery and first reads
  // (it needs only the stored features: the window's own features add none to it). An ad hoc traffic window
  // is compared sample to sample. With `discovery: 'auto'` the window's keys are counted first (see below):
  // the engine runs one statement at a time, and the count gates the window's first read.
  const counted =
    o.discovery === 'auto' && base.stored !== undefined
      ? stage('count window keys', () => windowKeys(store, o.model, fromMs, toMs))
      : undefined;
  counted?.catch(() => undefined);
  const sortedRef =
    base.stored !== undefined
      ? readSortedReference(store, base.stored.id, {
          features: base.stored.features.filter(kept),
          info: base.stored,
          cache: o.referenceCache,
          // In few wide queries (two at 1M rows), so that it is read alongside the window's reads rather than
          // after them: the window's jobs need it whole.
          ...(counted !== undefined
            ? { groupSize: groupWithin(WIDE_GROUP, WIDE_READ_BYTES, base.stored.profile.rows) }
            : {}),
        })
      : undefined;
  const configured = overridesFor(o.config, o.model);
  // Against a stored reference, one key lookup per feature (`arrayElementOrNull`) where the store has the
  // function, else (and for ad hoc windows) two.
  let lookup: MapLookup = 'orNull';
  const againstSorted = async (
    sorted: Promise<StoredSortedReference>,
    stored: ReferenceInfo,
    features: StoredFeature[],
    filter?: SampleFilter,
    counted?: WindowKeys,
  ): Promise<DriftReport> => {
    const expectedRows = counted?.rows;
    // The window's reads at once (literal SQL, read ahead) once its size is known, whether the reference comes
    // from the local cache or from the store (its reads then run alongside; the sorts wait for it whole).
    const together = counted !== undefined;
    // One scan of the maps for every numeric feature when the whole window's values fit the scan's budget.
    const scan = o.numericRead === 'scan' && counted !== undefined && counted.keys * 8 <= SCAN_READ_BYTES;
    const run = (): Promise<DriftReport> =>
      compareSampleToReference(
        store,
        sorted,
        (together ? inlineParams : (x: Sample) => x)(
          trafficSample({
            model: o.model,
            fromMs,
            toMs,
            features,
            paramPrefix: 'c_',
            filter,
            lookup,
            ...(o.numericRead === 'aligned' && counted !== undefined ? { keyOrders: counted.orders } : {}),
          }),
        ),
        storedFeatureSpecs(features),
        {
          overrides: mergeOverrides(configured, stored.methods),
          datasetShare: o.config.detect.datasetShare,
          fdr: o.config.detect.fdr,
          ...(scan
            ? {
                expectedRows,
                groupSize: features.length,
                readBudgetBytes: SCAN_READ_BYTES,
                readNumeric: (group: readonly FeatureSpec[]) =>
                  readTrafficNumeric(store, { model: o.model, fromMs, toMs, filter }, group),
              }
            : expectedRows !== undefined
              ? {
                  expectedRows,
                  ...windowReadPlan(expectedRows, features.filter((f) => f.kind === 'numeric').length),
                }
              : {}),
        },
      );
    try {
      return await run();
    } catch (err) {
      // A server without `arrayElementOrNull` answers UNKNOWN_FUNCTION (46): fall back to two lookups.
      if (lookup !== 'orNull' || storeErrorCodes(err).clickhouseCode !== UNKNOWN_FUNCTION) throw err;
      lookup = 'contains';
      return run();
    }
  };
  // The window nearly always has the reference's features and no others: its comparison starts at once over
  // them, and is dropped (and run again with the window's features) when the window turns out to have others.
  // With `discovery: 'auto'` the window's keys are first counted (cheap: the maps' sizes); the comparison's
  // missing counts then prove, in the usual case, that no row has another key, and discovery (every key of
  // every row) is skipped. The count also sizes the first read.
  const storedFeatures = base.stored === undefined ? undefined : mergeFeatures(base.stored.features, []).filter(kept);
  const stored = base.stored;
  const early =
    sortedRef !== undefined && stored !== undefined && storedFeatures !== undefined
      ? counted !== undefined
        ? counted.then((k) => againstSorted(sortedRef, stored, storedFeatures, undefined, k))
        : againstSorted(sortedRef, stored, storedFeatures)
      : undefined;
  early?.catch(() => undefined);
  let ref: ResolvedReference;
  try {
    const discover = (): Promise<StoredFeature[]> =>
      stage('discover window features', () => discoverFeatures(store, o.model, fromMs, toMs));
    let currentFeatures: StoredFeature[];
    if (counted !== undefined && early !== undefined && storedFeatures !== undefined) {
      const [keys, report] = await Promise.all([counted, early]);
      // Proven: the window's keys are the stored features' (merging them adds nothing).
      currentFeatures = coversWindowKeys(report, storedFeatures, keys) ? [] : await discover();
    } else currentFeatures = await discover();
    ref = await resolveReference(store, o.model, base, currentFeatures);
  } catch (err) {
    await Promise.allSettled([sortedRef, early, counted]);
    throw err;
  }
  if (skipped.size > 0) {
    ref.features = ref.features.filter(kept);
    if (ref.profile) ref.profile = reorderProfile(ref.profile, ref.features);
  }
  const specs = storedFeatureSpecs(ref.features);
  const common = {
    reference: ref.sample,
    features: specs,
    overrides: mergeOverrides(configured, ref.methods),
    datasetShare: o.config.detect.datasetShare,
    fdr: o.config.detect.fdr,
  };
  const compare = (filter?: SampleFilter): Promise<DriftReport> =>
    sortedRef !== undefined && base.stored !== undefined
      ? againstSorted(sortedRef, base.stored, ref.features, filter)
      : computeDrift(store, {
          ...common,
          current: trafficSample({ model: o.model, fromMs, toMs, features: ref.features, paramPrefix: 'c_', filter }),
          referenceProfile: ref.profile,
        });
  let report: DriftReport;
  if (early !== undefined && storedFeatures !== undefined && sameFeatures(storedFeatures, ref.features)) {
    report = await early;
  } else {
    await Promise.allSettled([early]);
    report = await compare();
  }
  ref.info.rows = report.reference.rows;
  // The local cache of the sorted reference, written while the window was compared: finished before returning,
  // so that a process that exits right after detection leaves it complete for the next run.
  if (sortedRef !== undefined) await (await sortedRef).cached;
  const quality = await windowQuality(store, o.model, { fromMs, toMs, now }, report.current.rows, ref, o);
  const out: DriftDetection = {
    ...report,
    reference: { ...ref.info, rows: report.reference.rows },
    current: { rows: report.current.rows, from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() },
    model: o.model,
    window: { from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() },
    quality,
  };
  if (o.segmentBy !== undefined) {
    const by = o.segmentBy;
    const values = await segmentValues(store, o.model, fromMs, toMs, by, o.maxSegments);
    out.segments = [];
    for (const value of values) {
      const filter: SampleFilter = by === 'version' ? { version: value } : { feature: by.feature, value };
      const seg = await compare(filter);
      out.segments.push({
        by: by === 'version' ? 'version' : 'feature',
        ...(by === 'version' ? {} : { feature: by.feature }),
        value,
        report: seg,
      });
    }
  }
  return out;
}

/** What {@link tryDetectDrift} found: a detection, or no reference to compare with yet. */
export type DriftOutcome =
  | { status: 'ok'; detection: DriftDetection }
  | { status: 'no_reference'; message: string; progress: NoReferenceError['progress'] };

/**
 * {@link detectDrift} that returns `{status: 'no_reference'}` instead of throwing while a model's default
 * reference is not complete (no drift verdict, not "no drift"); other failures still throw.
 */
export async function tryDetectDrift(store: Store, options: DetectDriftOptions): Promise<DriftOutcome> {
  try {
    return { status: 'ok', detection: await detectDrift(store, options) };
  } catch (err) {
    if (err instanceof NoReferenceError)
      return { status: 'no_reference', message: err.message, progress: err.progress };
    throw err;
  }
}
