// Public API of the drift folder. Each part appends its own block; keep exports named one by one.

// Statistics engine (DESIGN §3)
export {
  computeDrift,
  profileSample,
  BIN_QUANTILES,
  KS_EXACT_MAX_N,
  SMALL_REFERENCE_ROWS,
  LOW_CARDINALITY_MAX,
  DefaultThresholds,
} from './stats/engine.js';
export type { ComputeDriftOptions } from './stats/engine.js';
export {
  chiSquareSf,
  chiSquareTest,
  gammaQ,
  lnGamma,
  psi,
  jensenShannon,
  hellinger,
  benjaminiHochberg,
  PSI_FLOOR,
  kolmogorovSf,
  kolmogorovCdfPelzGood,
  ks2sampAsympPValue,
  smirnovSf,
} from './stats/math.js';
export type { TestResult } from './stats/math.js';
export {
  trafficSample,
  referenceRowsSample,
  storedColumn,
  storedFeatureSpecs,
  quoteIdent,
  quoteString,
} from './stats/sample.js';
export type { StoredFeature, SampleFilter, TrafficSampleOptions } from './stats/sample.js';

// File input (`modelwatch report` and file references)
export {
  FileFormats,
  FileFormatByExtension,
  inputFile,
  fileColumns,
  fileRowsSample,
  fileSample,
  refineTextColumns,
  countFileRows,
  structureOf,
  fileReadError,
  baseType,
} from './files.js';
export type { FileFormat, InputFile, FileColumn } from './files.js';
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

// Reference profiles
export {
  createReference,
  getReference,
  listReferences,
  activeReferenceId,
  activateReference,
  defaultReferenceState,
  resolveModelReference,
  applyConfiguredReference,
  applyConfiguredReferences,
  configKeyOf,
  successfulRowsSql,
  NoReferenceError,
  discoverFeatures,
  describeFile,
  mergeFeatures,
  DEFAULT_REFERENCE_SPAN_MS,
  DEFAULT_REFERENCE_ROWS,
} from './reference.js';
export type {
  ReferenceInfo,
  ReferenceSource,
  TrafficReferenceSource,
  FileReferenceSource,
  ReferenceQuery,
  ReferenceKind,
  FeatureMethod,
  CreateReferenceOptions,
  ListedReference,
  DefaultReferenceLimits,
  DefaultReferenceState,
  ResolveReferenceOptions,
  ConfiguredReferenceOutcome,
} from './reference.js';

// Detection over stored traffic
export { detectDrift, tryDetectDrift, mergeOverrides } from './detect-drift.js';
export type {
  DetectDriftOptions,
  DriftOutcome,
  DriftDetection,
  ReferenceChoice,
  SegmentBy,
  SegmentReport,
  VolumeCheck,
  WindowQuality,
} from './detect-drift.js';

// Offline report over files (`modelwatch report`)
export { runFileReport } from './report/run.js';
export type { FileReportOptions, FileReportResult } from './report/run.js';
export { renderHtmlReport, histogramSvg, escapeHtml, driftSeverity } from './report/html.js';
export type { HtmlReportInput, HtmlReportOptions } from './report/html.js';
export { histogramFromDistribution } from './report/histograms.js';
export type { FeatureHistogram, HistogramOptions } from './report/histograms.js';
export { resolveColumns, isNumericType } from './report/columns.js';
export type { ReportColumn, ColumnKind, ResolveColumnsOptions } from './report/columns.js';

// Performance (measured and CBPE), streaming detectors and the detect loop
export {
  computePerformance,
  resolvePredictionSpec,
  queryTraffic,
  queryFeatureMeans,
  finishClassification,
  finishRegression,
  finishCbpe,
  classificationAggregates,
  regressionAggregates,
  cbpeAggregates,
} from './performance/index.js';
export type {
  PerformanceOptions,
  PerformanceReport,
  PredictionSpec,
  ClassificationMetrics,
  RegressionMetrics,
  EstimatedMetrics,
  TrafficSummary,
} from './performance/index.js';
export { PageHinkley, Adwin, Cusum, SeriesMonitor, DEFAULT_MONITOR_DETECTORS } from './streaming/index.js';
export type {
  PageHinkleyOptions,
  AdwinOptions,
  CusumOptions,
  SeriesMonitorOptions,
  ChangeAlarm,
  ChangeDetector,
  DetectorKind,
} from './streaming/index.js';
export { startDetector, runDetectionOnce, DetectorState, driftOutcome, intervalEnd, segmentKey } from './detector.js';
export type {
  DetectorOptions,
  RunOnceOptions,
  RunningDetector,
  DetectionRun,
  ChangePoint,
  DriftDetectFn,
  RunStatus,
  SeriesPoint,
} from './detector.js';
export { DetectMetrics, RunStatuses, OVERFLOW_MODEL } from './detect-metrics.js';
export type { DetectMetricsOptions } from './detect-metrics.js';
export { SeriesNames, performanceSeries } from './detect-series.js';

// Multivariate and embedding drift (detect-loop stage and report section)
export {
  runMultivariateStage,
  computeMultivariate,
  multivariateSettings,
  multivariateSeries,
  MultivariateDefaults,
} from './mv-detect.js';
export type { MultivariateResult, MultivariateSettings, MultivariateStageOptions } from './mv-detect.js';
export { reportMultivariateSettings, vectorColumns } from './report/multivariate.js';
export type { MultivariateSection } from './report/multivariate.js';
