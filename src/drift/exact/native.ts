/**
 * Decoder of ClickHouse's `Native` output format (as the HTTP interface and chdb return it: blocks of
 * `varuint columns, varuint rows`, then per column `name`, `type` and the column data, without block info)
 * for the few types the exact drift engine reads: fixed-size numbers, `String`, `Array(Float64)` and
 * `Array(String)`.
 * Numbers are copied into one typed array per column across all blocks (two passes: sizes, then copies),
 * so a 1M-row Float64 column costs one allocation and one memcpy per block.
 */
import { ErrorCodes, ModelwatchError } from '../../common/errors.js';
import type { BinaryResultFile } from '../../store/port.js';

/** A decoded column: typed array for numbers, string array for `String`, values + offsets for arrays. */
export type NativeColumn =
  | { type: 'Float64'; values: Float64Array }
  | { type: 'UInt64' | 'Int64' | 'UInt32' | 'UInt16' | 'UInt8' | 'Int32'; values: Float64Array }
  | { type: 'String'; values: string[] }
  | {
      type: 'Array(Float64)';
      /** The values of every row (empty with {@link DecodeOptions.arraysInPlace}). */
      values: Float64Array;
      offsets: Float64Array;
      /**
       * With {@link DecodeOptions.arraysInPlace}: where row r's first value lies in `buffer` (a byte offset, the
       * values little-endian), read with `buffer.getFloat64(starts[r] + 8 * i, true)`.
       */
      inPlace?: { buffer: DataView; starts: Float64Array };
    }
  /** Row r's strings are `values[offsets[r - 1] .. offsets[r])` (from 0 for the first row). */
  | { type: 'Array(String)'; values: string[]; offsets: Float64Array };

/** A decoded result: total rows and columns by name (in result order). */
export interface NativeResult {
  rows: number;
  columns: Map<string, NativeColumn>;
}

const FIXED: Record<string, number> = {
  Float64: 8,
  UInt64: 8,
  Int64: 8,
  UInt32: 4,
  Int32: 4,
  UInt16: 2,
  UInt8: 1,
};

function bad(message: string): ModelwatchError {
  return new ModelwatchError(ErrorCodes.internal, `Native decode: ${message}`);
}

class Reader {
  pos = 0;
  private readonly decoder = new TextDecoder();
  constructor(readonly buf: Uint8Array) {}

  varuint(): number {
    let x = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.buf.length) throw bad('truncated varuint');
      const b = this.buf[this.pos++]!;
      x += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return x;
      shift += 7;
    }
  }

  string(): string {
    const len = this.varuint();
    if (this.pos + len > this.buf.length) throw bad('truncated string');
    const s = this.decoder.decode(this.buf.subarray(this.pos, this.pos + len));
    this.pos += len;
    return s;
  }

  skip(bytes: number): void {
    if (this.pos + bytes > this.buf.length) throw bad('truncated column');
    this.pos += bytes;
  }

  take(n: number): Uint8Array {
    this.skip(n);
    return this.buf.subarray(this.pos - n, this.pos);
  }
}

/** What the block walk of {@link walkBlocks} reads through: a buffer ({@link Reader}) or a file ({@link FileCursor}). */
interface BlockCursor {
  readonly pos: number;
  varuint(): number;
  string(): string;
  skip(bytes: number): void;
  /** The next `n` bytes (a view, valid until the next call). */
  take(n: number): Uint8Array;
}

interface Piece {
  offset: number;
  rows: number;
  /** For Array(Float64): values in this block, and each row's end among them (`offset` is the first value). */
  inner?: number;
  ends?: Float64Array;
}

interface Plan {
  name: string;
  type: string;
  pieces: Piece[];
}

function readUint64(view: DataView, off: number): number {
  return view.getUint32(off, true) + view.getUint32(off + 4, true) * 2 ** 32;
}

/** Converts `rows` fixed-size numbers of `type` (not Float64) at byte `off` of `view` into `out` from `at`. */
function convertFixed(type: string, view: DataView, off: number, rows: number, out: Float64Array, at: number): void {
  for (let i = 0; i < rows; i++) {
    let v: number;
    switch (type) {
      case 'UInt64':
        v = readUint64(view, off + 8 * i);
        break;
      case 'Int64':
        v = Number(view.getBigInt64(off + 8 * i, true));
        break;
      case 'UInt32':
        v = view.getUint32(off + 4 * i, true);
        break;
      case 'Int32':
        v = view.getInt32(off + 4 * i, true);
        break;
      case 'UInt16':
        v = view.getUint16(off + 2 * i, true);
        break;
      default:
        v = view.getUint8(off + i);
    }
    out[at + i] = v;
  }
}

