/**
 * The two sides of a small report, read without the engine: each report column's values exactly as the
 * engine path's one read per side gives them (`readAll` over `fileSample`: numeric columns
 * `ifNull(CAST(x AS Nullable(Float64)), nan)`, categorical ones `ifNull(CAST(x AS Nullable(String)), '')`
 * counted in row order), and the multivariate section's row positions as `sampleRowsAndPositions` picks them.
 */
import type { SideRead } from '../exact/read.js';
import { sampleColumn } from '../files.js';
import type { ReportColumn } from '../report/columns.js';
import type { SmallColumn, SmallParquet } from './parquet.js';

/** Which reader `modelwatch report` uses: `auto` (small Parquet pairs in JS, else the engine) or `engine` (always). */
export const ReportReaders = ['auto', 'engine'] as const;
/** One of {@link ReportReaders}. */
export type ReportReader = (typeof ReportReaders)[number];

/** A report column whose values this reader cannot give exactly as the engine does. */
export class Unsupported {
  constructor(readonly reason: string) {}
}

/**
 * The {@link SideRead} of one side over the report's `columns` (keyed by {@link sampleColumn}), or
 * {@link Unsupported} when a column's cast is not mirrored here: a float column read as categorical
 * (ClickHouse's float-to-text formatting is not JavaScript's).
 */
export function sideRead(file: SmallParquet, columns: readonly ReportColumn[]): SideRead | Unsupported {
  const byName = new Map(file.columns.map((c) => [c.name, c]));
  const values = new Map<string, Float64Array>();
  const counts = new Map<string, Map<string, number>>();
  for (let i = 0; i < columns.length; i++) {
    const rc = columns[i]!;
    const col = byName.get(rc.name);
    if (col === undefined) return new Unsupported(`column ${rc.name} missing`);
    if (rc.kind === 'numeric') {
      const numbers = asNumbers(col, file.rows);
      if (numbers === undefined) return new Unsupported(`column ${rc.name}: ${col.type} as a number`);
      values.set(sampleColumn(i), numbers);
    } else {
      const m = asCounts(col, file.rows);
      if (m === undefined) return new Unsupported(`column ${rc.name}: ${col.type} as text`);
      counts.set(sampleColumn(i), m);
    }
  }
  return { rows: file.rows, values, counts };
}

/** `ifNull(CAST(x AS Nullable(Float64)), nan)`: NULL → NaN; integers rounded to the nearest double (ties to even, as C++'s conversion). */
function asNumbers(col: SmallColumn, rows: number): Float64Array | undefined {
  if (col.family !== 'float' && col.family !== 'int') return undefined;
  const v = col.values;
  // Required float columns come as typed arrays (no NULLs): copied (the engine sorts its arrays in place).
  if (v instanceof Float64Array || v instanceof Float32Array) return Float64Array.from(v);
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const x = v[r];
    out[r] = x === null || x === undefined ? Number.NaN : Number(x);
  }
  return out;
}

/**
 * `ifNull(CAST(x AS Nullable(String)), '')` counted in row order (first occurrence first, as the engine
 * path's map): strings as they are, integers in decimal, `Bool` as `true`/`false`, NULL as ''.
 */
function asCounts(col: SmallColumn, rows: number): Map<string, number> | undefined {
  if (col.family === 'float') return undefined;
  const m = new Map<string, number>();
  const v = col.values;
  for (let r = 0; r < rows; r++) {
    const x = v[r];
    const s =
      x === null || x === undefined
        ? ''
        : typeof x === 'string'
          ? x
          : typeof x === 'boolean'
            ? x
              ? 'true'
              : 'false'
            : String(x);
    m.set(s, (m.get(s) ?? 0) + 1);
  }
  return m;
}

const MASK64 = (1n << 64n) - 1n;

/**
 * ClickHouse's `cityHash64` of one `UInt64` argument: for integers it is `intHash64(x ^ 0x4CF2D2BAAE6DA887)`
 * (the MurmurHash3 64-bit finalizer), not CityHash over the bytes.
 */
export function cityHash64OfUInt64(x: bigint): bigint {
  x ^= 0x4cf2d2baae6da887n;
  x ^= x >> 33n;
  x = (x * 0xff51afd7ed558ccdn) & MASK64;
  x ^= x >> 33n;
  x = (x * 0xc4ceb9fe1a85ec53n) & MASK64;
  x ^= x >> 33n;
  return x;
}

/**
 * The multivariate section's row positions over `rows` rows, as `sampleRowsAndPositions` gives them: the
 * `maxRows` positions with the smallest `cityHash64(position)`, in that order.
 */
export function rowPositions(rows: number, maxRows: number): Uint32Array {
  if (!Number.isSafeInteger(maxRows) || maxRows < 0) throw new RangeError('maxRows must be a non-negative integer');
  const hashes = new BigUint64Array(rows);
  for (let p = 0; p < rows; p++) hashes[p] = cityHash64OfUInt64(BigInt(p));
  // Compare as two 32-bit halves (little-endian view): numbers, not BigInts, in the sort.
  const halves = new Uint32Array(hashes.buffer);
  const order = Array.from({ length: rows }, (_, p) => p);
  order.sort((a, b) => halves[2 * a + 1]! - halves[2 * b + 1]! || halves[2 * a]! - halves[2 * b]!);
  return Uint32Array.from(order.slice(0, maxRows));
}
