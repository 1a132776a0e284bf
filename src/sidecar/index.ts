export { startSidecar } from './sidecar.js';
export type { SidecarOptions, RunningSidecar } from './sidecar.js';
export { Tee, TeeDropReasons } from './tee.js';
export type { TeeOptions, TeeStats, TeeDropReason } from './tee.js';
export { acquireTee } from './shared-tee.js';
export type { TeeLease } from './shared-tee.js';
export { SidecarMetrics, UpstreamErrorReasons } from './metrics.js';
export type { UpstreamErrorReason } from './metrics.js';
export { matchInferPath } from './route.js';
export type { InferTarget } from './route.js';
export { HOP_BY_HOP, NEVER_CAPTURED } from './headers.js';
export {
  startGrpcProxy,
  grpcStatusToHttp,
  GRPC_SERVICE,
  GRPC_INFER_ROUTE,
  GRPC_PROXIED_METHODS,
} from './grpc-proxy.js';
export type { GrpcProxyOptions, CaptureSink } from './grpc-proxy.js';
export { LoopDiagnostics, startDiagnosticsLog, diagnosticsIntervalFromEnv, DIAGNOSTICS_ENV } from './diagnostics.js';
export type { DiagnosticsReading, LoopDiagnosticsOptions } from './diagnostics.js';
export { capYoungGeneration, holdYoungGeneration, youngGenerationFlagGiven } from './young-generation.js';
export type { YoungGenerationCap } from './young-generation.js';