/** Options of {@link decodeNative}. */
export interface DecodeOptions {
  /** Put the values of `Array(Float64)` columns in a `SharedArrayBuffer` (workers read them without a copy). @default false */
  sharedArrays?: boolean;
  /** Leave the values of `Array(Float64)` columns in the input buffer (no copy): see `inPlace`. @default false */
  arraysInPlace?: boolean;
}

/**
 * The plan of column `c` of a block, its name and type read from `r`: made at the column's first block; a
 * column whose name or type changes between blocks is an error.
 */
function columnPlan(plans: Plan[], c: number, r: { string(): string }): Plan {
  const name = r.string();
  const type = r.string();
  const plan = plans[c];
  if (plan === undefined) return (plans[c] = { name, type, pieces: [] });
  if (plan.name !== name || plan.type !== type) throw bad(`column ${c} changed between blocks`);
  return plan;
}

/** `map`'s value for `key`, made by `make` on first use. */
function entry<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}

/** What pass 1 of a decode found: where each column's data is, the row count, and the strings (decoded). */
interface Walk {
  plans: Plan[];
  rows: number;
  strings: Map<string, string[]>;
  stringArrays: Map<string, { values: string[]; offsets: number[] }>;
}

/** A little-endian view of `bytes`. */
const viewOf = (bytes: Uint8Array): DataView => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * Pass 1 of a decode: walks the blocks of a `Native` result of `size` bytes, remembers where each column's data
 * is and decodes strings. Unsupported column types are an internal error naming the type.
 */
function walkBlocks(r: BlockCursor, size: number): Walk {
  const plans: Plan[] = [];
  let rows = 0;
  const strings = new Map<string, string[]>();
  const stringArrays = new Map<string, { values: string[]; offsets: number[] }>();
  while (r.pos < size) {
    const ncols = r.varuint();
    const nrows = r.varuint();
    for (let c = 0; c < ncols; c++) {
      const plan = columnPlan(plans, c, r);
      const { name, type } = plan;
      const width = FIXED[type];
      if (width !== undefined) {
        plan.pieces.push({ offset: r.pos, rows: nrows });
        r.skip(width * nrows);
      } else if (type === 'String') {
        const list = entry(strings, name, () => []);
        for (let i = 0; i < nrows; i++) list.push(r.string());
      } else if (type === 'Array(Float64)') {
        const view = viewOf(r.take(8 * nrows));
        const ends = new Float64Array(nrows);
        for (let i = 0; i < nrows; i++) ends[i] = readUint64(view, 8 * i);
        const inner = nrows === 0 ? 0 : ends[nrows - 1]!;
        plan.pieces.push({ offset: r.pos, rows: nrows, inner, ends });
        r.skip(8 * inner);
      } else if (type === 'Array(String)') {
        const list = entry(stringArrays, name, () => ({ values: [], offsets: [] }));
        const view = viewOf(r.take(8 * nrows));
        const base = list.values.length;
        for (let i = 0; i < nrows; i++) list.offsets.push(base + readUint64(view, 8 * i));
        const inner = nrows === 0 ? 0 : readUint64(view, 8 * (nrows - 1));
        for (let i = 0; i < inner; i++) list.values.push(r.string());
      } else throw bad(`unsupported column type ${type}`);
    }
    rows += nrows;
  }
  return { plans, rows, strings, stringArrays };
}

/** The column of a `String` or `Array(String)` plan (decoded in pass 1); undefined for other types. */
function stringsOf(walk: Walk, plan: Plan): NativeColumn | undefined {
  if (plan.type === 'String') return { type: 'String', values: walk.strings.get(plan.name) ?? [] };
  if (plan.type !== 'Array(String)') return undefined;
  const list = walk.stringArrays.get(plan.name);
  return { type: 'Array(String)', values: list?.values ?? [], offsets: Float64Array.from(list?.offsets ?? []) };
}

/**
 * An `Array(Float64)` column of `rows` rows from its plan: the values array (shared when `options` say so) and
 * the row offsets; `place` puts each piece's values, `into` (bytes of the values array), from result byte `from`.
 */
