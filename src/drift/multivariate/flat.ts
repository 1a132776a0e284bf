import type { Rng } from './random.js';
import { check, widthOf, type Rows } from './types.js';

/** A row-major matrix of doubles: value (i, j) at `data[i * cols + j]`. What the kernels compute on. */
export interface FlatRows {
  data: Float64Array;
  rows: number;
  cols: number;
}

/** Copies `rows` (checked rectangular, at least `minRows`) into a {@link FlatRows}; missing cells become NaN. */
export function toFlat(rows: Rows, field: string, minRows = 1): FlatRows {
  const cols = widthOf(rows, field, minRows);
  const data = new Float64Array(rows.length * cols);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] ?? [];
    for (let j = 0; j < cols; j++) data[i * cols + j] = r[j] ?? Number.NaN;
  }
  return { data, rows: rows.length, cols };
}

/** Checks that both samples have the same number of columns and returns it. */
export function sameCols(reference: FlatRows, current: FlatRows): number {
  check(current.cols === reference.cols, 'current', `has ${current.cols} columns, the reference has ${reference.cols}`);
  return reference.cols;
}

/**
 * At most `max` rows of `x`, drawn with `rng` without replacement (partial Fisher–Yates over the row
 * indices) and kept in their original order; all rows, without a draw, when there are `max` or fewer.
 */
export function sampleFlatRows(x: FlatRows, max: number, rng: Rng): FlatRows {
  if (x.rows <= max) return x;
  const all = new Uint32Array(x.rows);
  for (let i = 0; i < all.length; i++) all[i] = i;
  for (let i = 0; i < max; i++) {
    const j = i + Math.floor(rng() * (all.length - i));
    const t = all[i] as number;
    all[i] = all[j] as number;
    all[j] = t;
  }
  const pick = all.subarray(0, max).sort();
  const data = new Float64Array(max * x.cols);
  for (let k = 0; k < max; k++) {
    const from = (pick[k] as number) * x.cols;
    data.set(x.data.subarray(from, from + x.cols), k * x.cols);
  }
  return { data, rows: max, cols: x.cols };
}

/** Column `j` of `x` as a new array. */
export function column(x: FlatRows, j: number): Float64Array {
  const out = new Float64Array(x.rows);
  for (let i = 0; i < x.rows; i++) out[i] = x.data[i * x.cols + j] as number;
  return out;
}

/** The k-th smallest value (0-based) of `a`, reordering `a` in place (Hoare's quickselect). */
export function selectInPlace(a: Float64Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    // Median of three as pivot: sorted or constant input stays O(n).
    const mid = (lo + hi) >>> 1;
    const x = a[lo] as number;
    const y = a[mid] as number;
    const z = a[hi] as number;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while ((a[i] as number) < pivot) i++;
      while ((a[j] as number) > pivot) j--;
      if (i <= j) {
        const t = a[i] as number;
        a[i] = a[j] as number;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k] as number;
  }
  return a[k] as number;
}
