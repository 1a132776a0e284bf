export {
  FLOAT64_EPS,
  aucFromSums,
  aucSums,
  cbpeAggregates,
  classificationAggregates,
  finishCbpe,
  finishClassification,
  finishRegression,
  predictedIndex,
  regressionAggregates,
  sortLabels,
} from './metrics.js';
export type { ClassificationInput } from './metrics.js';
export {
  computePerformance,
  computePerformanceBatch,
  queryCbpeAggregates,
  queryClassificationAggregates,
  queryOutputKeys,
  queryRegressionAggregates,
  resolvePredictionSpec,
} from './query.js';
export type { OutputKeys, PerformanceBatchOptions, PerformanceOptions, PerformanceReport } from './query.js';
export type {
  AucSums,
  CbpeAggregates,
  ClassMetrics,
  ClassificationAggregates,
  ClassificationMetrics,
  ConfusionCell,
  EstimatedMetrics,
  PredictionSpec,
  RegressionAggregates,
  RegressionMetrics,
} from './types.js';
export { queryFeatureMeans, queryTraffic } from './traffic.js';
export type { TrafficSummary } from './traffic.js';
