/**
 * Multivariate and embedding drift kernels: data reconstruction (PCA), domain classifier
 * (histogram gradient-boosted trees, in worker threads), MMD, share of drifted components and
 * mean-vector distances. Pure functions over in-memory rows; fetching samples and storing results
 * belongs to the detector.
 *
 * One entry point per method returns the stored result shape ({@link MultivariateDriftResult}):
 * {@link reconstructionDrift}, {@link domainClassifierMethod}, {@link mmdMethod},
 * {@link componentShareMethod}, {@link meanDistanceMethod} (all in worker threads), or
 * {@link runMultivariateDrift} with the method's name. The lower-level kernels below stay exported.
 */
export { aucOfSplit, rocAuc } from './auc.js';
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
  type MeanDistanceResult,
  type MmdOptions,
  type MmdResult,
} from './embedding.js';
export { toFlat, type FlatRows } from './flat.js';
export type { KernelWorkerOptions } from './kernel-worker.js';
export {
  MultivariateMethods,
  componentShareMethod,
  computeMultivariateDrift,
  computeMultivariateDriftFlat,
  defaultMultivariateMethods,
  domainClassifierMethod,
  meanDistanceMethod,
  mmdMethod,
  reconstructionDrift,
  runMultivariateDrift,
  type MultivariateDetails,
  type MultivariateDriftResult,
  type MultivariateMethod,
  type MultivariateMethodOptions,
  type MultivariateParams,
  type RunMultivariateOptions,
} from './methods.js';
export { seededRng, sampleRows, type Rng } from './random.js';
export {
  componentsForShare,
  fitReconstruction,
  fitReconstructionFlat,
  type ReconstructionModel,
  type ReconstructionOptions,
  type ReconstructionResult,
} from './reconstruction.js';
export type { MultivariateVerdict, Rows } from './types.js';
