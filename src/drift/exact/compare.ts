/**
 * The exact engine's comparisons: one numeric job per feature (inline or in the worker pool), category counts
 * aligned in JS, and the report rules of `stats/policy.ts`. {@link compareToReference} works on data in
 * memory; {@link compareSamples} and {@link profileSample} read ClickHouse samples first (`read.ts`).
 */
import type { SqlPort, StoreSettings } from '../../store/port.js';
import {
  checkDatasetShare,
  featureReport,
  finishReport,
  type FeatureInputs,
  type NumericMeasures,
} from '../stats/policy.js';
import type { DriftReport, FeatureProfile, FeatureReport, FeatureSpec, Sample, SampleProfile } from '../stats/types.js';
import type { FixedProfile, NumericJobOutput } from './job.js';
import { INLINE_MAX_VALUES, runJob, sharedPool, warmSortPool, type SortPool } from './pool.js';
import {
  NUMERIC_GROUP,
  countRows,
  groupsOf,
  readCategorical,
  readAll,
  readNumeric,
  splitMissing,
  type CategoryCounts,
  type NumericRead,
  type SideRead,
} from './read.js';
import type { CompareOptions, CurrentWindow, SortedReference, SortedReferenceFeature } from './types.js';
import { stage } from './profile.js';

const defaults = { datasetShare: 0.5, fdr: false, distributions: true } as const;

function emptyProfile(spec: FeatureSpec, missing: number): FeatureProfile {
  return {
    name: spec.name,
    kind: spec.kind,
    column: spec.column,
    ...(spec.output === true ? { output: true } : {}),
    n: 0,
    missing,
    non_finite: 0,
  };
}

/** The reference profile of a numeric feature from a job's output. */
function numericProfile(spec: FeatureSpec, out: NumericJobOutput): FeatureProfile {
  const r = out.reference;
  const base = emptyProfile(spec, r.missing);
  base.n = r.n;
  base.non_finite = r.nonFinite;
  if (r.n === 0) return base;
  const s = r.summary;
  return {
    ...base,
    quantiles: s.quantiles,
    edges: s.edges,
    bins: r.bins,
    mean: s.mean,
    std: s.std,
    min: s.min,
    max: s.max,
    distinct: s.distinct,
  };
}

function fixedOf(p: FeatureProfile | undefined): FixedProfile | undefined {
  if (p?.edges === undefined) return undefined;
  return {
    quantiles: p.quantiles,
    mean: p.mean,
    edges: p.edges,
    std: p.std,
    min: p.min,
    max: p.max,
    distinct: p.distinct,
  };
}

/** The exact job of one numeric feature over both sides' raw values, with the stored reference's fixed profile. */
function numericJob(
  spec: FeatureSpec,
  ref: NumericRead,
  cur: NumericRead,
  stored: ReadonlyMap<string, FeatureProfile>,
  o: { pool?: SortPool | 'inline' | undefined; inlineMaxValues?: number | undefined },
): Promise<NumericJobOutput> {
  return runJob(
    {
      reference: { raw: ref.values.get(spec.column)! },
      current: { raw: cur.values.get(spec.column)! },
      fixed: fixedOf(stored.get(spec.column)),
    },
    o.pool,
    o.inlineMaxValues,
  );
}

function measures(out: NumericJobOutput): NumericMeasures | undefined {
  const c = out.comparison;
  if (c === undefined || out.current === undefined) return undefined;
  return {
    ks: { statistic: c.statistic, p_value: c.pValue, method: c.ksMethod },
    wasserstein: c.wasserstein,
    refBins: out.reference.bins,
    curBins: out.current.bins,
    outOfRange: out.current.outOfRange,
    lowCardinality:
      c.lowCardinality === undefined
        ? undefined
        : {
            reference: new Map(Object.entries(c.lowCardinality.reference)),
            current: new Map(Object.entries(c.lowCardinality.current)),
          },
  };
}

function categoricalInputs(
  spec: FeatureSpec,
  ref: FeatureProfile,
  curCounts: ReadonlyMap<string, number> | undefined,
  curRows: number,
): FeatureInputs {
  const cur = splitMissing(curCounts);
  return {
    spec,
    ref,
    cur: { n: cur.n, missing: curRows - cur.n, non_finite: 0 },
    categories: { reference: new Map(Object.entries(ref.categories ?? {})), current: cur.counts },
  };
}

