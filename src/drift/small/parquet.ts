/**
 * Small Parquet files read in JavaScript (hyparquet), for `modelwatch report` without starting the embedded
 * ClickHouse engine. Only what maps unambiguously onto what the engine's path gives is accepted: flat
 * columns of plain Parquet types whose ClickHouse type (by schema inference) and values are known exactly;
 * anything else makes {@link readSmallParquet} return a reason, and the caller falls back to the engine.
 */
import { readFileSync } from 'node:fs';
import { brotliDecompressSync, unzipSync } from 'node:zlib';
import { parquetMetadata, parquetRead, type Compressors, type FileMetaData, type SchemaElement } from 'hyparquet';
import { errorMessage } from '../../common/errors.js';
import type { FileColumn } from '../files.js';

/**
 * Codecs this reader decodes: hyparquet decodes Snappy itself (pure JS, no WebAssembly start-up); GZIP and
 * Brotli go to `node:zlib`; ZSTD to `fzstd` (pure JS, loaded on first use), given the page's output buffer
 * (without it fzstd slides a window buffer with a copy per block, ~10× slower). LZ4 and LZ4_RAW are left to
 * the engine: `hyparquet-compressors` 1.1 fails on LZ4_RAW pages written by ClickHouse 26.7 ("lz4 offset out
 * of range"), and LZ4 is ambiguous (Hadoop framing or raw) between writers.
 */
const CODECS: ReadonlySet<string> = new Set(['UNCOMPRESSED', 'SNAPPY', 'GZIP', 'BROTLI', 'ZSTD']);

/** One column of a small Parquet file, as the engine path would see and read it. */
export interface SmallColumn extends FileColumn {
  /**
   * How its values read: `float` (Float32/Float64: numbers as they are), `int` (every integer type: exact
   * in decimal, rounded to the nearest double as numbers), `bool` (ClickHouse `Bool`: `true`/`false` as
   * text), `string` (UTF-8 text).
   */
  family: 'float' | 'int' | 'bool' | 'string';
  /** One value per row: `null` for NULL. */
  values: ArrayLike<number | bigint | boolean | string | null | undefined>;
}

/** A small Parquet file read whole. */
export interface SmallParquet {
  rows: number;
  /** Columns in file order. */
  columns: SmallColumn[];
}

/** Why a file is not read here (the engine reads it instead). */
export interface NotSmall {
  reason: string;
}

/** Options of {@link readSmallParquet}. */
export interface ReadSmallParquetOptions {
  /** Largest file read here, in bytes. @default 16777216 (16 MiB) */
  maxBytes?: number;
  /** Most rows read here. @default 50000 */
  maxRows?: number;
}

/** Largest Parquet file read without the engine by default (16 MiB). */
export const SMALL_PARQUET_MAX_BYTES = 16 * 2 ** 20;

/**
 * Most rows read without the engine by default: the engine path reads samples up to this size in one query per
 * side too (`SMALL_SAMPLE_ROWS`), so both paths run the same code after the read.
 */
export const SMALL_PARQUET_MAX_ROWS = 50_000;

const defaults = {
  maxBytes: SMALL_PARQUET_MAX_BYTES,
  maxRows: SMALL_PARQUET_MAX_ROWS,
} satisfies Required<ReadSmallParquetOptions>;

/**
 * The ClickHouse type the engine's schema inference gives a Parquet leaf column (`DESCRIBE file(...)`,
 * wrappers left out: they change neither the column's kind nor its values), with its value family; or
 * undefined for a type this reader does not handle (decimals, dates, times, timestamps, INT96, fixed-length
 * byte arrays, float16, JSON, BSON, UUID, enums, nested and repeated fields, ...).
 */
export function clickhouseTypeOf(e: SchemaElement): { type: string; family: SmallColumn['family'] } | undefined {
  if ((e.num_children ?? 0) > 0 || e.repetition_type === 'REPEATED') return undefined;
  const lt = e.logical_type;
  const ct = e.converted_type;
  switch (e.type) {
    case 'BOOLEAN':
      return lt === undefined && ct === undefined ? { type: 'Bool', family: 'bool' } : undefined;
    case 'FLOAT':
      return lt === undefined && ct === undefined ? { type: 'Float32', family: 'float' } : undefined;
    case 'DOUBLE':
      return lt === undefined && ct === undefined ? { type: 'Float64', family: 'float' } : undefined;
    case 'INT32':
    case 'INT64': {
      const physical = e.type === 'INT32' ? 32 : 64;
      let bits = physical;
      let signed = true;
      if (lt !== undefined) {
        if (lt.type !== 'INTEGER') return undefined;
        bits = lt.bitWidth;
        signed = lt.isSigned;
      } else if (ct !== undefined) {
        const m = /^(U?)INT_(8|16|32|64)$/.exec(ct);
        if (m === null) return undefined;
        bits = Number(m[2]);
        signed = m[1] === '';
      }
      if (![8, 16, 32, 64].includes(bits) || bits > physical || (physical === 64 && bits !== 64)) return undefined;
      return { type: `${signed ? '' : 'U'}Int${bits}`, family: 'int' };
    }
    case 'BYTE_ARRAY': {
      const text = (lt === undefined || lt.type === 'STRING') && (ct === undefined || ct === 'UTF8');
      return text ? { type: 'String', family: 'string' } : undefined;
    }
    default:
      return undefined;
  }
}

