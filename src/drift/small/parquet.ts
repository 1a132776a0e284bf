/**
 * Small Parquet files read in JavaScript (hyparquet), for `modelwatch report` without starting the embedded
 * ClickHouse engine. Only what maps unambiguously onto what the engine's path gives is accepted: flat
 * columns of plain Parquet types whose ClickHouse type (by schema inference) and values are known exactly;
 * anything else makes {@link readSmallParquet} return a reason, and the caller falls back to the engine.
 */
import { readFileSync } from 'node:fs';
import { parquetMetadata, parquetRead, type Compressors, type FileMetaData, type SchemaElement } from 'hyparquet';
import { errorMessage } from '../../common/errors.js';
import type { FileColumn } from '../files.js';

/**
 * Codecs read without the optional decompressors: hyparquet decodes Snappy itself (pure JS, no WebAssembly
 * start-up). GZIP, Brotli and ZSTD load `hyparquet-compressors` on first use. LZ4 and LZ4_RAW are left to
 * the engine: hyparquet-compressors 1.1 fails on LZ4_RAW pages written by ClickHouse 26.7 ("lz4 offset out
 * of range"), and LZ4 is ambiguous (Hadoop framing or raw) between writers.
 */
const BUILT_IN_CODECS: ReadonlySet<string> = new Set(['UNCOMPRESSED', 'SNAPPY']);
const LOADED_CODECS: ReadonlySet<string> = new Set(['GZIP', 'BROTLI', 'ZSTD']);

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

const defaults = { maxBytes: 16 * 2 ** 20, maxRows: 50_000 } satisfies Required<ReadSmallParquetOptions>;

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

let loadedCompressors: Promise<Compressors> | undefined;

/** The decompressors of `hyparquet-compressors` other than Snappy, loaded once. */
function extraCompressors(): Promise<Compressors> {
  loadedCompressors ??= import('hyparquet-compressors').then((m) => ({
    GZIP: m.decompressGzip,
    BROTLI: m.decompressBrotli,
    ZSTD: (input: Uint8Array) => m.decompressZstd(input),
  }));
  return loadedCompressors;
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
  const columns: SmallColumn[] = [];
  const names = new Set<string>();
  for (const e of leaves) {
    const t = clickhouseTypeOf(e);
    if (t === undefined) return { reason: `column ${e.name}: unsupported type` };
    if (names.has(e.name)) return { reason: `column ${e.name}: duplicate name` };
    names.add(e.name);
    columns.push({ name: e.name, type: t.type, family: t.family, values: new Array<null>(rows).fill(null) });
  }
  let extra = false;
  for (const g of metadata.row_groups) {
    for (const c of g.columns) {
      const codec = c.meta_data?.codec ?? 'UNCOMPRESSED';
      if (LOADED_CODECS.has(codec)) extra = true;
      else if (!BUILT_IN_CODECS.has(codec)) return { reason: `codec ${codec}` };
    }
  }
  const byName = new Map(columns.map((c) => [c.name, c]));
  const seen = new Map(columns.map((c) => [c.name, 0]));
  try {
    await parquetRead({
      file: buffer,
      metadata,
      ...(extra ? { compressors: await extraCompressors() } : {}),
      // Text is decoded by hyparquet's TextDecoder (UTF-8, invalid sequences replaced), as the engine path's
      // reader of `Native` output decodes it.
      geoparquet: false,
      onChunk: (chunk) => {
        const col = byName.get(chunk.columnName);
        if (col === undefined) return;
        const out = col.values as unknown[];
        const data = chunk.columnData as ArrayLike<unknown>;
        for (let i = 0; i < data.length; i++) out[chunk.rowStart + i] = data[i];
        seen.set(col.name, seen.get(col.name)! + data.length);
      },
    });
  } catch (err) {
    return { reason: `read: ${errorMessage(err)}` };
  }
  for (const [name, n] of seen) if (n !== rows) return { reason: `column ${name}: ${n} values for ${rows} rows` };
  return { rows, columns };
}