/** Categorical profile from value counts (with '' for missing) over `rows` rows. */
function categoricalProfile(
  spec: FeatureSpec,
  counts: ReadonlyMap<string, number> | undefined,
  rows: number,
): FeatureProfile {
  const c = splitMissing(counts);
  const p = emptyProfile(spec, rows - c.n);
  p.n = c.n;
  if (c.n > 0) p.categories = Object.fromEntries(c.counts);
  return p;
}

function assemble(
  inputs: FeatureInputs[],
  refRows: number,
  curRows: number,
  o: Required<Pick<CompareOptions, 'datasetShare' | 'fdr' | 'distributions'>> & CompareOptions,
): DriftReport {
  const features: FeatureReport[] = inputs.map((x) => featureReport(x, curRows, o.overrides, o.distributions));
  const dataset = finishReport(features, o.datasetShare, o.fdr);
  return { reference: { rows: refRows }, current: { rows: curRows }, features, dataset };
}

/**
 * Compares a current window held in memory with a {@link SortedReference}: per numeric feature one merge
 * pass over the sorted reference and the window's values (sorted here, in a worker when large), per
 * categorical feature the aligned counts. The report is the same as {@link compareSamples} gives on the
 * same rows. `features` (default: the reference's) lists what to report, in order.
 */
export async function compareToReference(
  reference: SortedReference,
  current: CurrentWindow,
  features: readonly FeatureSpec[] = reference.features.map((f) => ({
    name: f.name,
    kind: f.kind,
    column: f.column,
    ...(f.output === true ? { output: true } : {}),
  })),
  options: CompareOptions = {},
): Promise<DriftReport> {
  const o = { ...defaults, ...stripUndefined(options) };
  checkDatasetShare(o.datasetShare);
  const byColumn = new Map<string, SortedReferenceFeature>(reference.features.map((f) => [f.column, f]));
  const inputs = await Promise.all(
    features.map(async (spec): Promise<FeatureInputs> => {
      if (spec.kind === 'categorical') {
        return categoricalAgainst(spec, byColumn, reference.rows, current.categorical, current.rows);
      }
      const values = current.numeric.get(spec.column);
      return numericAgainst(spec, byColumn, reference.rows, values, values === undefined ? current.rows : 0, o);
    }),
  );
  return assemble(inputs, reference.rows, current.rows, o);
}

function referenceFeature(
  spec: FeatureSpec,
  byColumn: ReadonlyMap<string, SortedReferenceFeature>,
): SortedReferenceFeature | undefined {
  const rf = byColumn.get(spec.column);
  return rf !== undefined && rf.kind === spec.kind ? rf : undefined;
}

/** Inputs of a categorical feature against a sorted reference. */
function categoricalAgainst(
  spec: FeatureSpec,
  byColumn: ReadonlyMap<string, SortedReferenceFeature>,
  referenceRows: number,
  counts: ReadonlyMap<string, ReadonlyMap<string, number>>,
  currentRows: number,
): FeatureInputs {
  const ref = referenceFeature(spec, byColumn)?.profile ?? emptyProfile(spec, referenceRows);
  return categoricalInputs(spec, { ...ref, name: spec.name }, counts.get(spec.column), currentRows);
}

/**
 * Inputs of a numeric feature against a sorted reference: one job (sort the window's values, merge pass).
 * `absentRows` counts as missing on the current side (the window's rows when the feature has no values).
 */
async function numericAgainst(
  spec: FeatureSpec,
  byColumn: ReadonlyMap<string, SortedReferenceFeature>,
  referenceRows: number,
  values: Float64Array | undefined,
  absentRows: number,
  o: CompareOptions,
): Promise<FeatureInputs> {
  const refFeature = referenceFeature(spec, byColumn);
  const sorted = refFeature?.sorted;
  const profile = refFeature?.profile;
  if (refFeature === undefined || sorted === undefined || profile === undefined) {
    // No reference values: only the current side's counts matter.
    const out = await runJob(
      { reference: { raw: new Float64Array(0) }, current: { raw: values ?? new Float64Array(0) } },
      o.pool,
      o.inlineMaxValues,
    );
    return {
      spec,
      ref: emptyProfile(spec, refFeature?.profile.missing ?? referenceRows),
      cur: curCounts(out, absentRows),
    };
  }
  const out = await runJob(
    {
      reference: { sorted, missing: profile.missing, nonFinite: profile.non_finite },
      current: { raw: values ?? new Float64Array(0) },
      fixed: fixedOf(profile) ?? undefined,
    },
    o.pool,
    o.inlineMaxValues,
  );
  return {
    spec,
    ref: { ...profile, name: spec.name },
    cur: curCounts(out, absentRows),
    numeric: measures(out),
  };
}