let zstd: Promise<Compressors['ZSTD']> | undefined;

/**
 * A page's output buffer for fzstd. fzstd 0.1.1 tests its `buf` argument with `w == 1`, which turns a plain
 * typed array into a string of all its bytes (`toString`) on every page: this buffer converts to 0 instead.
 */
class ZstdOutput extends Uint8Array {
  [Symbol.toPrimitive](): number {
    return 0;
  }
}

/** The decompressors of the file's codecs beyond Snappy (hyparquet's own). */
async function compressorsFor(codecs: ReadonlySet<string>): Promise<Compressors> {
  const out: Compressors = {};
  // unzipSync: gzip or zlib framing, whichever the page has.
  if (codecs.has('GZIP')) out.GZIP = (input) => new Uint8Array(unzipSync(input));
  if (codecs.has('BROTLI')) out.BROTLI = (input) => new Uint8Array(brotliDecompressSync(input));
  if (codecs.has('ZSTD')) {
    zstd ??= import('fzstd').then(
      (m) => (input: Uint8Array, length: number) => m.decompress(input, new ZstdOutput(length)),
    );
    out.ZSTD = await zstd;
  }
  return out;
}

/**
 * Reads the Parquet file at `path` whole when it is small (`maxBytes`, `maxRows`), has at least one row,
 * and every column maps exactly ({@link clickhouseTypeOf}, known codecs); otherwise returns
 * {@link NotSmall} with the reason. A file hyparquet cannot parse is `NotSmall` too: the engine reads it
 * and reports its own error.
 */
export async function readSmallParquet(
  path: string,
  bytes: number,
  options: ReadSmallParquetOptions = {},
): Promise<SmallParquet | NotSmall> {
  const o = { ...defaults, ...options };
  if (bytes > o.maxBytes) return { reason: `larger than ${o.maxBytes} bytes` };
  let buffer: ArrayBuffer;
  let metadata: FileMetaData;
  try {
    const data = readFileSync(path);
    buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
    metadata = parquetMetadata(buffer, { geoparquet: false });
  } catch (err) {
    return { reason: `metadata: ${errorMessage(err)}` };
  }
  const rows = Number(metadata.num_rows);
  if (!(rows > 0)) return { reason: 'no rows' };
  if (rows > o.maxRows) return { reason: `more than ${o.maxRows} rows` };
  // schema[0] is the root; a flat file has only leaves under it.
  const root = metadata.schema[0];
  const leaves = metadata.schema.slice(1);
  if (root === undefined || root.num_children !== leaves.length) return { reason: 'nested columns' };
  if (leaves.length === 0) return { reason: 'no columns' };
  const columns: SmallColumn[] = [];
  const names = new Set<string>();
  for (const e of leaves) {
    const t = clickhouseTypeOf(e);
    if (t === undefined) return { reason: `column ${e.name}: unsupported type` };
    if (names.has(e.name)) return { reason: `column ${e.name}: duplicate name` };
    names.add(e.name);
    columns.push({ name: e.name, type: t.type, family: t.family, values: [] });
  }
  const codecs = new Set<string>();
  for (const g of metadata.row_groups) {
    for (const c of g.columns) {
      const codec = c.meta_data?.codec ?? 'UNCOMPRESSED';
      if (!CODECS.has(codec)) return { reason: `codec ${codec}` };
      codecs.add(codec);
    }
  }
  // Column chunks as hyparquet hands them over (one per page or row group), put in row order afterwards.
  const chunks = new Map<string, { rowStart: number; data: ArrayLike<unknown> }[]>(columns.map((c) => [c.name, []]));
  try {
    await parquetRead({
      file: buffer,
      metadata,
      compressors: await compressorsFor(codecs),
      // Text is decoded by hyparquet's TextDecoder (UTF-8, invalid sequences replaced), as the engine path's
      // reader of `Native` output decodes it.
      geoparquet: false,
      onChunk: (chunk) => {
        chunks.get(chunk.columnName)?.push({ rowStart: chunk.rowStart, data: chunk.columnData as ArrayLike<unknown> });
      },
    });
  } catch (err) {
    return { reason: `read: ${errorMessage(err)}` };
  }
  for (const col of columns) {
    const list = chunks.get(col.name)!.sort((a, b) => a.rowStart - b.rowStart);
    let at = 0;
    for (const c of list) {
      if (c.rowStart !== at) return { reason: `column ${col.name}: rows ${at}..${c.rowStart} missing` };
      at += c.data.length;
    }
    if (at !== rows) return { reason: `column ${col.name}: ${at} values for ${rows} rows` };
    col.values = list.length === 1 ? (list[0]!.data as SmallColumn['values']) : concat(list.map((c) => c.data));
  }
  return { rows, columns };
}

/** Chunks of one column end to end, as one array. */
function concat(parts: ArrayLike<unknown>[]): SmallColumn['values'] {
  const out: unknown[] = [];
  for (const p of parts) for (let i = 0; i < p.length; i++) out.push(p[i]);
  return out as SmallColumn['values'];
}
