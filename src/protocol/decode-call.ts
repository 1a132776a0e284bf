import type { CapturedBody, CapturedCall } from './capture.js';
import type { ModelSchema } from '../config/model-schema.js';
import { decompressBody } from './content-encoding.js';
import { flattenTensors, type FlatRow } from './flatten.js';
import { decodeModelInferRequest, decodeModelInferResponse } from './grpc.js';
import { decodeRestRequest, decodeRestResponse, SIDE_FIELDS, type BodySide } from './rest-body.js';
import {
  invalid,
  resolveLimits,
  type DecodeLimits,
  type DecodedInferRequest,
  type DecodedInferResponse,
} from './tensor.js';

export type { FlatRow } from './flatten.js';

/** A decoded call: one {@link FlatRow} per batch element. */
export interface DecodedCall {
  rows: FlatRow[];
  /** Model name/version found in the body (response `model_name`), when the route had none. */
  model?: string | undefined;
  version?: string | undefined;
}

/** Options of {@link decodeCall}. */
export interface DecodeCallOptions {
  /** Size limits. @default defaultDecodeLimits */
  limits?: DecodeLimits;
}

const PROTOBUF_SOURCES = new Set(['grpc', 'seldon']);

/** True when the call's bodies are V2 protobuf (gRPC capture, Seldon topic, or a protobuf content type). */
export function isProtobufCall(call: Pick<CapturedCall, 'source' | 'request'>): boolean {
  if (PROTOBUF_SOURCES.has(call.source)) return true;
  const ct = call.request.contentType.toLowerCase();
  return ct.startsWith('application/grpc') || ct.includes('protobuf');
}

/**
 * Decodes one REST body (undoing its content-encoding first: Triton's header length counts
 * decompressed bytes). Exposed for producers that hold a body rather than a whole call.
 */
export function decodeRestBody(side: 'request', body: CapturedBody, limits?: DecodeLimits): DecodedInferRequest;
export function decodeRestBody(
  side: 'response',
  body: CapturedBody,
  limits?: DecodeLimits,
): DecodedInferResponse | undefined;
export function decodeRestBody(
  side: BodySide,
  body: CapturedBody,
  limits?: DecodeLimits,
): DecodedInferRequest | DecodedInferResponse | undefined {
  const l = resolveLimits(limits);
  const fields = SIDE_FIELDS[side];
  const raw = decompressBody(body.body, body.contentEncoding, l.maxDecompressedBytes, fields.contentEncoding);
  const opts = { headerLength: body.headerLength, maxElements: l.maxElements, maxJsonDepth: l.maxJsonDepth };
  return side === 'request' ? decodeRestRequest(raw, opts) : decodeRestResponse(raw, opts);
}

function responseUsable(call: CapturedCall): boolean {
  return (
    call.status >= 200 &&
    call.status < 300 &&
    call.error === '' &&
    !call.response.truncated &&
    call.response.body.length > 0
  );
}

/**
 * Decodes a captured call (REST JSON, Triton binary extension, gzip/deflate, or gRPC protobuf per
 * `call.source`) and flattens it into rows with the model schema (see {@link flattenTensors}).
 * Throws {@link ModelwatchError} `decode_invalid` naming the field on any malformed input; a
 * truncated request capture is `decode_invalid` on `request.body`. A non-2xx, failed, truncated,
 * empty or `{"error": …}` response yields rows with features only.
 */
export function decodeCall(call: CapturedCall, schema: ModelSchema, options: DecodeCallOptions = {}): DecodedCall {
  const limits = resolveLimits(options.limits);
  if (call.request.truncated) {
    throw invalid(
      'request.body',
      `capture truncated at ${call.request.body.length} of ${call.request.size} bytes; the request cannot be decoded`,
    );
  }
  const proto = isProtobufCall(call);
  const request = proto
    ? decodeModelInferRequest(call.request.body, { encoding: call.request.contentEncoding, limits })
    : decodeRestBody('request', call.request, limits);
  let response: DecodedInferResponse | undefined;
  if (responseUsable(call)) {
    response = proto
      ? decodeModelInferResponse(call.response.body, { encoding: call.response.contentEncoding, limits })
      : decodeRestBody('response', call.response, limits);
  }
  return {
    rows: flattenTensors(request.inputs, response?.outputs, schema),
    model: response?.model ?? request.model,
    version: response?.version ?? request.version,
  };
}
