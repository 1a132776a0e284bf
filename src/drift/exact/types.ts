import type { FeatureKind } from '../../config/model-schema.js';
import type { DriftOverrides, FeatureProfile } from '../stats/types.js';
import type { SortPool } from './pool.js';

/**
 * One feature of a {@link SortedReference}: its profile (counts, deciles, edges, std, min/max, distinct,
 * bins; category counts for categorical features) and, for numeric features, every finite value sorted.
 */
export interface SortedReferenceFeature {
  /** Report name. */
  name: string;
  kind: FeatureKind;
  /** Key of the feature in {@link CurrentWindow} maps: the {@link FeatureSpec} column (`name`, or `output:<name>` for outputs). */
  column: string;
  output?: boolean;
  /** The stored profile of the feature (`n`, `missing`, `non_finite`, `edges`, `std`, …). */
  profile: FeatureProfile;
  /**
   * Finite values ascending (numeric features). Backed by a `SharedArrayBuffer` when read from the store, so
   * workers read it without a copy; never modified by the engine, safe to share between concurrent comparisons.
   */
  sorted?: Float64Array;
}

/** A reference held in memory, ready to compare windows against without reading or sorting it again. */
export interface SortedReference {
  /** Stored reference id (null for an in-memory one). */
  id: string | null;
  /** Rows of the reference sample. */
  rows: number;
  features: SortedReferenceFeature[];
}

/**
 * The current window of one comparison, in memory. Keys are feature columns ({@link SortedReferenceFeature.column}).
 * A feature absent from its map counts as missing on every row.
 */
export interface CurrentWindow {
  /** Rows in the window. */
  rows: number;
  /**
   * Numeric values, one per row: NaN for missing (NULL/absent), ±Inf counted as non-finite. The arrays are
   * consumed: the engine may sort them in place or transfer them to a worker thread.
   */
  numeric: ReadonlyMap<string, Float64Array>;
  /**
   * Category counts: value → rows. The empty string (if present) counts as missing; rows not covered by a
   * non-empty value count as missing too (missing = rows − Σ non-empty counts).
   */
  categorical: ReadonlyMap<string, ReadonlyMap<string, number>>;
}

/** Options shared by the comparisons: method overrides and report switches. */
export interface CompareOptions {
  /** Per-model/per-feature method and threshold overrides. */
  overrides?: DriftOverrides | undefined;
  /** Dataset drift when the share of drifted features is at least this. @default 0.5 */
  datasetShare?: number | undefined;
  /** Benjamini–Hochberg across the features scored by a p-value. @default false */
  fdr?: boolean | undefined;
  /** Include per-bin distributions in each feature. @default true */
  distributions?: boolean | undefined;
  /**
   * Where large numeric jobs run: a worker pool, or `'inline'` (the calling thread). Jobs below 200,000
   * values always run inline. @default the process-wide pool of two workers
   */
  pool?: SortPool | 'inline' | undefined;
  /** Jobs with fewer values than this (reference and current together) run inline. @default 200000 */
  inlineMaxValues?: number | undefined;
}
