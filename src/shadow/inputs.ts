/**
 * Candidate inputs for replay and live shadow: the request tensors of a call rebuilt exactly as production
 * received them (stored payload → the same V2 decoder as ingest → typed arrays with the wire bits), or,
 * when the payload is gone, rebuilt from the stored feature rows through the model schema's column names.
 */
import type { CapturedBody } from '../protocol/capture.js';
import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import type { ModelSchema } from '../config/model-schema.js';
import {
  DATATYPE_ITEM_SIZE,
  decodeModelInferRequest,
  decodeRestBody,
  decompressBody,
  isProtobufCall,
  loadInferenceProto,
  resolveLimits,
  unwrapGrpcFrame,
  type DecodeLimits,
  type DecodedTensor,
  type V2Datatype,
} from '../protocol/index.js';
import type { OnnxValueInfo, ShadowTensor, ShadowTensorData } from './tensors.js';

/** A stored request body with what is needed to decode it. */
export interface PayloadBody {
  /** Capture source (`rest`, `grpc`, `kserve`, `seldon`): decides REST vs protobuf, like ingest. */
  source: string;
  body: Buffer;
  contentType: string;
  contentEncoding: string;
  /** Triton binary extension header length. */
  headerLength?: number | undefined;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Nearest IEEE binary16 bits of `x` (through binary32; exact for values that came from FP16). */
export function fp16Bits(x: number): number {
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

function bf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0] ?? 0;
  if (Number.isNaN(x)) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Typed array of a datatype from decoded numbers (64-bit integers as BigInt of the decoded value). */
export function typedFromNumbers(datatype: V2Datatype, values: ArrayLike<number> | string[]): ShadowTensorData {
  if (datatype === 'BYTES') return Array.from(values as string[], String);
  const v = values as ArrayLike<number>;
  const n = v.length;
  switch (datatype) {
    case 'FP32':
      return Float32Array.from(v);
    case 'FP64':
      return Float64Array.from(v);
    case 'FP16':
      return Uint16Array.from(v, fp16Bits);
    case 'BF16':
      return Uint16Array.from(v, bf16Bits);
    case 'INT64': {
      const out = new BigInt64Array(n);
      for (let i = 0; i < n; i++) out[i] = BigInt(Math.trunc(v[i] as number));
      return out;
    }
    case 'UINT64': {
      const out = new BigUint64Array(n);
      for (let i = 0; i < n; i++) out[i] = BigInt(Math.trunc(v[i] as number));
      return out;
    }
    case 'INT32':
      return Int32Array.from(v);
    case 'INT16':
      return Int16Array.from(v);
    case 'INT8':
      return Int8Array.from(v);
    case 'UINT32':
      return Uint32Array.from(v);
    case 'UINT16':
      return Uint16Array.from(v);
    case 'UINT8':
    case 'BOOL':
      return Uint8Array.from(v);
  }
}

/** Typed array holding exactly the little-endian wire bytes of `count` elements (not BYTES). */
export function typedFromRaw(datatype: Exclude<V2Datatype, 'BYTES'>, blob: Uint8Array): ShadowTensorData {
  const size = DATATYPE_ITEM_SIZE[datatype];
  // A fresh, aligned buffer owning exactly these bytes (the host is little-endian, like the wire layout).
  const copy = new Uint8Array(blob.byteLength);
  copy.set(blob);
  const b = copy.buffer;
  const n = blob.byteLength / size;
  switch (datatype) {
    case 'FP32':
      return new Float32Array(b, 0, n);
    case 'FP64':
      return new Float64Array(b, 0, n);
    case 'FP16':
    case 'BF16':
    case 'UINT16':
      return new Uint16Array(b, 0, n);
    case 'INT64':
      return new BigInt64Array(b, 0, n);
    case 'UINT64':
      return new BigUint64Array(b, 0, n);
    case 'INT32':
      return new Int32Array(b, 0, n);
    case 'UINT32':
      return new Uint32Array(b, 0, n);
    case 'INT16':
      return new Int16Array(b, 0, n);
    case 'INT8':
      return new Int8Array(b, 0, n);
    case 'UINT8':
    case 'BOOL':
      return copy;
  }
}

function tensorOf(t: DecodedTensor, raw: Uint8Array | undefined, int64Text: string[] | undefined): ShadowTensor {
  let data: ShadowTensorData;
  if (raw !== undefined && t.datatype !== 'BYTES') data = typedFromRaw(t.datatype, raw);
  else if (int64Text !== undefined && (t.datatype === 'INT64' || t.datatype === 'UINT64')) {
    const big = int64Text.map((s) => BigInt(s));
    data = t.datatype === 'INT64' ? BigInt64Array.from(big) : BigUint64Array.from(big);
  } else data = typedFromNumbers(t.datatype, t.values);
  return { name: t.name, datatype: t.datatype, shape: [...t.shape], data };
}

interface RawGrpcTensor {
  contents?: { int64_contents?: string[]; uint64_contents?: string[] } | null;
}

/** Protobuf request: validated by the V2 decoder, then raw contents and 64-bit typed contents re-read exactly. */
function grpcTensors(p: PayloadBody, limits: Readonly<Required<DecodeLimits>>): ShadowTensor[] {
  const decoded = decodeModelInferRequest(p.body, { encoding: p.contentEncoding, limits });
  const bytes = unwrapGrpcFrame(p.body, p.contentEncoding, limits.maxDecompressedBytes, 'request.body');
  const T = loadInferenceProto().ModelInferRequest;
  const m = T.toObject(T.decode(bytes), { longs: String, bytes: Buffer }) as {
    inputs?: RawGrpcTensor[];
    raw_input_contents?: Buffer[];
  };
  const raw = m.raw_input_contents ?? [];
  return decoded.inputs.map((t, i) => {
    const c = m.inputs?.[i]?.contents;
    const text = t.datatype === 'INT64' ? c?.int64_contents : t.datatype === 'UINT64' ? c?.uint64_contents : undefined;
    return tensorOf(t, raw[i], text);
  });
}

interface JsonTensorHeader {
  parameters?: { binary_data_size?: number } | null;
}

/** REST request: validated by the V2 decoder; binary-extension tensors taken from their raw bytes. */
function restTensors(p: PayloadBody, limits: Readonly<Required<DecodeLimits>>): ShadowTensor[] {
  const body: CapturedBody = {
    body: p.body,
    size: p.body.length,
    truncated: false,
    contentType: p.contentType,
    contentEncoding: p.contentEncoding,
    headerLength: p.headerLength,
  };
  const decoded = decodeRestBody('request', body, limits);
  if (p.headerLength === undefined) return decoded.inputs.map((t) => tensorOf(t, undefined, undefined));
  const plain = decompressBody(p.body, p.contentEncoding, limits.maxDecompressedBytes, 'request.content_encoding');
  const header = JSON.parse(plain.subarray(0, p.headerLength).toString('utf8')) as { inputs: JsonTensorHeader[] };
  let offset = p.headerLength;
  return decoded.inputs.map((t, i) => {
    const size = header.inputs[i]?.parameters?.binary_data_size;
    if (typeof size !== 'number') return tensorOf(t, undefined, undefined);
    const blob = plain.subarray(offset, offset + size);
    offset += size;
    return tensorOf(t, blob, undefined);
  });
}

/**
 * The request tensors of a stored payload, bit for bit as production received them: raw contents (binary
 * extension, gRPC raw contents) are copied byte for byte, gRPC 64-bit typed contents are read as integers,
 * JSON numbers go through the V2 decoder and are narrowed to the tensor's datatype (JSON integers beyond
 * 2^53 are already rounded by any JSON parser). Throws the decoder's `decode_invalid` errors.
 */
export function payloadTensors(p: PayloadBody, limits?: DecodeLimits): ShadowTensor[] {
  const l = resolveLimits(limits);
  const proto = isProtobufCall({
    source: p.source,
    request: { contentType: p.contentType } as CapturedBody,
  });
  return proto ? grpcTensors(p, l) : restTensors(p, l);
}

/** Stored feature columns of one row. */
export interface FeatureRow {
  features_num: Record<string, number>;
  features_cat: Record<string, string>;
}

/**
 * Column names of each element of one row of `tensor` as ingest flattened it: the schema's mapped name for
 * (tensor, index), else `<tensor>` for a `[batch]` tensor and `<tensor>_<j>` otherwise.
 */
export function featureColumns(schema: ModelSchema, tensor: string, rowShape: readonly number[]): string[] {
  const width = rowShape.reduce((a, b) => a * b, 1);
  const names: string[] = [];
  for (let j = 0; j < width; j++) {
    const mapped = schema.features.find((f) => f.tensor === tensor && (f.index ?? 0) === j);
    names.push(mapped?.name ?? (rowShape.length === 0 ? tensor : `${tensor}_${j}`));
  }
  return names;
}

/**
 * Rebuilds a candidate's input tensors from stored feature rows, or returns undefined when the model's
 * inputs cannot be rebuilt: a free non-batch dimension, a BYTES or unknown datatype, or a column missing
 * from a row. `inputMap` (request tensor → ONNX input) names the tensor each input was captured as.
 */
export function rebuildFromFeatures(
  inputs: readonly OnnxValueInfo[],
  rows: readonly FeatureRow[],
  schema: ModelSchema,
  inputMap: Readonly<Record<string, string>> = {},
): ShadowTensor[] | undefined {
  const reverse = new Map(Object.entries(inputMap).map(([v2, onnx]) => [onnx, v2]));
  const out: ShadowTensor[] = [];
  for (const input of inputs) {
    if (input.datatype === undefined || input.datatype === 'BYTES') return undefined;
    const rowShape = input.shape.slice(1);
    if (rowShape.some((d) => typeof d !== 'number')) return undefined;
    const dims = rowShape as number[];
    const tensor = reverse.get(input.name) ?? input.name;
    const names = featureColumns(schema, tensor, dims);
    const values = new Float64Array(rows.length * names.length);
    for (let r = 0; r < rows.length; r++) {
      const row = rows[r] as FeatureRow;
      for (let j = 0; j < names.length; j++) {
        const v = row.features_num[names[j] as string];
        if (v === undefined) return undefined;
        values[r * names.length + j] = v;
      }
    }
    out.push({
      name: tensor,
      datatype: input.datatype,
      shape: [rows.length, ...dims],
      data: typedFromNumbers(input.datatype, values),
    });
  }
  return out;
}

/** A key grouping tensors that can be stacked along the batch dimension. */
export function batchSignature(tensors: readonly ShadowTensor[]): string {
  return tensors.map((t) => `${t.name}:${t.datatype}:${t.shape.slice(1).join('x')}`).join('|');
}

function concatData(parts: readonly ShadowTensorData[]): ShadowTensorData {
  const first = parts[0];
  if (first === undefined) return [];
  if (parts.length === 1) return first;
  if (Array.isArray(first)) return (parts as string[][]).flat();
  const total = parts.reduce((n, p) => n + p.length, 0);
  const Ctor = first.constructor as new (n: number) => Exclude<ShadowTensorData, string[]>;
  const out = new Ctor(total);
  let o = 0;
  for (const p of parts as Exclude<ShadowTensorData, string[]>[]) {
    (out as unknown as { set(a: ArrayLike<unknown>, o: number): void }).set(p, o);
    o += p.length;
  }
  return out;
}

/** Stacks calls' tensors (same {@link batchSignature}) along the batch dimension. */
export function concatBatch(calls: readonly (readonly ShadowTensor[])[]): ShadowTensor[] {
  const first = calls[0];
  if (first === undefined) throw new ModelwatchError(ErrorCodes.internal, 'concatBatch: no calls');
  return first.map((t, i) => {
    const parts = calls.map((c) => (c[i] as ShadowTensor).data);
    const rows = calls.reduce((n, c) => n + ((c[i] as ShadowTensor).shape[0] ?? 0), 0);
    return { name: t.name, datatype: t.datatype, shape: [rows, ...t.shape.slice(1)], data: concatData(parts) };
  });
}

/** Rows of a call (first dimension of its first tensor). */
export function batchRows(tensors: readonly ShadowTensor[]): number {
  return tensors[0]?.shape[0] ?? 0;
}

/** A candidate output as the V2 decoder would have produced it (numbers/strings), for flattening. */
export function toDecoded(t: ShadowTensor): DecodedTensor {
  const d = t.data;
  let values: ArrayLike<number> | string[];
  if (Array.isArray(d)) values = d;
  else if (d instanceof BigInt64Array || d instanceof BigUint64Array) values = Float64Array.from(d, Number);
  else if (t.datatype === 'FP16') {
    const out = new Float64Array(d.length);
    for (let i = 0; i < d.length; i++) out[i] = fp16Number(d[i] as number);
    values = out;
  } else values = d;
  return { name: t.name, datatype: t.datatype, shape: t.shape, values };
}

function fp16Number(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
