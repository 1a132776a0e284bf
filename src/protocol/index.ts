export { decodeCall, decodeRestBody, isProtobufCall } from './decode-call.js';
export type { DecodeCallOptions, DecodedCall } from './decode-call.js';
export { flattenTensors } from './flatten.js';
export type { FlatRow } from './flatten.js';
export { DATATYPE_ITEM_SIZE, INTEGER_RANGE, V2Datatypes, isBytesType, parseDatatype } from './datatypes.js';
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
