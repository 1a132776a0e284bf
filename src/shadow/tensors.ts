/**
 * Tensors as the shadow runner exchanges them, and the mapping of V2 request tensors onto the inputs
 * of an ONNX model (by name, or through an explicit map), with precise errors on a mismatch.
 */
import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import type { V2Datatype } from '../protocol/index.js';

/** Element storage of a {@link ShadowTensor}, one typed array kind per datatype (see {@link DATATYPE_ARRAY}). */
export type ShadowTensorData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array
  | string[];

/**
 * A tensor with its elements stored faithfully: INT64/UINT64 as `BigInt64Array`/`BigUint64Array`
 * (no loss beyond 2^53), FP16 as the raw IEEE half bits in a `Uint16Array`, BOOL as 0/1 bytes,
 * BYTES as strings. Row-major, `data.length` = product of `shape`.
 */
export interface ShadowTensor {
  name: string;
  datatype: V2Datatype;
  shape: number[];
  data: ShadowTensorData;
}

/** ONNX Runtime's tensor type names, by V2 datatype (BF16 has none in onnxruntime-node). */
export const ORT_TYPE_OF: Readonly<Partial<Record<V2Datatype, string>>> = {
  BOOL: 'bool',
  UINT8: 'uint8',
  UINT16: 'uint16',
  UINT32: 'uint32',
  UINT64: 'uint64',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FP16: 'float16',
  FP32: 'float32',
  FP64: 'float64',
  BYTES: 'string',
};

const V2_OF_ORT = new Map<string, V2Datatype>(Object.entries(ORT_TYPE_OF).map(([v2, ort]) => [ort, v2 as V2Datatype]));

/** The V2 datatype of an ONNX Runtime tensor type, or undefined when V2 has none. */
export function v2DatatypeOfOrt(ortType: string): V2Datatype | undefined {
  return V2_OF_ORT.get(ortType);
}

/** The typed-array constructor name expected for each datatype's `data` (BYTES: a string array). */
export const DATATYPE_ARRAY: Readonly<Record<V2Datatype, string>> = {
  BOOL: 'Uint8Array',
  UINT8: 'Uint8Array',
  UINT16: 'Uint16Array',
  UINT32: 'Uint32Array',
  UINT64: 'BigUint64Array',
  INT8: 'Int8Array',
  INT16: 'Int16Array',
  INT32: 'Int32Array',
  INT64: 'BigInt64Array',
  FP16: 'Uint16Array',
  BF16: 'Uint16Array',
  FP32: 'Float32Array',
  FP64: 'Float64Array',
  BYTES: 'Array',
};

/** One input or output of a loaded ONNX model, as its session reports it. */
export interface OnnxValueInfo {
  name: string;
  /** ONNX Runtime's type name (`float32`, `int64`, …); undefined for a non-tensor value. */
  ortType: string | undefined;
  /** The matching V2 datatype, when there is one. */
  datatype: V2Datatype | undefined;
  /** Dimensions: a number when fixed, the symbolic name (e.g. `N`) when free. */
  shape: (number | string)[];
}

/** A tensor ready for the worker: the ONNX input it feeds, ONNX Runtime's type name, dims and data. */
export interface OnnxFeed {
  name: string;
  ortType: string;
  dims: number[];
  data: ShadowTensorData;
}

/** `[N,4]`, `[1,5]`: shapes in messages. */
export function formatShape(shape: readonly (number | string)[]): string {
  return `[${shape.join(',')}]`;
}

function describe(t: ShadowTensor): string {
  return `${t.name} (${t.datatype} ${formatShape(t.shape)})`;
}

function mismatch(field: string, message: string): ModelwatchError {
  return new ModelwatchError(ErrorCodes.badRequest, message, { field });
}

/**
 * Checks an input map (V2 tensor name → ONNX input name) against a model's inputs, at load time:
 * every target must be an input of the model, and no two request tensors may feed the same input.
 * Returns the reverse map (ONNX input → V2 tensor).
 */
