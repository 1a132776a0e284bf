import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { isModelwatchError } from '../common/errors.js';
import { INTEGER_RANGE, parseDatatype, type V2Datatype } from './datatypes.js';
import { decompressBody } from './content-encoding.js';
import { bytesToString, decodeRaw } from './raw.js';
import {
  checkShape,
  invalid,
  resolveLimits,
  type DecodeLimits,
  type DecodedInferRequest,
  type DecodedInferResponse,
  type DecodedTensor,
} from './tensor.js';

function findProto(): string {
  const candidates = [
    new URL('./proto/open_inference_grpc.proto', import.meta.url),
    // From a built dist/protocol/, the .proto stays in src/ (tsc does not copy it).
    new URL('../../src/protocol/proto/open_inference_grpc.proto', import.meta.url),
  ].map((u) => fileURLToPath(u));
  return candidates.find((p) => existsSync(p)) ?? (candidates[0] as string);
}

/**
 * Absolute path of the Open Inference Protocol gRPC definition (package `inference`, service
 * `GRPCInferenceService`), e.g. for `@grpc/proto-loader` with `keepCase: true`.
 */
export const INFERENCE_PROTO_PATH: string = findProto();

/** A protobuf int64/uint64 as decoded (protobufjs `Long`) or as given to the encoder. */
export type Int64Like = number | string | { toNumber(): number };

/** `inference.InferParameter` (one of the fields is set). */
export interface InferParameterMessage {
  bool_param?: boolean;
  int64_param?: Int64Like;
  string_param?: string;
  double_param?: number;
  uint64_param?: Int64Like;
}