/** Options of {@link compareSampleToReference}. */
export interface CompareSampleToReferenceOptions extends CompareOptions {
  /** ClickHouse settings of the reads. @default {} */
  settings?: StoreSettings | undefined;
  /** Most numeric features read per query. @default 10 */
  groupSize?: number | undefined;
  /**
   * Values held per group, in bytes: once the first group has given the row count, groups shrink below
   * `groupSize` so that a group's values stay within this (at least one feature per group). @default 201326592 (192 MiB)
   */
  readBudgetBytes?: number | undefined;
  /**
   * Rows of the sample, or an upper bound, when known before the first read (e.g. a count over the window):
   * it sizes the first group by `readBudgetBytes` as the row count read sizes the later ones. @default unknown
   */
  expectedRows?: number | undefined;
  /**
   * Reads of numeric groups started before the previous one has been read (0: one read at a time). Reads in
   * flight at once hold their values together: callers enable it for windows whose values are small (the
   * embedded engine runs reads at once only when their SQL carries no bound parameter, see `inlineParams`).
   * With it, the categorical counts are also read at once, alongside the first reads. @default 0
   */
  readAhead?: number | undefined;
  /**
   * Reads one group of numeric features instead of the sample's own query (e.g. one scan of stored traffic's
   * `Map` column for many features): must return what the sample's query gives for them. @default the sample's query
   */
  readNumeric?: ((group: readonly FeatureSpec[]) => Promise<NumericRead>) | undefined;
}

/**
 * Numeric features of a sample read per query against a sorted reference by default: each query of stored
 * traffic decodes the whole `Map` column once, so fewer, wider reads cost less (at 1M rows, one read of 10
 * features takes about as long as two of 5); two groups still let the sorts of one overlap the next read.
 */
export const SAMPLE_GROUP = 10;

/**
 * The report of a ClickHouse sample (e.g. a traffic window) against a {@link SortedReference}: the same
 * report as {@link compareToReference} on the sample read whole, but each group of numeric features is
 * compared as soon as it is read (its jobs queued on the pool while the next group is read), and at most
 * two groups (one when groups are large, see {@link groupsInFlight}) wait for their jobs, so memory holds a few
 * groups, not the window.
 *
 * `reference` may still be on its way (a promise, e.g. {@link readSortedReference} started together with
 * this call): the sample's reads start at once and each group's jobs wait for it, so reading the stored
 * reference and reading the window overlap. A rejected reference rejects the comparison (after the reads
 * in flight settle).
 */
