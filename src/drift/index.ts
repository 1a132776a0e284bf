// Public API of the drift folder. Each part appends its own block; keep exports named one by one.

// Statistics engine (DESIGN §3)
export { computeDrift, profileSample, BIN_QUANTILES, KS_EXACT_MAX_N, SMALL_REFERENCE_ROWS, LOW_CARDINALITY_MAX, DefaultThresholds } from './stats/engine.js';
export type { ComputeDriftOptions } from './stats/engine.js';
export { chiSquareSf, chiSquareTest, gammaQ, lnGamma, psi, jensenShannon, hellinger, benjaminiHochberg, PSI_FLOOR, kolmogorovSf, kolmogorovCdfPelzGood, ks2sampAsympPValue } from './stats/math.js';
export type { TestResult } from './stats/math.js';
export {
  trafficSample,
  referenceRowsSample,
  fileSample,
  storedColumn,
  storedFeatureSpecs,
  quoteIdent,
  quoteString,
  FileFormats,
} from './stats/sample.js';
export type { StoredFeature, SampleFilter, TrafficSampleOptions, FileFormat } from './stats/sample.js';
export type {
  Sample,
  FeatureSpec,
  FeatureProfile,
  SampleProfile,
  FeatureStats,
  FeatureQuality,
  FeatureDistribution,
  FeatureReport,
  DatasetVerdict,
  DriftReport,
  DriftOverride,
  DriftOverrides,
} from './stats/types.js';
