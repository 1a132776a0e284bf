import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import type { V2Datatype } from './datatypes.js';

/**
 * One decoded tensor. `values` holds the elements flattened row-major: numbers for numeric types
 * (BOOL as 0/1; 64-bit integers as the nearest double, so magnitudes beyond 2^53 lose precision),
 * strings for BYTES (UTF-8; elements that are not valid UTF-8 become `b64:` + base64 of the bytes).
 */
export interface DecodedTensor {
  name: string;
  datatype: V2Datatype;
  shape: number[];
  values: ArrayLike<number> | string[];
}

/** A decoded inference request (REST JSON, binary extension, or gRPC). */
export interface DecodedInferRequest {
  id?: string | undefined;
  /** gRPC only: the request names its model in the body. */
  model?: string | undefined;
  version?: string | undefined;
  inputs: DecodedTensor[];
}

/** A decoded inference response. */
export interface DecodedInferResponse {
  id?: string | undefined;
  model?: string | undefined;
  version?: string | undefined;
  outputs: DecodedTensor[];
}

/** Size limits applied while decoding; exceeding one is a `decode_invalid` error. */
export interface DecodeLimits {
  /** Largest total element count of one tensor (checked on the declared shape before allocating). @default 16777216 */
  maxElements?: number;
  /** Largest body after gzip/deflate decompression, in bytes (zip-bomb guard). @default 67108864 */
  maxDecompressedBytes?: number;
  /** Deepest JSON nesting of `[`/`{` accepted (checked on the raw bytes before `JSON.parse`). @default 64 */
  maxJsonDepth?: number;
}

/** Defaults of {@link DecodeLimits}. */
export const defaultDecodeLimits: Readonly<Required<DecodeLimits>> = Object.freeze({
  maxElements: 1 << 24,
  maxDecompressedBytes: 64 * 1024 * 1024,
  maxJsonDepth: 64,
} satisfies Required<DecodeLimits>);

const resolvedLimits = new WeakSet<object>();

/** Fills in and checks {@link DecodeLimits}. */
export function resolveLimits(limits: DecodeLimits | undefined): Readonly<Required<DecodeLimits>> {
  if (limits === undefined || limits === defaultDecodeLimits) return defaultDecodeLimits;
  // Already checked (decodeCall resolves once and hands the result down): no second copy per body.
  if (resolvedLimits.has(limits)) return limits as Readonly<Required<DecodeLimits>>;
  const r = {
    maxElements: limits.maxElements ?? defaultDecodeLimits.maxElements,
    maxDecompressedBytes: limits.maxDecompressedBytes ?? defaultDecodeLimits.maxDecompressedBytes,
    maxJsonDepth: limits.maxJsonDepth ?? defaultDecodeLimits.maxJsonDepth,
  };
  for (const [k, v] of Object.entries(r)) {
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new ModelwatchError(ErrorCodes.configInvalid, `decode limit ${k} must be a positive integer, got ${v}`, {
        field: k,
      });
    }
  }
  resolvedLimits.add(r);
  return r;
}

/** Shorthand for a `decode_invalid` error naming `field`. */
export function invalid(field: string, reason: string, cause?: unknown): ModelwatchError {
  return new ModelwatchError(ErrorCodes.decodeInvalid, `${field}: ${reason}`, { field, cause });
}

/**
 * Checks a declared shape (non-negative safe integers) and returns its element count, refusing a
 * product above `maxElements` before anything is allocated (so `[1e15, 1e15]` cannot overflow).
 */
export function checkShape(shape: unknown, field: string, maxElements: number): { shape: number[]; count: number } {
  if (!Array.isArray(shape)) throw invalid(field, 'shape must be an array of non-negative integers');
  // A zero dimension anywhere makes the count 0 whatever the other dimensions declare.
  let zero = false;
  for (let i = 0; i < shape.length; i++) {
    const d: unknown = shape[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw invalid(field, `dimension ${i} is ${JSON.stringify(d)}, not a non-negative integer`);
    }
    // Also cap single dimensions, so a zero-element shape like [1e15, 0] cannot declare a huge batch.
    if (d > maxElements) throw invalid(field, `dimension ${i} is ${d}, above the ${maxElements}-element limit`);
    if (d === 0) zero = true;
  }
  // Every element is checked: the array is the shape (a copy only when it is not a plain array).
  const dims = Object.getPrototypeOf(shape) === Array.prototype ? (shape as number[]) : Array.from(shape as number[]);
  let count = zero ? 0 : 1;
  for (let i = 0; i < dims.length && count !== 0; i++) {
    count *= dims[i] ?? 0;
    if (count > maxElements)
      throw invalid(field, `declared shape [${dims.join(', ')}] exceeds ${maxElements} elements`);
  }
  return { shape: dims, count };
}