export async function compareSampleToReference(
  store: SqlPort,
  reference: SortedReference | PromiseLike<SortedReference>,
  sample: Sample,
  features: readonly FeatureSpec[],
  options: CompareSampleToReferenceOptions = {},
): Promise<DriftReport> {
  const o = { ...defaults, groupSize: SAMPLE_GROUP, readBudgetBytes: 192 * 2 ** 20, ...stripUndefined(options) };
  checkDatasetShare(o.datasetShare);
  const settings = o.settings ?? {};
  const ready = Promise.resolve(reference).then((r) => ({
    rows: r.rows,
    byColumn: new Map<string, SortedReferenceFeature>(r.features.map((f) => [f.column, f])),
  }));
  // Observed here so that a failed reference read is not unhandled while the sample is being read.
  ready.catch(() => undefined);
  const numeric = features.filter((f) => f.kind === 'numeric');
  // A window known to be large will run its jobs in the pool: start its workers now, while the first group is
  // read, rather than after it (their start-up then overlaps the read).
  if (
    numeric.length > 0 &&
    o.expectedRows !== undefined &&
    o.expectedRows >= (o.inlineMaxValues ?? INLINE_MAX_VALUES) &&
    o.pool !== 'inline'
  )
    warmSortPool(o.pool ?? sharedPool());
  const categorical = features.filter((f) => f.kind === 'categorical');
  const results = new Map<string, FeatureInputs>();
  const computing: Promise<void>[] = [];
  let rows: number | undefined;
  let at = 0;
  const nextGroup = (): FeatureSpec[] => {
    const known = rows ?? o.expectedRows;
    const size = known === undefined ? o.groupSize : groupWithin(o.groupSize, o.readBudgetBytes, known);
    const g = numeric.slice(at, at + size);
    at += g.length;
    return g;
  };
  const readAhead = Math.max(0, Math.floor(o.readAhead ?? 0));
  const reads: Promise<{ group: FeatureSpec[]; read: NumericRead }>[] = [];
  const startRead = (): void => {
    if (at >= numeric.length) return;
    const group = nextGroup();
    const read = stage(`read current ${group.length} numeric`, () =>
      o.readNumeric !== undefined ? o.readNumeric(group) : readNumeric(store, sample, group, settings),
    ).then((r) => ({ group, read: r }));
    // Awaited in turn below; observed now so that a failure while an earlier group is handled is not unhandled.
    read.catch(() => undefined);
    reads.push(read);
  };
  let categories: Promise<CategoryCounts> | undefined;
  const readCategories = (): Promise<CategoryCounts> => {
    const p =
      categorical.length > 0
        ? stage('read current categorical', () => readCategorical(store, sample, categorical, settings))
        : Promise.resolve(new Map<string, Map<string, number>>());
    p.catch(() => undefined);
    return p;
  };
  try {
    for (let i = 0; i <= readAhead; i++) startRead();
    // Reading ahead: the counts are read alongside the first reads. They are engine work like the reads, and
    // the jobs that follow the reads keep both cores busy with sorts: counts read after the reads (as before)
    // ran alongside the sorts and delayed them.
    if (readAhead > 0) categories = readCategories();
    while (reads.length > 0) {
      const { group, read } = await reads.shift()!;
      rows = read.rows;
      const jobs = stage(`jobs of ${group.length} numeric`, async () => {
        const ref = await ready;
        await Promise.all(
          group.map(async (spec) => {
            results.set(
              spec.column,
              await numericAgainst(spec, ref.byColumn, ref.rows, read.values.get(spec.column), 0, o),
            );
          }),
        );
      });
      // Awaited below; observed now so that a failure while the next group is read is not unhandled.
      jobs.catch(() => undefined);
      computing.push(jobs);
      while (computing.length > groupsInFlight(read, group.length)) await computing.shift();
      startRead();
    }
    const counts = await (categories ?? readCategories());
    if (rows === undefined && categorical.length > 0) rows = sumOf(counts.get(categorical[0]!.column));
    rows ??= await countRows(store, sample, settings);
    await Promise.all(computing);
    const ref = await stage('wait for sorted reference', () => ready);
    const currentRows = rows;
    const inputs = features.map(
      (spec) => results.get(spec.column) ?? categoricalAgainst(spec, ref.byColumn, ref.rows, counts, currentRows),
    );
    return assemble(inputs, ref.rows, currentRows, o);
  } catch (err) {
    await Promise.allSettled([...computing, ...reads, categories, ready]);
    throw err;
  }
}

/**
 * Features per read of `rows` values each: at most `groupSize`, with the values of a group (8 bytes each)
 * within `budgetBytes`, and at least one.
 */
export function groupWithin(groupSize: number, budgetBytes: number, rows: number): number {
  return Math.max(1, Math.min(groupSize, Math.floor(budgetBytes / (8 * Math.max(1, rows)))));
}