export function resolveInputMap(
  inputs: readonly OnnxValueInfo[],
  inputMap: Readonly<Record<string, string>> = {},
): Map<string, string> {
  const names = new Set(inputs.map((i) => i.name));
  const reverse = new Map<string, string>();
  for (const [v2Name, onnxName] of Object.entries(inputMap)) {
    if (!names.has(onnxName)) {
      throw new ModelwatchError(
        ErrorCodes.configInvalid,
        `input map: tensor '${v2Name}' is mapped to '${onnxName}', which is not an input of the model (inputs: ${[...names].join(', ')})`,
        { field: `inputs.${v2Name}` },
      );
    }
    const prior = reverse.get(onnxName);
    if (prior !== undefined) {
      throw new ModelwatchError(
        ErrorCodes.configInvalid,
        `input map: tensors '${prior}' and '${v2Name}' both map to model input '${onnxName}'`,
        {
          field: `inputs.${v2Name}`,
        },
      );
    }
    reverse.set(onnxName, v2Name);
  }
  return reverse;
}

/**
 * Maps request tensors onto a model's inputs. Each ONNX input takes the tensor named by the reverse
 * input map, else the tensor of the same name; tensors no input asks for are ignored. A missing
 * tensor, or a datatype, shape or element count that does not match the model's metadata, is a
 * `bad_request` {@link ModelwatchError} naming the tensor, what the model expects and what it received.
 */
export function mapInputs(
  inputs: readonly OnnxValueInfo[],
  tensors: readonly ShadowTensor[],
  reverseMap: ReadonlyMap<string, string> = new Map(),
): OnnxFeed[] {
  const byName = new Map<string, ShadowTensor>();
  for (const t of tensors) byName.set(t.name, t);
  const feeds: OnnxFeed[] = [];
  for (const input of inputs) {
    const source = reverseMap.get(input.name) ?? input.name;
    const expected = `${input.datatype ?? input.ortType ?? 'non-tensor'} ${formatShape(input.shape)}`;
    const via =
      source === input.name ? `input '${input.name}'` : `tensor '${source}' (mapped to model input '${input.name}')`;
    const t = byName.get(source);
    if (t === undefined) {
      const received = tensors.length === 0 ? 'no tensors' : `tensors ${tensors.map(describe).join(', ')}`;
      throw mismatch(
        `inputs.${source}`,
        `${via}: the model expects ${expected}; received ${received}, none named '${source}'`,
      );
    }
    if (input.ortType === undefined || input.datatype === undefined) {
      throw mismatch(
        `inputs.${source}`,
        `${via}: model input '${input.name}' is not a tensor of a V2 datatype (${input.ortType ?? 'non-tensor'})`,
      );
    }
    if (t.datatype !== input.datatype) {
      throw mismatch(
        `inputs.${source}`,
        `${via}: datatype mismatch: the model expects ${input.datatype}, received ${t.datatype}`,
      );
    }
    const badShape =
      t.shape.length !== input.shape.length ||
      input.shape.some((d, i) => typeof d === 'number' && d !== t.shape[i]) ||
      t.shape.some((d) => !Number.isSafeInteger(d) || d < 0);
    if (badShape) {
      throw mismatch(
        `inputs.${source}`,
        `${via}: shape mismatch: the model expects ${formatShape(input.shape)}, received ${formatShape(t.shape)}`,
      );
    }
    const count = t.shape.reduce((a, b) => a * b, 1);
    const arrayName = DATATYPE_ARRAY[t.datatype];
    const actualArray = Array.isArray(t.data) ? 'Array' : t.data.constructor.name;
    if (actualArray !== arrayName) {
      throw mismatch(
        `inputs.${source}`,
        `${via}: ${t.datatype} data must be a ${arrayName}, received a ${actualArray}`,
      );
    }
    if (t.data.length !== count) {
      throw mismatch(
        `inputs.${source}`,
        `${via}: shape ${formatShape(t.shape)} holds ${count} elements, received ${t.data.length}`,
      );
    }
    feeds.push({ name: input.name, ortType: input.ortType, dims: [...t.shape], data: t.data });
  }
  return feeds;
}