function arrayColumn(
  plan: Plan,
  rows: number,
  options: DecodeOptions,
  place: (into: Uint8Array, from: number) => void,
): NativeColumn {
  const total = plan.pieces.reduce((s, p) => s + (p.inner ?? 0), 0);
  const values = new Float64Array(
    options.sharedArrays === true ? new SharedArrayBuffer(total * 8) : new ArrayBuffer(total * 8),
  );
  const bytes = new Uint8Array(values.buffer);
  const offsets = new Float64Array(rows);
  let at = 0;
  let row = 0;
  for (const p of plan.pieces) {
    const ends = p.ends!;
    for (let i = 0; i < p.rows; i++) offsets[row++] = at + ends[i]!;
    const n = p.inner ?? 0;
    place(bytes.subarray(8 * at, 8 * (at + n)), p.offset);
    at += n;
  }
  return { type: 'Array(Float64)', values, offsets };
}

/** Decodes a whole `Native` result. Unsupported column types are an internal error naming the type. */
export function decodeNative(buf: Uint8Array, options: DecodeOptions = {}): NativeResult {
  const view = viewOf(buf);
  const walk = walkBlocks(new Reader(buf), buf.length);
  const { rows } = walk;
  // Pass 2: one typed array per column.
  const columns = new Map<string, NativeColumn>();
  for (const plan of walk.plans) {
    const { name, type } = plan;
    const text = stringsOf(walk, plan);
    if (text !== undefined) {
      columns.set(name, text);
      continue;
    }
    if (type === 'Array(Float64)') {
      if (options.arraysInPlace === true) {
        const offsets = new Float64Array(rows);
        const starts = new Float64Array(rows);
        let at = 0;
        let row = 0;
        for (const p of plan.pieces) {
          const ends = p.ends!;
          let prev = 0;
          for (let i = 0; i < p.rows; i++) {
            starts[row] = p.offset + 8 * prev;
            offsets[row++] = at + ends[i]!;
            prev = ends[i]!;
          }
          at += p.inner ?? 0;
        }
        columns.set(name, {
          type: 'Array(Float64)',
          values: new Float64Array(0),
          offsets,
          inPlace: { buffer: view, starts },
        });
        continue;
      }
      columns.set(
        name,
        arrayColumn(plan, rows, options, (into, from) => into.set(buf.subarray(from, from + into.length))),
      );
      continue;
    }
    const values = new Float64Array(rows);
    let at = 0;
    if (type === 'Float64') {
      const bytes = new Uint8Array(values.buffer);
      for (const p of plan.pieces) {
        bytes.set(buf.subarray(p.offset, p.offset + 8 * p.rows), at * 8);
        at += p.rows;
      }
    } else {
      for (const p of plan.pieces) {
        convertFixed(type, view, p.offset, p.rows, values, at);
        at += p.rows;
      }
    }
    columns.set(name, { type: type as 'UInt64', values });
  }
  return { rows, columns };
}

/** Bytes read at once by {@link decodeNativeFile} for headers, offsets, strings and small numbers. */
const CHUNK_READ = 64 * 1024;

/** Reads of column data kept in flight at once by {@link decodeNativeFile}. */
const READS_IN_FLIGHT = 2;

/**
 * A cursor over a {@link BinaryResultFile} for the small parts of a `Native` result (block and column headers,
 * array offsets, strings): read synchronously in chunks of {@link CHUNK_READ}. Skipped bytes are not read.
 */
class FileCursor {
  pos = 0;
  private buf = new Uint8Array(CHUNK_READ);
  /** File position of `buf[0]`, and the bytes of `buf` holding file data. */
  private start = 0;
  private valid = 0;
  private readonly decoder = new TextDecoder();
  constructor(private readonly file: BinaryResultFile) {}

  /** The `n` bytes at `at` (a view valid until the next call). */
  at(at: number, n: number): Uint8Array {
    if (at + n > this.file.size) throw bad('truncated column');
    if (at < this.start || at + n > this.start + this.valid) {
      if (n > this.buf.length) this.buf = new Uint8Array(Math.max(n, 2 * this.buf.length));
      const want = Math.min(this.buf.length, this.file.size - at);
      let got = 0;
      while (got < want) {
        const r = this.file.readSync(this.buf.subarray(got, want), at + got);
        if (r === 0) break;
        got += r;
      }
      this.start = at;
      this.valid = got;
      if (got < n) throw bad('truncated column');
    }
    return this.buf.subarray(at - this.start, at - this.start + n);
  }

