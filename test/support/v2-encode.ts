/**
 * Test-side V2 encoders: JSON bodies, Triton binary-extension bodies, gzip/deflate, gRPC
 * ModelInferRequest/Response bytes, and a {@link capturedCall} builder. Independent of the decoder
 * except for the protobuf schema (the `.proto` is the interface both sides share).
 */
import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import type { CapturedBody, CapturedCall } from '../../src/bus/index.js';
import {
  encodeModelInferRequest,
  encodeModelInferResponse,
  type InferTensorContentsMessage,
  type InferTensorMessage,
} from '../../src/protocol/index.js';

/** Nested or flat row-major element data (numbers, booleans, strings, or bigint for 64-bit ints). */
export type TensorData = unknown[];

/** One tensor to encode. */
export interface TensorSpec {
  name: string;
  /** Datatype as sent on the wire (e.g. `FP32`, `BYTES`, `STRING`). */
  datatype: string;
  shape: number[];
  /** Flat or nested; flattened row-major for binary encodings. */
  data: TensorData;
  /** Extra tensor parameters, merged into the JSON header. */
  parameters?: Record<string, unknown>;
}

/** Flattens nested arrays row-major. */
export function flattenData(data: TensorData): unknown[] {
  const out: unknown[] = [];
  const walk = (a: unknown[]): void => {
    for (const v of a) {
      if (Array.isArray(v)) walk(v);
      else out.push(v);
    }
  };
  walk(data);
  return out;
}

function tensorJson(t: TensorSpec): Record<string, unknown> {
  const o: Record<string, unknown> = { name: t.name, shape: t.shape, datatype: t.datatype, data: t.data };
  if (t.parameters !== undefined) o.parameters = t.parameters;
  return o;
}

/** A V2 JSON request body `{id?, parameters?, inputs}`. */
export function encodeJsonRequest(
  inputs: TensorSpec[],
  opts: { id?: string; parameters?: Record<string, unknown> } = {},
): Buffer {
  return Buffer.from(JSON.stringify({ ...opts, inputs: inputs.map(tensorJson) }));
}

/** A V2 JSON response body `{model_name, model_version?, id?, outputs}`. */
export function encodeJsonResponse(
  outputs: TensorSpec[],
  opts: { model_name?: string; model_version?: string; id?: string } = {},
): Buffer {
  return Buffer.from(
    JSON.stringify({ model_name: opts.model_name ?? 'model', ...opts, outputs: outputs.map(tensorJson) }),
  );
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Nearest IEEE binary16 bits of `x` (round half to even; overflow to ±Inf). */
export function toFp16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0] ?? 0;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++;
  return half;
}

/** Nearest bfloat16 bits of `x` (round half to even on the binary32 bits). */
export function toBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0] ?? 0;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Little-endian raw bytes of flat elements (BYTES: uint32LE length + UTF-8 or raw bytes each). */
export function encodeRawTensor(datatype: string, values: unknown[]): Buffer {
  if (datatype === 'BYTES' || datatype === 'STRING') {
    const parts: Buffer[] = [];
    for (const v of values) {
      const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v as Uint8Array);
      const len = Buffer.alloc(4);
      len.writeUInt32LE(b.length);
      parts.push(len, b);
    }
    return Buffer.concat(parts);
  }
  const size: Record<string, number> = {
    BOOL: 1,
    UINT8: 1,
    INT8: 1,
    UINT16: 2,
    INT16: 2,
    FP16: 2,
    BF16: 2,
    UINT32: 4,
    INT32: 4,
    FP32: 4,
    UINT64: 8,
    INT64: 8,
    FP64: 8,
  };
  const s = size[datatype];
  if (s === undefined) throw new Error(`encodeRawTensor: unknown datatype ${datatype}`);
  const buf = Buffer.alloc(values.length * s);
  values.forEach((v, i) => {
    const o = i * s;
    const n = typeof v === 'boolean' ? (v ? 1 : 0) : (v as number);
    switch (datatype) {
      case 'BOOL':
      case 'UINT8':
        buf.writeUInt8(n, o);
        break;
      case 'INT8':
        buf.writeInt8(n, o);
        break;
      case 'UINT16':
        buf.writeUInt16LE(n, o);
        break;
      case 'INT16':
        buf.writeInt16LE(n, o);
        break;
      case 'FP16':
        buf.writeUInt16LE(toFp16Bits(n), o);
        break;
      case 'BF16':
        buf.writeUInt16LE(toBf16Bits(n), o);
        break;
      case 'UINT32':
        buf.writeUInt32LE(n, o);
        break;
      case 'INT32':
        buf.writeInt32LE(n, o);
        break;
      case 'FP32':
        buf.writeFloatLE(n, o);
        break;
      case 'FP64':
        buf.writeDoubleLE(n, o);
        break;
      case 'UINT64':
        buf.writeBigUInt64LE(BigInt(v as number | bigint), o);
        break;
      case 'INT64':
        buf.writeBigInt64LE(BigInt(v as number | bigint), o);
        break;
    }
  });
  return buf;
}

/** Options of the binary-extension encoders. */
export interface BinaryEncodeOptions {
  /** Names of tensors to keep as JSON `data` instead of binary. @default [] */
  jsonTensors?: string[];
  id?: string;
  model_name?: string;
  model_version?: string;
}