/** `inference.InferTensorContents`: only the field matching the datatype is used. */
export interface InferTensorContentsMessage {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: Int64Like[];
  uint_contents?: number[];
  uint64_contents?: Int64Like[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Uint8Array[];
}

/** An input tensor (`ModelInferRequest.InferInputTensor`) or output tensor (`ModelInferResponse.InferOutputTensor`). */
export interface InferTensorMessage {
  name: string;
  datatype: string;
  shape: Int64Like[];
  parameters?: Record<string, InferParameterMessage>;
  contents?: InferTensorContentsMessage | null;
}

/** `inference.ModelInferRequest`, with the proto's snake_case field names. */
export interface ModelInferRequestMessage {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: Record<string, InferParameterMessage>;
  inputs: InferTensorMessage[];
  outputs?: { name: string; parameters?: Record<string, InferParameterMessage> }[];
  raw_input_contents?: Uint8Array[];
}

/** `inference.ModelInferResponse`, with the proto's snake_case field names. */
export interface ModelInferResponseMessage {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: Record<string, InferParameterMessage>;
  outputs: InferTensorMessage[];
  raw_output_contents?: Uint8Array[];
}

/** The loaded inference proto: the protobufjs root and the two message types modelwatch decodes. */
export interface InferenceProto {
  root: protobuf.Root;
  ModelInferRequest: protobuf.Type;
  ModelInferResponse: protobuf.Type;
}

let loaded: InferenceProto | undefined;

/** Loads (once) {@link INFERENCE_PROTO_PATH} with protobufjs, keeping the proto's snake_case names. */
export function loadInferenceProto(): InferenceProto {
  if (loaded === undefined) {
    const { root } = protobuf.parse(readFileSync(INFERENCE_PROTO_PATH, 'utf8'), { keepCase: true });
    loaded = {
      root,
      ModelInferRequest: root.lookupType('inference.ModelInferRequest'),
      ModelInferResponse: root.lookupType('inference.ModelInferResponse'),
    };
  }
  return loaded;
}

/** A Buffer view of bytes, without copying. */
function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** Serialises a `ModelInferRequest` (protobuf wire bytes, no gRPC frame). */
export function encodeModelInferRequest(msg: ModelInferRequestMessage): Buffer {
  const T = loadInferenceProto().ModelInferRequest;
  return asBuffer(T.encode(T.fromObject(msg)).finish());
}

/** Serialises a `ModelInferResponse` (protobuf wire bytes, no gRPC frame). */
export function encodeModelInferResponse(msg: ModelInferResponseMessage): Buffer {
  const T = loadInferenceProto().ModelInferResponse;
  return asBuffer(T.encode(T.fromObject(msg)).finish());
}

/** Options of the gRPC decoders. */
export interface GrpcDecodeOptions {
  /** `grpc-encoding` of a compressed gRPC frame (or a content-encoding of an unframed body). @default '' */
  encoding?: string;
  /** Size limits. @default defaultDecodeLimits */
  limits?: DecodeLimits;
}

/**
 * Strips a gRPC length-prefixed frame (1-byte compressed flag, uint32BE length) when present and
 * undoes its compression. A protobuf message never starts with byte 0 or 1 (field number 0 is
 * invalid), so a body starting that way whose prefix length matches is unambiguously a frame.
 */
export function unwrapGrpcFrame(body: Buffer, encoding: string, maxBytes: number, field: string): Buffer {
  const flag = body[0];
  if (body.length >= 5 && (flag === 0 || flag === 1) && body.readUInt32BE(1) === body.length - 5) {
    const msg = body.subarray(5);
    if (flag === 0) return msg;
    return decompressBody(msg, encoding === '' || encoding === 'identity' ? 'gzip' : encoding, maxBytes, field);
  }
  return encoding === '' ? body : decompressBody(body, encoding, maxBytes, field);
}

function parseMessage(T: protobuf.Type, bytes: Buffer, field: string): protobuf.Message {
  try {
    return T.decode(bytes);
  } catch (err: unknown) {
    // protobufjs throws RangeError/ProtocolError on truncated or malformed wire data.
    throw invalid(field, `not a valid ${T.name}: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

function toNumber(v: Int64Like): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return Number(v);
  return v.toNumber();
}

type ContentsKey = keyof InferTensorContentsMessage;

const CONTENTS_FIELD: Readonly<Record<V2Datatype, ContentsKey | undefined>> = {
  BOOL: 'bool_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  BYTES: 'bytes_contents',
  // No typed field: FP16/BF16 travel only as raw contents.
  FP16: undefined,
  BF16: undefined,
};

const ALL_CONTENTS_KEYS: readonly ContentsKey[] = [
  'bool_contents',
  'int_contents',
  'int64_contents',
  'uint_contents',
  'uint64_contents',
  'fp32_contents',
  'fp64_contents',
  'bytes_contents',
];

function typedValues(
  contents: InferTensorContentsMessage | null | undefined,
  datatype: V2Datatype,
  count: number,
  field: string,
): ArrayLike<number> | string[] {
  const key = CONTENTS_FIELD[datatype];
  for (const k of ALL_CONTENTS_KEYS) {
    if (k !== key && (contents?.[k]?.length ?? 0) > 0) {
      throw invalid(`${field}.${k}`, `set, but datatype ${datatype} is carried in ${key ?? 'raw contents only'}`);
    }
  }
  if (key === undefined) {
    if (count === 0) return new Float64Array(0);
    throw invalid(field, `${datatype} has no typed contents field; it must be sent as raw contents`);
  }
  const src = (contents?.[key] ?? []) as ArrayLike<unknown>;
  const f = `${field}.${key}`;
  if (src.length !== count) throw invalid(f, `${src.length} elements where the shape declares ${count}`);
  if (datatype === 'BYTES') {
    const out = new Array<string>(count);
    for (let i = 0; i < count; i++) out[i] = bytesToString(src[i] as Uint8Array);
    return out;
  }
  const out = new Float64Array(count);
  const range = INTEGER_RANGE[datatype];
  for (let i = 0; i < count; i++) {
    const raw = src[i];
    const v = typeof raw === 'boolean' ? (raw ? 1 : 0) : toNumber(raw as Int64Like);
    // int_contents/uint_contents are 32-bit on the wire: narrower types need a range check.
    if (range !== undefined && (v < range[0] || v > range[1])) {
      throw invalid(f, `element ${i} is ${v}, outside the ${datatype} range [${range[0]}, ${range[1]}]`);
    }
    out[i] = v;
  }
  return out;
}

function grpcTensors(
  list: InferTensorMessage[],
  raw: Uint8Array[],
  key: 'inputs' | 'outputs',
  rawKey: 'raw_input_contents' | 'raw_output_contents',
  maxElements: number,
): DecodedTensor[] {
  if (raw.length > 0 && raw.length !== list.length) {
    throw invalid(rawKey, `${raw.length} entries for ${list.length} ${key}`);
  }
  return list.map((t, i) => {
    const field = `${key}[${i}]`;
    if (t.name === '') throw invalid(`${field}.name`, 'must be a non-empty string');
    const datatype = parseDatatype(t.datatype);
    if (datatype === undefined) throw invalid(`${field}.datatype`, `unknown datatype ${JSON.stringify(t.datatype)}`);
    const { shape, count } = checkShape(t.shape.map(toNumber), `${field}.shape`, maxElements);
    const blob = raw[i];
    if (blob === undefined) {
      return { name: t.name, datatype, shape, values: typedValues(t.contents, datatype, count, `${field}.contents`) };
    }
    if (t.contents != null && ALL_CONTENTS_KEYS.some((k) => (t.contents?.[k]?.length ?? 0) > 0)) {
      throw invalid(`${field}.contents`, `set although ${rawKey} carries the tensor data`);
    }
    return { name: t.name, datatype, shape, values: decodeRaw(datatype, asBuffer(blob), count, `${rawKey}[${i}]`) };
  });
}

function emptyToUndefined(s: unknown): string | undefined {
  return typeof s === 'string' && s !== '' ? s : undefined;
}

/**
 * Decodes a gRPC `ModelInferRequest` (bare protobuf, or one gRPC frame) into tensors. Typed
 * `contents` and `raw_input_contents` are both supported. Malformed input is `decode_invalid`.
 */
export function decodeModelInferRequest(body: Uint8Array, opts: GrpcDecodeOptions = {}): DecodedInferRequest {
  const limits = resolveLimits(opts.limits);
  const bytes = unwrapGrpcFrame(asBuffer(body), opts.encoding ?? '', limits.maxDecompressedBytes, 'request.body');
  const m = parseMessage(
    loadInferenceProto().ModelInferRequest,
    bytes,
    'request.body',
  ) as unknown as ModelInferRequestMessage;
  if (m.inputs.length === 0) throw invalid('inputs', 'empty: a request needs at least one input tensor');
  try {
    return {
      id: emptyToUndefined(m.id),
      model: emptyToUndefined(m.model_name),
      version: emptyToUndefined(m.model_version),
      inputs: grpcTensors(m.inputs, m.raw_input_contents ?? [], 'inputs', 'raw_input_contents', limits.maxElements),
    };
  } catch (err: unknown) {
    if (isModelwatchError(err)) throw err;
    throw invalid('request.body', `malformed ModelInferRequest: ${String(err)}`, err);
  }
}

/** Decodes a gRPC `ModelInferResponse` (bare protobuf, or one gRPC frame) into tensors. */
export function decodeModelInferResponse(body: Uint8Array, opts: GrpcDecodeOptions = {}): DecodedInferResponse {
  const limits = resolveLimits(opts.limits);
  const bytes = unwrapGrpcFrame(asBuffer(body), opts.encoding ?? '', limits.maxDecompressedBytes, 'response.body');
  const m = parseMessage(
    loadInferenceProto().ModelInferResponse,
    bytes,
    'response.body',
  ) as unknown as ModelInferResponseMessage;
  try {
    return {
      id: emptyToUndefined(m.id),
      model: emptyToUndefined(m.model_name),
      version: emptyToUndefined(m.model_version),
      outputs: grpcTensors(
        m.outputs,
        m.raw_output_contents ?? [],
        'outputs',
        'raw_output_contents',
        limits.maxElements,
      ),
    };
  } catch (err: unknown) {
    if (isModelwatchError(err)) throw err;
    throw invalid('response.body', `malformed ModelInferResponse: ${String(err)}`, err);
  }
}
