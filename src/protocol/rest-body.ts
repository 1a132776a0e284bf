import { FLOAT_OVERFLOW, INTEGER_RANGE, parseDatatype, type V2Datatype } from './datatypes.js';
import { decodeRaw } from './raw.js';
import {
  checkShape,
  invalid,
  type DecodedInferRequest,
  type DecodedInferResponse,
  type DecodedTensor,
} from './tensor.js';

/** Which side of a call a body belongs to; decides the field names in errors. */
export type BodySide = 'request' | 'response';

/** Field names used in errors for one side. */
export interface SideFields {
  body: string;
  headerLength: string;
  contentEncoding: string;
  tensors: 'inputs' | 'outputs';
}

/** Error field names per side (`header_length` is the request's `Inference-Header-Content-Length`). */
export const SIDE_FIELDS: Readonly<Record<BodySide, SideFields>> = {
  request: {
    body: 'request.body',
    headerLength: 'header_length',
    contentEncoding: 'request.content_encoding',
    tensors: 'inputs',
  },
  response: {
    body: 'response.body',
    headerLength: 'response.header_length',
    contentEncoding: 'response.content_encoding',
    tensors: 'outputs',
  },
};

const OPEN_BRACKET = 0x5b;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACKET = 0x5d;
const CLOSE_BRACE = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Returns the deepest `[`/`{` nesting in JSON bytes, stopping as soon as it passes `limit`.
 * `JSON.parse` recurses per level and overflows the stack on ~100k-deep input; this scan is flat.
 */
export function jsonNestingDepth(bytes: Uint8Array, limit: number): number {
  // One tight pass: bytes below '[' other than '"' (digits, ',', '.', ':', spaces) are skipped at
  // once, and a string is skipped by an inner loop, so the common numeric body costs one compare a byte.
  const n = bytes.length;
  let depth = 0;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const c = bytes[i] as number;
    if (c < OPEN_BRACKET) {
      if (c !== QUOTE) continue;
      for (i++; i < n; i++) {
        const d = bytes[i] as number;
        if (d === QUOTE) break;
        if (d === BACKSLASH) i++;
      }
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      depth--;
    }
  }
  return max;
}

