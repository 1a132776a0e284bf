/**
 * Multivariate and embedding drift kernels: data reconstruction (PCA), domain classifier (random
 * forest, in a worker thread), MMD, share of drifted components and mean-vector distances. Pure
 * functions over in-memory rows; fetching samples and storing results belongs to the detector.
 */
export { rocAuc } from './auc.js';
export { runDomainClassifier, type RunDomainClassifierOptions } from './classifier-worker.js';
export {
  domainClassifierDrift,
  resolveDomainClassifierOptions,
  type DomainClassifierOptions,
  type DomainClassifierResult,
  type FeatureImportance,
} from './domain-classifier.js';
export {
  componentDrift,
  ksStatistic,
  meanDistance,
  meanDistanceDrift,
  meanVector,
  medianPairwiseDistance,
  mmdDrift,
  type ComponentDriftOptions,
  type ComponentDriftResult,
  type MeanDistance,
  type MeanDistanceOptions,
  type MmdOptions,
  type MmdResult,
} from './embedding.js';
export { seededRng, sampleRows, type Rng } from './random.js';
export {
  componentsForShare,
  fitReconstruction,
  type ReconstructionModel,
  type ReconstructionOptions,
  type ReconstructionResult,
} from './reconstruction.js';
export type { MultivariateVerdict, Rows } from './types.js';
