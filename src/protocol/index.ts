/**
 * V2 / Open Inference Protocol decoding: REST JSON, Triton binary extension, gzip/deflate/br, gRPC
 * `ModelInferRequest`/`ModelInferResponse` (typed and raw contents), flattened to per-row features
 * and outputs with the model schema.
 *
 * Every malformed input is a `ModelwatchError` with code `decode_invalid` and a `field`:
 * `request.body` / `response.body` (not JSON, too deep, not protobuf, truncated capture),
 * `header_length` / `response.header_length` (Triton `Inference-Header-Content-Length`),
 * `request.content_encoding` / `response.content_encoding` (unsupported, corrupt, over the cap),
 * `inputs` / `outputs`, `inputs[i].name|datatype|shape|data`, `inputs[i].parameters.binary_data_size`,
 * `inputs[i].contents[.xxx_contents]`, `raw_input_contents[i]` (and the `outputs`/`raw_output_contents` twins).
 *
 * @module
 */
export {
  encodeCapture,
  decodeCapture,
  CaptureSources,
  CAPTURE_CONTENT_TYPE,
  CAPTURE_EVENT_TYPE,
  PROTOBUF_CONTENT_TYPE,
} from './capture.js';
export type { CapturedCall, CapturedBody, CaptureSource, CaptureRecord } from './capture.js';
export { peekInferRequest } from './infer-peek.js';
export type { InferRequestIds } from './infer-peek.js';
export { decodeCall, decodeRestBody, isProtobufCall } from './decode-call.js';
export type { DecodeCallOptions, DecodedCall } from './decode-call.js';
export { flattenTensors } from './flatten.js';
export type { FlatRow } from './flatten.js';
export {
  DATATYPE_ITEM_SIZE,
  FLOAT_OVERFLOW,
  INTEGER_RANGE,
  V2Datatypes,
  isBytesType,
  parseDatatype,
} from './datatypes.js';
export type { V2Datatype } from './datatypes.js';
export { checkShape, defaultDecodeLimits, resolveLimits } from './tensor.js';
export type { DecodeLimits, DecodedInferRequest, DecodedInferResponse, DecodedTensor } from './tensor.js';
export { bf16ToNumber, bytesToString, decodeRaw, fp16ToNumber } from './raw.js';
export { SupportedContentEncodings, decompressBody } from './content-encoding.js';
export { decodeRestRequest, decodeRestResponse, jsonNestingDepth, jsonTensorValues, SIDE_FIELDS } from './rest-body.js';
export type { BodySide, RestBodyOptions, SideFields } from './rest-body.js';
export {
  INFERENCE_PROTO_PATH,
  decodeModelInferRequest,
  decodeModelInferResponse,
  encodeModelInferRequest,
  encodeModelInferResponse,
  loadInferenceProto,
  unwrapGrpcFrame,
} from './grpc.js';
export type {
  GrpcDecodeOptions,
  InferParameterMessage,
  InferTensorContentsMessage,
  InferTensorMessage,
  InferenceProto,
  Int64Like,
  ModelInferRequestMessage,
  ModelInferResponseMessage,
} from './grpc.js';
export { peekModelFromPath } from './model-path.js';
export type { PathModel } from './model-path.js';
