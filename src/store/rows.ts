/** One flattened batch row: the features and outputs of one element of a V2 batch. */
export interface PredictionRow {
  model: string;
  /** Model version, '' when the call named none. */
  version: string;
  /** Capture time, epoch ms (the sidecar's clock at request start). */
  ts: number;
  event_id: string;
  request_id: string;
  /** Index of the row within its request batch. */
  row: number;
  features_num: Record<string, number>;
  features_cat: Record<string, string>;
  outputs_num: Record<string, number>;
  outputs_cat: Record<string, string>;
}

/** One inference call (request/response pair), decodable or not. */
export interface RequestRow {
  model: string;
  version: string;
  ts: number;
  event_id: string;
  request_id: string;
  /** `rest`, `grpc`, `kserve`, `seldon` or another producer's name. */
  source: string;
  route: string;
  /** HTTP status (gRPC status codes are mapped to HTTP by the producer). */
  status: number;
  latency_ms: number;
  request_bytes: number;
  response_bytes: number;
  request_truncated: boolean;
  response_truncated: boolean;
  /** Number of prediction rows stored for the call. */
  rows: number;
  /** Error text of a failed call (upstream error body), '' otherwise. */
  error: string;
}

/** A ground-truth label for one row of a request. */
export interface LabelRow {
  request_id: string;
  row: number;
  /** Stored as text; numeric labels are parsed at query time. */
  label: string;
}

/** A record that could not be decoded, kept with the reason. */
export interface QuarantineRow {
  event_id: string;
  request_id: string;
  model: string;
  source: string;
  /** Where it came from, e.g. `topic/partition/offset` or `inprocess/123`. */
  origin: string;
  /** A {@link ErrorCode} value. */
  code: string;
  /** The offending field, '' when unknown. */
  field: string;
  reason: string;
  /** The undecodable payload, base64, capped. */
  payload: string;
}