function curCounts(out: NumericJobOutput, absentRows: number): FeatureInputs['cur'] {
  const c = out.current;
  return {
    n: c?.n ?? 0,
    missing: (c?.missing ?? 0) + absentRows,
    non_finite: c?.nonFinite ?? 0,
  };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Options of {@link compareSamples}. */
export interface CompareSamplesOptions extends CompareOptions {
  reference: Sample;
  current: Sample;
  features: readonly FeatureSpec[];
  /** A stored profile of the reference: its edges, std, min/max and distinct count are used as they are. */
  referenceProfile?: SampleProfile | undefined;
  /** ClickHouse settings of the read queries. @default {} */
  settings?: StoreSettings | undefined;
  /** Most numeric features read per query (per side). @default 5 */
  groupSize?: number | undefined;
  /**
   * Values held per side per group, in bytes: groups shrink below `groupSize` for large samples so memory
   * stays bounded (two groups are in flight: one read, one compared). A read holds its values about three
   * times while it is received and decoded, so large samples are read one feature at a time (10M rows:
   * 80 MB per side). @default 100663296 (96 MiB)
   */
  readBudgetBytes?: number | undefined;
  /**
   * Rows expected per side (the larger), when known cheaply (a file's row count). Up to {@link SMALL_SAMPLE_ROWS}
   * each side is read whole in one query; above, it sizes the first group. @default unknown
   */
  expectedRows?: number | undefined;
  /**
   * Called with each side's numeric values as soon as they are read (per group, or all at once for a small
   * sample), before any job sees them: the arrays are then sorted in place or moved to a worker, so a caller
   * that needs values (e.g. a row subset) copies them here, synchronously. @default none
   */
  onNumericRead?: ((side: 'reference' | 'current', read: NumericRead) => void) | undefined;
}

/** Values of one side of a group above which its two sides are read one after the other. */
const ONE_SIDE_AT_A_TIME_BYTES = 64 * 2 ** 20;

/**
 * Values of a group (both sides) up to which two groups may wait for their jobs while the next is read: one
 * feature of 10M rows per side (160 MB) still keeps both sort threads busy.
 */
const TWO_GROUPS_MAX_BYTES = 160 * 10 ** 6;

/**
 * Groups of numeric features whose jobs may be queued or running while the next group is read: two for
 * groups up to {@link TWO_GROUPS_MAX_BYTES} (the workers never idle at a group's tail), one for larger
 * ones (e.g. two features of 10M rows), so memory stays at two groups' values as without the overlap.
 */
function groupsInFlight(read: { rows: number }, features: number, otherRows = read.rows): number {
  return 8 * features * (read.rows + otherRows) <= TWO_GROUPS_MAX_BYTES ? 2 : 1;
}

/** Samples up to this many rows are read in one query per side (all features at once). */
export const SMALL_SAMPLE_ROWS = 50_000;

/**
 * Compares two ClickHouse samples: numeric features in groups (one `Native` read per side per group, then
 * one job per feature: filter, radix sort, profile, merge pass), categorical features counted in one query
 * per side. Group by group, so memory holds one group's values at a time.
 */
export async function compareSamples(store: SqlPort, options: CompareSamplesOptions): Promise<DriftReport> {
  const o = {
    ...defaults,
    settings: {},
    groupSize: NUMERIC_GROUP,
    readBudgetBytes: 96 * 2 ** 20,
    ...stripUndefined(options),
  } as CompareSamplesOptions &
    typeof defaults & { settings: StoreSettings; groupSize: number; readBudgetBytes: number };
  checkDatasetShare(o.datasetShare);
  const stored = new Map((o.referenceProfile?.features ?? []).map((p) => [p.column, p]));
  const numeric = o.features.filter((f) => f.kind === 'numeric');
  const categorical = o.features.filter((f) => f.kind === 'categorical');
  const inputs = new Map<string, FeatureInputs>();
  let refRows: number | undefined;
  let curRows: number | undefined;
  if (o.expectedRows !== undefined && o.expectedRows <= SMALL_SAMPLE_ROWS) {
    // Both sides at once (statements without bound parameters run concurrently in the embedded engine); a
    // reference error is thrown before a current one.
    const [refRead, curRead] = await Promise.allSettled([
      readAll(store, o.reference, numeric, categorical, o.settings),
      readAll(store, o.current, numeric, categorical, o.settings),
    ]);
    if (refRead.status === 'rejected') throw refRead.reason;
    if (curRead.status === 'rejected') throw curRead.reason;
    return compareSideReads(refRead.value, curRead.value, o);
  }
  // Reads and jobs overlap: each group's jobs are queued on the pool as soon as its values are read, and the
  // next group is read meanwhile; at most groupsInFlight() groups wait for their jobs (memory: that many
  // groups plus the one being read), so the workers never idle at a group's tail. The first group is small
  // when the row count is unknown; later ones hold about readBudgetBytes of values per side.
  let at = 0;
  let rowsHint: number | undefined = o.expectedRows;
  const nextGroup = (): FeatureSpec[] | undefined => {
    if (at >= numeric.length) return undefined;
    const size =
      rowsHint === undefined
        ? Math.min(o.groupSize, 2)
        : Math.max(1, Math.min(o.groupSize, Math.floor(o.readBudgetBytes / (8 * Math.max(1, rowsHint)))));
    const g = numeric.slice(at, at + size);
    at += g.length;
    return g;
  };
  const readGroup = async (
    group: FeatureSpec[],
  ): Promise<{ group: FeatureSpec[]; ref: NumericRead; cur: NumericRead }> => {
    const readRef = (): Promise<NumericRead> =>
      stage(`read reference ${group.length} numeric`, () => readNumeric(store, o.reference, group, o.settings));
    const readCur = (): Promise<NumericRead> =>
      stage(`read current ${group.length} numeric`, () => readNumeric(store, o.current, group, o.settings));
    // Both sides at once (the engine reads them on its own threads) while a side's values are small; one
    // after the other for large ones (e.g. 10M rows), so a group's two reads never hold their buffers together.
    if (rowsHint !== undefined && 8 * group.length * rowsHint > ONE_SIDE_AT_A_TIME_BYTES) {
      const ref = await readRef();
      return { group, ref, cur: await readCur() };
    }
    const [ref, cur] = await Promise.all([readRef(), readCur()]);
    return { group, ref, cur };
  };
  const readCategories = async (): Promise<{ ref: CategoryCounts; cur: CategoryCounts } | undefined> => {
    if (categorical.length === 0) return undefined;
    const [ref, cur] = await Promise.all([
      stage('read reference categorical', () => readCategorical(store, o.reference, categorical, o.settings)),
      stage('read current categorical', () => readCategorical(store, o.current, categorical, o.settings)),
    ]);
    return { ref, cur };
  };
  const first = nextGroup();
  let pending = first === undefined ? undefined : readGroup(first);
  let categories = first === undefined ? readCategories() : undefined;
  const computing: Promise<void>[] = [];
  try {
    while (pending !== undefined) {
      const { group, ref, cur } = await stage('wait for group read', () => pending!);
      refRows = ref.rows;
      curRows = cur.rows;
      rowsHint = Math.max(ref.rows, cur.rows);
      o.onNumericRead?.('reference', ref);
      o.onNumericRead?.('current', cur);
      computing.push(
        stage(`jobs of ${group.length} numeric`, () =>
          Promise.all(group.map((spec) => numericJob(spec, ref, cur, stored, o))),
        ).then((outs) => {
          group.forEach((spec, i) => {
            const out = outs[i]!;
            inputs.set(spec.column, {
              spec,
              ref: numericProfile(spec, out),
              cur: curCounts(out, 0),
              numeric: measures(out),
            });
          });
        }),
      );
      const next = nextGroup();
      if (next === undefined) {
        pending = undefined;
        categories = readCategories();
        break;
      }
      // Bounded memory: read the next group once the oldest group in flight is done.
      while (computing.length > groupsInFlight(ref, group.length, cur.rows)) await computing.shift();
      pending = readGroup(next);
    }
    await Promise.all(computing);
  } catch (err) {
    // Let the other reads and jobs settle before the caller closes the store.
    await Promise.allSettled([...computing, pending, categories]);
    throw err;
  }
  const counted = await stage('wait for categorical', async () => categories);
  if (counted !== undefined) {
    refRows ??= sumOf(counted.ref.get(categorical[0]!.column));
    curRows ??= sumOf(counted.cur.get(categorical[0]!.column));
    for (const spec of categorical) {
      const ref = categoricalProfile(spec, counted.ref.get(spec.column), refRows);
      inputs.set(spec.column, categoricalInputs(spec, ref, counted.cur.get(spec.column), curRows));
    }
  }
  refRows ??= await countRows(store, o.reference, o.settings);
  curRows ??= await countRows(store, o.current, o.settings);
  const list = o.features.map(
    (spec) =>
      inputs.get(spec.column) ?? {
        spec,
        ref: emptyProfile(spec, refRows),
        cur: { n: 0, missing: curRows, non_finite: 0 },
      },
  );
  return assemble(list, refRows, curRows, o);
}

/** Options of {@link compareSideReads}. */
export interface CompareSideReadsOptions extends CompareOptions {
  features: readonly FeatureSpec[];
  /** A stored profile of the reference: its edges, std, min/max and distinct count are used as they are. */
  referenceProfile?: SampleProfile | undefined;
  /** As {@link CompareSamplesOptions.onNumericRead}: each side's values before any job sees them. @default none */
  onNumericRead?: ((side: 'reference' | 'current', read: NumericRead) => void) | undefined;
}

/**
 * The report of two small sides already read whole (numeric values per feature column, NaN for missing, and
 * category counts with '' for missing, as {@link readAll} gives them): what {@link compareSamples} does after
 * its one read per side for samples up to {@link SMALL_SAMPLE_ROWS} rows, for readers outside ClickHouse
 * (e.g. small Parquet files read in JS) that must give the same report. The arrays are consumed.
 */
export async function compareSideReads(
  ref: SideRead,
  cur: SideRead,
  options: CompareSideReadsOptions,
): Promise<DriftReport> {
  const o = { ...defaults, ...stripUndefined(options) } as CompareSideReadsOptions & typeof defaults;
  checkDatasetShare(o.datasetShare);
  const stored = new Map((o.referenceProfile?.features ?? []).map((p) => [p.column, p]));
  const numeric = o.features.filter((f) => f.kind === 'numeric');
  const categorical = o.features.filter((f) => f.kind === 'categorical');
  const inputs = new Map<string, FeatureInputs>();
  o.onNumericRead?.('reference', ref);
  o.onNumericRead?.('current', cur);
  const outs = await Promise.all(numeric.map((spec) => numericJob(spec, ref, cur, stored, o)));
  numeric.forEach((spec, i) => {
    const out = outs[i]!;
    inputs.set(spec.column, { spec, ref: numericProfile(spec, out), cur: curCounts(out, 0), numeric: measures(out) });
  });
  for (const spec of categorical) {
    const profile = categoricalProfile(spec, ref.counts.get(spec.column), ref.rows);
    inputs.set(spec.column, categoricalInputs(spec, profile, cur.counts.get(spec.column), cur.rows));
  }
  return assemble(
    o.features.map((spec) => inputs.get(spec.column)!),
    ref.rows,
    cur.rows,
    o,
  );
}

function sumOf(m: ReadonlyMap<string, number> | undefined): number {
  let s = 0;
  for (const v of m?.values() ?? []) s += v;
  return s;
}

/** Options of {@link profileSample}. */
export interface ProfileOptions {
  settings?: StoreSettings | undefined;
  groupSize?: number | undefined;
  pool?: SortPool | 'inline' | undefined;
  /** Keep each numeric feature's sorted values (for an in-memory {@link SortedReference}). @default false */
  keepSorted?: boolean | undefined;
}

/**
 * Profiles one sample with the exact engine: rows, and per feature the usable/missing/non-finite counts,
 * NumPy deciles, edges, bin counts, mean, population std, min/max, distinct count (numeric) or category
 * counts (categorical). With `keepSorted`, also a {@link SortedReference} of it.
 */
export async function profileSampleExact(
  store: SqlPort,
  sample: Sample,
  features: readonly FeatureSpec[],
  options: ProfileOptions = {},
): Promise<{ profile: SampleProfile; sorted: SortedReference }> {
  const settings = options.settings ?? {};
  const numeric = features.filter((f) => f.kind === 'numeric');
  const categorical = features.filter((f) => f.kind === 'categorical');
  const profiles = new Map<string, FeatureProfile>();
  const sortedBy = new Map<string, Float64Array>();
  let rows: number | undefined;
  for (const group of groupsOf(numeric, options.groupSize ?? NUMERIC_GROUP)) {
    const read = await readNumeric(store, sample, group, settings);
    rows = read.rows;
    const outs = await Promise.all(
      group.map((spec) =>
        runJob({ reference: { raw: read.values.get(spec.column)! }, keepSorted: options.keepSorted }, options.pool),
      ),
    );
    group.forEach((spec, i) => {
      const out = outs[i]!;
      profiles.set(spec.column, numericProfile(spec, out));
      if (out.sortedReference !== undefined) sortedBy.set(spec.column, out.sortedReference);
    });
  }
  if (categorical.length > 0) {
    const counts = await readCategorical(store, sample, categorical, settings);
    rows ??= sumOf(counts.get(categorical[0]!.column));
    for (const spec of categorical) profiles.set(spec.column, categoricalProfile(spec, counts.get(spec.column), rows));
  }
  rows ??= await countRows(store, sample, settings);
  const list = features.map((spec) => profiles.get(spec.column) ?? emptyProfile(spec, rows));
  return {
    profile: { rows, features: list },
    sorted: {
      id: null,
      rows,
      features: list.map((p) => ({
        name: p.name,
        kind: p.kind,
        column: p.column,
        ...(p.output === true ? { output: true } : {}),
        profile: p,
        ...(sortedBy.has(p.column) ? { sorted: sortedBy.get(p.column)! } : {}),
      })),
    },
  };
}
