// PLACEHOLDER signature, implemented by the protocol work (issue 2 item 5).
import type { CapturedCall } from '../bus/capture.js';
import type { ModelSchema } from '../config/model-schema.js';
import { ErrorCodes, ModelwatchError } from '../common/errors.js';

/** The per-row values of one decoded call (names per the model schema, default `<tensor>_<j>`). */
export interface FlatRow {
  features_num: Record<string, number>;
  features_cat: Record<string, string>;
  outputs_num: Record<string, number>;
  outputs_cat: Record<string, string>;
}

/** A decoded call: one {@link FlatRow} per batch element. */
export interface DecodedCall {
  rows: FlatRow[];
  /** Model name/version found in the body (response `model_name`), when the route had none. */
  model?: string | undefined;
  version?: string | undefined;
}

/**
 * Decodes a captured call (REST JSON, Triton binary extension, gzip/deflate, or gRPC protobuf per
 * `call.source`) and flattens it into rows. Throws {@link ModelwatchError} `decode_invalid` naming
 * the field on any malformed input. A non-2xx response yields rows with features only.
 */
export function decodeCall(_call: CapturedCall, _schema: ModelSchema): DecodedCall {
  throw new ModelwatchError(ErrorCodes.internal, 'decodeCall not implemented yet');
}
