/**
 * V2 (Open Inference Protocol) tensor datatypes and their per-element rules.
 */

/** The datatypes of the V2 protocol. `STRING` is Triton's alias of `BYTES` and is normalised to it. */
export const V2Datatypes = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'BF16',
  'FP32',
  'FP64',
  'BYTES',
] as const;

/** One of {@link V2Datatypes}. */
export type V2Datatype = (typeof V2Datatypes)[number];

/** Byte size of one element in the binary layouts (0 for BYTES: variable, length-prefixed). */
export const DATATYPE_ITEM_SIZE: Readonly<Record<V2Datatype, number>> = {
  BOOL: 1,
  UINT8: 1,
  UINT16: 2,
  UINT32: 4,
  UINT64: 8,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  FP16: 2,
  BF16: 2,
  FP32: 4,
  FP64: 8,
  BYTES: 0,
};

/** Inclusive integer ranges; 64-bit bounds are the nearest doubles (JSON numbers are doubles anyway). */
export const INTEGER_RANGE: Readonly<Partial<Record<V2Datatype, readonly [number, number]>>> = {
  UINT8: [0, 0xff],
  UINT16: [0, 0xffff],
  UINT32: [0, 0xffffffff],
  UINT64: [0, 2 ** 64 - 1],
  INT8: [-0x80, 0x7f],
  INT16: [-0x8000, 0x7fff],
  INT32: [-0x80000000, 0x7fffffff],
  INT64: [-(2 ** 63), 2 ** 63 - 1],
};

/**
 * Magnitudes at which a JSON number would round to ±Infinity in the narrower float types (the
 * round-to-nearest boundary: max finite + half an ulp), so such values are rejected, not stored.
 */
export const FLOAT_OVERFLOW: Readonly<Partial<Record<V2Datatype, number>>> = {
  FP16: 65520,
  BF16: 2 ** 128 - 2 ** 119,
  FP32: 2 ** 128 - 2 ** 103,
};

const byName = new Map<string, V2Datatype>(V2Datatypes.map((d) => [d, d]));
byName.set('STRING', 'BYTES');

/** The canonical datatype for a wire name (`STRING` → `BYTES`), or undefined when unknown. */
export function parseDatatype(name: unknown): V2Datatype | undefined {
  return typeof name === 'string' ? byName.get(name) : undefined;
}

/** True for the datatypes whose elements are strings after decoding. */
export function isBytesType(d: V2Datatype): boolean {
  return d === 'BYTES';
}