  take(n: number): Uint8Array {
    const b = this.at(this.pos, n);
    this.pos += n;
    return b;
  }

  varuint(): number {
    // At most 10 bytes: looked at once (one range check), then consumed as far as the number goes.
    const b = this.at(this.pos, Math.min(10, this.file.size - this.pos));
    let x = 0;
    let shift = 0;
    for (let i = 0; i < b.length; i++) {
      const v = b[i]!;
      x += (v & 0x7f) * 2 ** shift;
      if ((v & 0x80) === 0) {
        this.pos += i + 1;
        return x;
      }
      shift += 7;
    }
    throw bad('truncated varuint');
  }

  string(): string {
    const len = this.varuint();
    if (this.pos + len > this.file.size) throw bad('truncated string');
    return this.decoder.decode(this.take(len));
  }

  skip(bytes: number): void {
    if (this.pos + bytes > this.file.size) throw bad('truncated column');
    this.pos += bytes;
  }
}

/**
 * Decodes a whole `Native` result from a {@link BinaryResultFile}, as {@link decodeNative} does its bytes, without
 * a whole-result buffer: headers, array offsets, strings and small numbers are read in small chunks, and the
 * values of `Float64` and `Array(Float64)` columns (the bulk of the drift engine's results) straight from the
 * file into their final arrays (a `SharedArrayBuffer` with {@link DecodeOptions.sharedArrays}), no copy out of
 * a buffer. With {@link DecodeOptions.arraysInPlace} the result is read whole and given to {@link decodeNative}.
 */
export async function decodeNativeFile(file: BinaryResultFile, options: DecodeOptions = {}): Promise<NativeResult> {
  if (options.arraysInPlace === true) return decodeNative(await file.bytes(), options);
  const r = new FileCursor(file);
  const walk = walkBlocks(r, file.size);
  const { rows } = walk;
  // Pass 2: one array per column; the bulk values are read after, straight into them.
  const columns = new Map<string, NativeColumn>();
  const reads: { into: Uint8Array; at: number }[] = [];
  for (const plan of walk.plans) {
    const { name, type } = plan;
    const text = stringsOf(walk, plan);
    if (text !== undefined) {
      columns.set(name, text);
    } else if (type === 'Array(Float64)') {
      // The values are read from the file after the walk, straight into the column.
      columns.set(
        name,
        arrayColumn(plan, rows, options, (into, from) => {
          if (into.length > 0) reads.push({ into, at: from });
        }),
      );
    } else {
      const values = new Float64Array(rows);
      let at = 0;
      if (type === 'Float64') {
        const bytes = new Uint8Array(values.buffer);
        for (const p of plan.pieces) {
          if (p.rows > 0) reads.push({ into: bytes.subarray(8 * at, 8 * (at + p.rows)), at: p.offset });
          at += p.rows;
        }
      } else {
        const size = FIXED[type]!;
        for (const p of plan.pieces) {
          convertFixed(type, viewOf(r.at(p.offset, size * p.rows)), 0, p.rows, values, at);
          at += p.rows;
        }
      }
      columns.set(name, { type: type as 'UInt64', values });
    }
  }
  let next = 0;
  const chain = async (): Promise<void> => {
    while (next < reads.length) {
      const { into, at } = reads[next++]!;
      let done = 0;
      while (done < into.length) {
        const n = await file.read(into.subarray(done), at + done);
        if (n === 0) throw bad('truncated column');
        done += n;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(READS_IN_FLIGHT, reads.length) }, chain));
  return { rows, columns };
}

/** The column `name` of a decoded result as Float64 values (numbers of any supported width). */
export function numberColumn(result: NativeResult, name: string): Float64Array {
  const c = result.columns.get(name);
  if (c === undefined) return new Float64Array(result.rows);
  if (c.type === 'String' || c.type === 'Array(Float64)' || c.type === 'Array(String)')
    throw bad(`column ${name} is ${c.type}, not a number`);
  return c.values;
}

/** The column `name` of a decoded result as strings. */
export function stringColumn(result: NativeResult, name: string): string[] {
  const c = result.columns.get(name);
  if (c === undefined) return [];
  if (c.type !== 'String') throw bad(`column ${name} is ${c.type}, not String`);
  return c.values;
}
