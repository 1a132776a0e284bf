export { startIngest } from './start.js';
export type { IngestOptions, IngestRole } from './start.js';
export { IngestPipeline, storedEventIds } from './pipeline.js';
export type { IngestPipelineOptions, DecodeFn, StoredEventIds, CallKey } from './pipeline.js';
export { createIngestMetrics } from './metrics.js';
export type { IngestMetrics } from './metrics.js';
export { buildCallRecords, envelopeQuarantine, QuarantineReasons, QUARANTINE_PAYLOAD_BYTES } from './records.js';
export type { CallRecords, QuarantineReason } from './records.js';
export { ingestLabels, queryLabelledRows, labelledRowsSql, labelInputSchema, labelsInputSchema } from './labels.js';
export type { LabelInput, LabelledRowsQuery, LabelledRow } from './labels.js';
export { startSeldonBridge } from './seldon.js';
export type { SeldonBridge, SeldonBridgeOptions } from './seldon.js';
export {
  createKserveReceiver,
  kserveRoutes,
  kserveReceiverOf,
  KSERVE_REQUEST_TYPE,
  KSERVE_RESPONSE_TYPE,
} from './kserve-receiver.js';
export type { KserveReceiver, KserveReceiverOptions } from './kserve-receiver.js';
export {
  INGEST_FORMAT,
  PredictionColumns,
  RequestColumns,
  PayloadColumns,
  QuarantineColumns,
  predictionLine,
  requestLine,
  payloadLine,
  quarantineLine,
  jsonFloatMap,
} from './encode.js';
export { payloadRowOf } from './payloads.js';
export type { PayloadRow } from './payloads.js';
