import type { DriftMethod } from '../../config/schema.js';
import type { FeatureKind } from '../../config/model-schema.js';
import type { TestResult } from './math.js';

/**
 * One side of a comparison: a ClickHouse SELECT (with bound parameters) that yields one column per feature,
 * numeric columns castable to `Nullable(Float64)` and categorical ones to `Nullable(String)`. Parameter
 * names of the two samples of a comparison must not clash (builders take a prefix).
 */
export interface Sample {
  sql: string;
  params: Record<string, unknown>;
}

/** A feature to compare: its report name, kind, and the column of the samples that holds it. */
export interface FeatureSpec {
  /** Name in the report. */
  name: string;
  kind: FeatureKind;
  /** Column name in both samples. */
  column: string;
  /** True for a model output (prediction drift); reported with `"output": true`. */
  output?: boolean;
}

/** Per-feature summary of one sample (a stored reference profile holds one per feature). */
export interface FeatureProfile {
  name: string;
  kind: FeatureKind;
  column: string;
  output?: boolean;
  /** Usable values: finite numbers, non-empty strings. */
  n: number;
  /** NULL/absent, NaN, or empty string. */
  missing: number;
  /** ±Inf (numeric only). */
  non_finite: number;
  /** Reference deciles 0.1..0.9 (NumPy linear), numeric only. */
  quantiles?: number[];
  /** Unique deciles: the numeric bin edges (DESIGN §3). */
  edges?: number[];
  /** Counts per numeric bin (edges.length + 1 bins), or per category in `categories` order. */
  bins?: number[];
  mean?: number;
  /** Population standard deviation (ddof 0); 0 when min = max. */
  std?: number;
  min?: number;
  max?: number;
  /** Distinct values, counted up to 6 (numeric); 6 means "more than 5". */
  distinct?: number;
  /** Category → count (categorical features, and numeric ones with ≤ 5 distinct values keyed by value text). */
  categories?: Record<string, number>;
}

/** Summary of a sample: total rows and one profile per feature. */
export interface SampleProfile {
  rows: number;
  features: FeatureProfile[];
}

/** Statistics of one feature (DESIGN §2 `stats`). Absent keys were not applicable. */
export interface FeatureStats {
  ks?: TestResult & { method: 'exact' | 'asymp' };
  wasserstein?: number;
  wasserstein_norm?: number;
  psi?: number;
  jensen_shannon?: number;
  hellinger?: number;
  chi_square?: TestResult;
}

/** Data quality of one feature (DESIGN §2 `quality`, extended). */
export interface FeatureQuality {
  missing_reference: number;
  missing_current: number;
  non_finite_reference?: number;
  non_finite_current?: number;
  /** Share of current rows that are missing or non-finite. */
  missing_rate_current: number;
  /** Current values below the reference minimum or above its maximum (numeric). */
  out_of_range_current?: number;
  out_of_range_share?: number;
  /** Current categories never seen in the reference (categorical). */
  unseen_categories?: string[];
  /** Share of current values in unseen categories. */
  unseen_share?: number;
}

/** The per-bin distributions behind psi/jensen_shannon/hellinger, for plots. */
export interface FeatureDistribution {
  /** Numeric bin edges (bins are (-inf, e0), [e0, e1), …, [ek, inf)). */
  edges?: number[];
  /** Category names (categorical). */
  categories?: string[];
  reference: number[];
  current: number[];
}

/** One feature's result (DESIGN §2). */
export interface FeatureReport {
  name: string;
  kind: FeatureKind;
  /** Present and true for model outputs (prediction drift). */
  output?: boolean;
  method: DriftMethod;
  /** The method's value; null when a side has no usable values. */
  score: number | null;
  threshold: number;
  drifted: boolean;
  /** Present when Benjamini–Hochberg adjusted the p-value used as score. */
  p_value_adjusted?: number;
  stats: FeatureStats;
  quality: FeatureQuality;
  distribution?: FeatureDistribution;
}

/** Dataset-level verdict. */
export interface DatasetVerdict {
  features: number;
  drifted_features: number;
  share: number;
  /** The share at which the dataset counts as drifted. */
  share_threshold: number;
  drifted: boolean;
}

/** The drift report of `modelwatch report` and the drift API (DESIGN §2). */
export interface DriftReport {
  reference: { rows: number } & Record<string, unknown>;
  current: { rows: number } & Record<string, unknown>;
  features: FeatureReport[];
  dataset: DatasetVerdict;
}

/** A method/threshold override. */
export interface DriftOverride {
  method?: DriftMethod | undefined;
  threshold?: number | undefined;
}

/** Overrides for a model: a default and per-feature ones (`config.models[m].drift`). */
export interface DriftOverrides {
  default?: DriftOverride | undefined;
  features?: Record<string, DriftOverride> | undefined;
}