/** Parses JSON bytes after the nesting pre-scan; any failure is `decode_invalid` on `field`. */
export function parseJsonBytes(bytes: Buffer, maxDepth: number, field: string): unknown {
  // A body of n bytes nests at most n deep: short bodies need no scan.
  if (bytes.length > maxDepth && jsonNestingDepth(bytes, maxDepth) > maxDepth)
    throw invalid(field, `JSON nesting deeper than ${maxDepth} levels`);
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch (err: unknown) {
    throw invalid(field, `not valid JSON: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optString(obj: Record<string, unknown>, key: string, field: string): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalid(field, `${key} must be a string`);
  return v;
}

/**
 * Reads JSON `data` (flat or nested, row-major) into `count` checked elements of `datatype`. A flat array of
 * in-range numbers is returned as it is (not copied).
 */
export function jsonTensorValues(
  data: unknown,
  datatype: V2Datatype,
  count: number,
  field: string,
): ArrayLike<number> | string[] {
  if (!Array.isArray(data)) throw invalid(field, 'data must be an array (flat or nested, row-major)');
  if (datatype !== 'BYTES' && datatype !== 'BOOL' && data.length === count) {
    const fast = flatNumbers(data, datatype, count);
    if (fast !== undefined) return fast;
  }
  const strings = datatype === 'BYTES';
  const st: ValueWalk = {
    out: strings ? new Array<string>(count) : new Float64Array(count),
    n: 0,
    count,
    datatype,
    field,
    range: INTEGER_RANGE[datatype],
    overflow: FLOAT_OVERFLOW[datatype] ?? Infinity,
    levelLength: [],
    leafDepth: -1,
  };
  // Nested data must be rectangular (every array at one depth equally long, all scalars at one
  // depth): a ragged array whose element count happens to match the shape is still malformed.
  // Depth is bounded by the pre-scan in parseJsonBytes, so this recursion is bounded too.
  walkValues(st, data, 0);
  if (st.n !== count) throw invalid(field, `${st.n} elements where the shape declares ${count}`);
  return st.out;
}

/**
 * The common case: a flat array of in-range numbers, returned as it is (checked, not copied: the parsed
 * array is the body's own and nothing else holds it). Returns undefined at the first element that is not
 * (nested, wrong type, out of range), and the general walk then reports it exactly as before.
 */
function flatNumbers(data: unknown[], datatype: V2Datatype, count: number): number[] | undefined {
  const range = INTEGER_RANGE[datatype];
  if (range === undefined) {
    const overflow = FLOAT_OVERFLOW[datatype] ?? Infinity;
    for (let i = 0; i < count; i++) {
      const v = data[i];
      if (typeof v !== 'number' || v >= overflow || v <= -overflow) return undefined;
    }
  } else {
    const lo = range[0];
    const hi = range[1];
    for (let i = 0; i < count; i++) {
      const v = data[i];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) return undefined;
    }
  }
  return data as number[];
}

/** State of the general (nested or failing) walk of {@link jsonTensorValues}. */
interface ValueWalk {
  out: Float64Array | string[];
  n: number;
  count: number;
  datatype: V2Datatype;
  field: string;
  range: readonly [number, number] | undefined;
  overflow: number;
  levelLength: number[];
  leafDepth: number;
}

function walkValues(st: ValueWalk, arr: unknown[], depth: number): void {
  const seen = st.levelLength[depth];
  if (seen === undefined) st.levelLength[depth] = arr.length;
  else if (seen !== arr.length) {
    throw invalid(st.field, `ragged nesting: an array at depth ${depth} has ${arr.length} elements, another ${seen}`);
  }
  for (const v of arr) {
    if (Array.isArray(v)) {
      walkValues(st, v, depth + 1);
    } else {
      if (st.leafDepth !== depth) {
        if (st.leafDepth !== -1)
          throw invalid(st.field, `ragged nesting: scalars at depths ${st.leafDepth} and ${depth}`);
        st.leafDepth = depth;
      }
      putValue(st, v);
    }
  }
}

function putValue(st: ValueWalk, v: unknown): void {
  const { field, n, datatype } = st;
  if (n >= st.count) throw invalid(field, `more elements than the shape's ${st.count}`);
  if (datatype === 'BYTES') {
    if (typeof v !== 'string') throw invalid(field, `element ${n} is ${describe(v)}, not a string (BYTES)`);
    (st.out as string[])[st.n++] = v;
    return;
  }
  let x: number;
  if (datatype === 'BOOL') {
    if (typeof v !== 'boolean') throw invalid(field, `element ${n} is ${describe(v)}, not true/false (BOOL)`);
    x = v ? 1 : 0;
  } else {
    if (typeof v !== 'number') throw invalid(field, `element ${n} is ${describe(v)}, not a number (${datatype})`);
    const range = st.range;
    if (range !== undefined) {
      if (!Number.isInteger(v)) throw invalid(field, `element ${n} is ${v}, not an integer (${datatype})`);
      if (v < range[0] || v > range[1]) {
        throw invalid(field, `element ${n} is ${v}, outside the ${datatype} range [${range[0]}, ${range[1]}]`);
      }
    } else if (v >= st.overflow || v <= -st.overflow) {
      throw invalid(field, `element ${n} is ${v}, which overflows ${datatype}`);
    }
    x = v;
  }
  (st.out as Float64Array)[st.n++] = x;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return typeof v;
}

/** A cursor over the binary part of a Triton binary-extension body. */
interface BinaryPart {
  bytes: Buffer;
  offset: number;
}

/** The error field names of one tensor (`inputs[2]`, `inputs[2].shape`, …), made once per list position. */
interface TensorFields {
  tensor: string;
  shape: string;
  data: string;
}
const FIELD_CACHE_SIZE = 64;
const tensorFieldCache: Record<'inputs' | 'outputs', TensorFields[]> = { inputs: [], outputs: [] };

function tensorFields(key: 'inputs' | 'outputs', i: number): TensorFields {
  const cached = tensorFieldCache[key][i];
  if (cached !== undefined) return cached;
  const tensor = `${key}[${i}]`;
  const f: TensorFields = { tensor, shape: `${tensor}.shape`, data: `${tensor}.data` };
  if (i < FIELD_CACHE_SIZE) tensorFieldCache[key][i] = f;
  return f;
}

function readTensor(
  entry: unknown,
  fields: TensorFields,
  binary: BinaryPart | undefined,
  maxElements: number,
): DecodedTensor {
  const field = fields.tensor;
  if (!isObject(entry)) throw invalid(field, 'must be an object {name, shape, datatype, data}');
  const name = entry.name;
  if (typeof name !== 'string' || name === '') throw invalid(`${field}.name`, 'must be a non-empty string');
  const datatype = parseDatatype(entry.datatype);
  if (datatype === undefined) throw invalid(`${field}.datatype`, `unknown datatype ${describe(entry.datatype)}`);
  const { shape, count } = checkShape(entry.shape, fields.shape, maxElements);
  const params = entry.parameters;
  if (params !== undefined && params !== null && !isObject(params)) {
    throw invalid(`${field}.parameters`, 'must be an object');
  }
  const sizeRaw = isObject(params) ? params.binary_data_size : undefined;
  if (sizeRaw === undefined || sizeRaw === null) {
    if (entry.data === undefined) throw invalid(fields.data, 'missing (and no parameters.binary_data_size)');
    return { name, datatype, shape, values: jsonTensorValues(entry.data, datatype, count, fields.data) };
  }
  const sizeField = `${field}.parameters.binary_data_size`;
  if (typeof sizeRaw !== 'number' || !Number.isSafeInteger(sizeRaw) || sizeRaw < 0) {
    throw invalid(sizeField, `${describe(sizeRaw)} is not a non-negative integer`);
  }
  if (binary === undefined)
    throw invalid(sizeField, 'binary data declared but the body has no binary part (no header length)');
  if (entry.data !== undefined) throw invalid(fields.data, 'present although the tensor is sent as binary data');
  const left = binary.bytes.length - binary.offset;
  if (sizeRaw > left) throw invalid(sizeField, `${sizeRaw} bytes run past the end of the body (${left} left)`);
  const blob = binary.bytes.subarray(binary.offset, binary.offset + sizeRaw);
  binary.offset += sizeRaw;
  return { name, datatype, shape, values: decodeRaw(datatype, blob, count, sizeField) };
}

function splitBody(
  body: Buffer,
  headerLength: number | undefined,
  fields: SideFields,
  maxDepth: number,
): { json: unknown; binary: BinaryPart | undefined } {
  if (headerLength === undefined) return { json: parseJsonBytes(body, maxDepth, fields.body), binary: undefined };
  if (!Number.isSafeInteger(headerLength) || headerLength < 0) {
    throw invalid(fields.headerLength, `${headerLength} is not a non-negative integer`);
  }
  if (headerLength > body.length) {
    throw invalid(fields.headerLength, `${headerLength} runs past the end of the ${body.length}-byte body`);
  }
  return {
    json: parseJsonBytes(body.subarray(0, headerLength), maxDepth, fields.body),
    binary: { bytes: body.subarray(headerLength), offset: 0 },
  };
}

function readTensorList(
  list: unknown,
  fields: SideFields,
  binary: BinaryPart | undefined,
  maxElements: number,
): DecodedTensor[] {
  const key = fields.tensors;
  if (!Array.isArray(list)) throw invalid(key, 'must be an array of tensors');
  const tensors = new Array<DecodedTensor>(list.length);
  for (let i = 0; i < list.length; i++) {
    tensors[i] = readTensor(list[i] as unknown, tensorFields(key, i), binary, maxElements);
  }
  if (binary !== undefined && binary.offset !== binary.bytes.length) {
    throw invalid(
      fields.headerLength,
      `${binary.bytes.length - binary.offset} bytes after the JSON header are not claimed by any binary_data_size`,
    );
  }
  return tensors;
}

/** Options of the REST body decoders (after decompression). */
export interface RestBodyOptions {
  /** Triton `Inference-Header-Content-Length`: the body is JSON header + binary blobs. */
  headerLength?: number | undefined;
  maxElements: number;
  maxJsonDepth: number;
}

/** Decodes a V2 REST inference request body (JSON, or Triton binary extension with `headerLength`). */
export function decodeRestRequest(body: Buffer, opts: RestBodyOptions): DecodedInferRequest {
  const fields = SIDE_FIELDS.request;
  const { json, binary } = splitBody(body, opts.headerLength, fields, opts.maxJsonDepth);
  if (!isObject(json)) throw invalid(fields.body, 'must be a JSON object {inputs: [...]}');
  if (json.inputs === undefined) throw invalid('inputs', 'missing');
  const inputs = readTensorList(json.inputs, fields, binary, opts.maxElements);
  if (inputs.length === 0) throw invalid('inputs', 'empty: a request needs at least one input tensor');
  return { id: optString(json, 'id', 'id'), inputs };
}

/**
 * Decodes a V2 REST inference response body. Returns `undefined` for an error body
 * (`{"error": "..."}`) or an empty body: such a call has no outputs.
 */
export function decodeRestResponse(body: Buffer, opts: RestBodyOptions): DecodedInferResponse | undefined {
  if (body.length === 0) return undefined;
  const fields = SIDE_FIELDS.response;
  const { json, binary } = splitBody(body, opts.headerLength, fields, opts.maxJsonDepth);
  if (!isObject(json)) throw invalid(fields.body, 'must be a JSON object {model_name, outputs: [...]}');
  if (json.error !== undefined && json.outputs === undefined) return undefined;
  if (json.outputs === undefined) throw invalid('outputs', 'missing');
  return {
    id: optString(json, 'id', 'response.id'),
    model: optString(json, 'model_name', 'response.model_name'),
    version: optString(json, 'model_version', 'response.model_version'),
    outputs: readTensorList(json.outputs, fields, binary, opts.maxElements),
  };
}
