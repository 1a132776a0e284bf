export { mulberry32 } from './random.js';
export type { Random } from './random.js';
export {
  ModelTensorNames,
  buildLogisticRegression,
  buildMlp,
  perturb,
  demoLogisticRegressionParams,
  demoMlpParams,
} from './models.js';
export type {
  LogisticRegressionParams,
  DenseLayer,
  MlpParams,
  BuildModelOptions,
  PerturbOptions,
  DemoParamsOptions,
} from './models.js';
export { ORT_TYPE_OF, DATATYPE_ARRAY, v2DatatypeOfOrt, mapInputs, resolveInputMap, formatShape } from './tensors.js';
export type { ShadowTensor, ShadowTensorData, OnnxValueInfo, OnnxFeed } from './tensors.js';
export { ShadowPool, ExecutionProviders, resolveExecutionProviders } from './pool.js';
export type {
  ShadowPoolOptions,
  ShadowModel,
  LoadModelOptions,
  ShadowRunResult,
  ModelSource,
  ExecutionProviderName,
} from './pool.js';
export type { ProviderFallback } from './pool-protocol.js';
export {
  quantileSorted,
  summarize,
  compareClassification,
  compareScores,
  mcnemarExact,
  classificationPerformance,
  pairedBootstrap,
  summarizeLatency,
  RegressionMetrics,
} from './compare.js';
export type {
  Label,
  Labels,
  Distribution,
  SegmentAgreement,
  CompareClassificationOptions,
  ClassificationComparison,
  ScoreDifferences,
  McNemarResult,
  ClassificationPerformance,
  RegressionMetric,
  PairedBootstrapOptions,
  PairedBootstrapResult,
  BatchTiming,
  LatencySummary,
} from './compare.js';
export { Verdicts, defaultVerdictThresholds, resolveVerdictThresholds, decideVerdict } from './verdict.js';
export type {
  Verdict,
  VerdictThresholds,
  ResolvedVerdictThresholds,
  VerdictEvidence,
  VerdictResult,
} from './verdict.js';
export { LiveShadow, LiveShadowSeries, startLiveShadow } from './live.js';
export type { LiveCandidate, LiveShadowOptions, LiveShadowRole, LiveSeriesRow } from './live.js';
