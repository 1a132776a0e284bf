/**
 * The drift engine's entry over ClickHouse samples (DESIGN §3): {@link computeDrift} compares two samples and
 * {@link profileSample} profiles one. Both run on the exact engine (`src/drift/exact`): one `Native` read per
 * side per group of numeric features into `Float64Array`s, category counts per feature in one query, a radix
 * sort and one merge pass per numeric feature (in worker threads when large), and the report rules of
 * `policy.ts`. Statistics are exact: KS D as an integer lattice ratio, Wasserstein from the merged sorted
 * values, NumPy's linear deciles, SciPy's exact KS p-value up to 10,000 rows per side.
 */
import { ErrorCodes, ModelwatchError } from '../../common/errors.js';
import type { SqlPort } from '../../store/port.js';
import { compareSamples, profileSampleExact } from '../exact/compare.js';
import type { SortPool } from '../exact/pool.js';
import type { NumericRead } from '../exact/read.js';
import type { DriftOverrides, DriftReport, FeatureSpec, Sample, SampleProfile } from './types.js';

export {
  BIN_QUANTILES,
  KS_EXACT_MAX_N,
  SMALL_REFERENCE_ROWS,
  LOW_CARDINALITY_MAX,
  DefaultThresholds,
  chooseMethod,
} from './policy.js';

/** Options of {@link computeDrift}. */
export interface ComputeDriftOptions {
  reference: Sample;
  current: Sample;
  features: readonly FeatureSpec[];
  /** A stored profile of the reference sample: its edges, std, min/max and distinct counts are used as stored. */
  referenceProfile?: SampleProfile | undefined;
  /** Per-model/per-feature method and threshold overrides. */
  overrides?: DriftOverrides | undefined;
  /** Dataset drift when the share of drifted features is at least this. @default 0.5 */
  datasetShare?: number;
  /** Benjamini–Hochberg across the features scored by a p-value. @default false */
  fdr?: boolean;
  /** Include per-bin distributions in each feature. @default true */
  distributions?: boolean;
  /** ClickHouse settings for the read queries (e.g. `max_threads`). @default {} */
  settings?: Record<string, string | number>;
  /**
   * Numeric features read per query (per side). Each group's values are held in memory at once
   * (8 bytes × rows × group per side). @default 5
   */
  numericFeaturesPerPass?: number;
  /** Where large numeric jobs run. @default the process-wide pool of two worker threads */
  pool?: SortPool | 'inline' | undefined;
  /**
   * Rows per side (the larger), when known cheaply: small samples (up to 50,000 rows) are then read in one
   * query per side, larger ones in groups sized for memory from the start. @default unknown
   */
  expectedRows?: number | undefined;
  /**
   * Receives each side's numeric values (keyed by feature column, one value per row, NaN for missing) as
   * soon as they are read, before the engine sorts or moves them: copy what is needed, synchronously.
   * @default none
   */
  onNumericRead?: ((side: 'reference' | 'current', read: NumericRead) => void) | undefined;
}

/**
 * Compares a current sample with a reference sample, feature by feature, exactly as DESIGN §3 defines
 * (ks, wasserstein, wasserstein_norm, psi, jensen_shannon, hellinger, chi_square), and returns the
 * DESIGN §2 report.
 */
export async function computeDrift(store: SqlPort, options: ComputeDriftOptions): Promise<DriftReport> {
  const perPass = options.numericFeaturesPerPass ?? 5;
  if (!Number.isInteger(perPass) || perPass < 1) {
    throw new ModelwatchError(ErrorCodes.configInvalid, 'numericFeaturesPerPass: must be a positive integer', {
      field: 'numericFeaturesPerPass',
    });
  }
  return compareSamples(store, {
    reference: options.reference,
    current: options.current,
    features: options.features,
    referenceProfile: options.referenceProfile,
    overrides: options.overrides,
    datasetShare: options.datasetShare,
    fdr: options.fdr,
    distributions: options.distributions,
    settings: options.settings,
    groupSize: perPass,
    pool: options.pool,
    expectedRows: options.expectedRows,
    onNumericRead: options.onNumericRead,
  });
}

/**
 * Profiles a sample: total rows and, per feature, usable/missing/non-finite counts; with `full` (the default)
 * also NumPy linear deciles, edges, bin counts, mean, population std, min, max, distinct values up to 6
 * (numeric) and category counts (categorical).
 */
export async function profileSample(
  store: SqlPort,
  sample: Sample,
  features: readonly FeatureSpec[],
  full = true,
  settings: Record<string, string | number> = {},
): Promise<SampleProfile> {
  const { profile } = await profileSampleExact(store, sample, features, { settings });
  if (full) return profile;
  return {
    rows: profile.rows,
    features: profile.features.map(({ name, kind, column, output, n, missing, non_finite }) => ({
      name,
      kind,
      column,
      ...(output === true ? { output: true } : {}),
      n,
      missing,
      non_finite,
    })),
  };
}