function encodeBinary(
  key: 'inputs' | 'outputs',
  tensors: TensorSpec[],
  opts: BinaryEncodeOptions,
  top: Record<string, unknown>,
): { body: Buffer; headerLength: number } {
  const blobs: Buffer[] = [];
  const list = tensors.map((t) => {
    if (opts.jsonTensors?.includes(t.name) === true) return tensorJson(t);
    const blob = encodeRawTensor(t.datatype, flattenData(t.data));
    blobs.push(blob);
    return {
      name: t.name,
      shape: t.shape,
      datatype: t.datatype,
      parameters: { ...t.parameters, binary_data_size: blob.length },
    };
  });
  const header = Buffer.from(JSON.stringify({ ...top, [key]: list }));
  return { body: Buffer.concat([header, ...blobs]), headerLength: header.length };
}

/** A Triton binary-extension request: JSON header + blobs; `headerLength` is `Inference-Header-Content-Length`. */
export function encodeBinaryRequest(
  inputs: TensorSpec[],
  opts: BinaryEncodeOptions = {},
): { body: Buffer; headerLength: number } {
  return encodeBinary('inputs', inputs, opts, opts.id === undefined ? {} : { id: opts.id });
}

/** A Triton binary-extension response (binary outputs). */
export function encodeBinaryResponse(
  outputs: TensorSpec[],
  opts: BinaryEncodeOptions = {},
): { body: Buffer; headerLength: number } {
  const top: Record<string, unknown> = { model_name: opts.model_name ?? 'model' };
  if (opts.model_version !== undefined) top.model_version = opts.model_version;
  if (opts.id !== undefined) top.id = opts.id;
  return encodeBinary('outputs', outputs, opts, top);
}

/** gzip-compress. */
export function gzip(b: Buffer): Buffer {
  return gzipSync(b);
}

/** HTTP `deflate` (zlib format); `raw: true` for a headerless deflate stream. */
export function deflate(b: Buffer, raw = false): Buffer {
  return raw ? deflateRawSync(b) : deflateSync(b);
}

const CONTENTS_KEY: Record<string, keyof InferTensorContentsMessage> = {
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
  STRING: 'bytes_contents',
};

function grpcTensor(t: TensorSpec, raw: boolean): InferTensorMessage {
  const msg: InferTensorMessage = { name: t.name, datatype: t.datatype, shape: t.shape };
  if (!raw) {
    const key = CONTENTS_KEY[t.datatype];
    if (key === undefined) throw new Error(`${t.datatype} has no typed contents; use raw`);
    const flat = flattenData(t.data).map((v) =>
      typeof v === 'string' ? Buffer.from(v, 'utf8') : typeof v === 'bigint' ? v.toString() : v,
    );
    msg.contents = { [key]: flat };
  }
  return msg;
}

/** Options of the gRPC encoders. */
export interface GrpcEncodeOptions {
  model_name?: string;
  model_version?: string;
  id?: string;
  /** Send tensor data in `raw_*_contents` instead of typed `contents`. @default false */
  raw?: boolean;
}

/** `ModelInferRequest` protobuf bytes (no gRPC frame). */
export function encodeGrpcRequest(inputs: TensorSpec[], opts: GrpcEncodeOptions = {}): Buffer {
  const raw = opts.raw === true;
  return encodeModelInferRequest({
    model_name: opts.model_name ?? 'model',
    model_version: opts.model_version ?? '',
    id: opts.id ?? '',
    inputs: inputs.map((t) => grpcTensor(t, raw)),
    raw_input_contents: raw ? inputs.map((t) => encodeRawTensor(t.datatype, flattenData(t.data))) : [],
  });
}

/** `ModelInferResponse` protobuf bytes (no gRPC frame). */
export function encodeGrpcResponse(outputs: TensorSpec[], opts: GrpcEncodeOptions = {}): Buffer {
  const raw = opts.raw === true;
  return encodeModelInferResponse({
    model_name: opts.model_name ?? 'model',
    model_version: opts.model_version ?? '',
    id: opts.id ?? '',
    outputs: outputs.map((t) => grpcTensor(t, raw)),
    raw_output_contents: raw ? outputs.map((t) => encodeRawTensor(t.datatype, flattenData(t.data))) : [],
  });
}

/** Wraps a protobuf message in a gRPC length-prefixed frame (`compressed` sets the flag only). */
export function grpcFrame(msg: Buffer, compressed = false): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt8(compressed ? 1 : 0, 0);
  h.writeUInt32BE(msg.length, 1);
  return Buffer.concat([h, msg]);
}

/** A {@link CapturedBody} with sensible defaults (not truncated, size = body length). */
export function capturedBody(body: Buffer, opts: Partial<Omit<CapturedBody, 'body'>> = {}): CapturedBody {
  return {
    body,
    size: opts.size ?? body.length,
    truncated: opts.truncated ?? false,
    contentType: opts.contentType ?? 'application/json',
    contentEncoding: opts.contentEncoding ?? '',
    headerLength: opts.headerLength,
  };
}

let seq = 0;

/** A {@link CapturedCall} for tests: a 200 REST call to `model` unless overridden. */
export function capturedCall(
  request: Buffer | CapturedBody,
  response: Buffer | CapturedBody = Buffer.alloc(0),
  overrides: Partial<Omit<CapturedCall, 'request' | 'response'>> = {},
): CapturedCall {
  seq++;
  const model = overrides.model ?? 'model';
  return {
    eventId: `event-${process.pid}-${seq}`,
    requestId: `request-${process.pid}-${seq}`,
    source: 'rest',
    model,
    version: '',
    route: `/v2/models/${model}/infer`,
    method: 'POST',
    status: 200,
    startedAt: Date.now(),
    latencyMs: 1,
    headers: {},
    error: '',
    ...overrides,
    request: Buffer.isBuffer(request) ? capturedBody(request) : request,
    response: Buffer.isBuffer(response) ? capturedBody(response) : response,
  };
}
