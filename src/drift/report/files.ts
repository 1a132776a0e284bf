import { statSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { ErrorCodes, ModelwatchError, errorMessage } from '../../common/errors.js';
import { baseType, quoteIdentifier, type ReportColumn } from './columns.js';
import type { Sample } from '../stats/types.js';

/** ClickHouse input formats `modelwatch report` reads, keyed by file extension. */
export const FileFormatByExtension = {
  '.csv': 'CSVWithNames',
  '.tsv': 'TSVWithNames',
  '.parquet': 'Parquet',
  '.jsonl': 'JSONEachRow',
  '.ndjson': 'JSONEachRow',
} as const;

/** A ClickHouse input format name `modelwatch report` accepts. */
export type FileFormat = (typeof FileFormatByExtension)[keyof typeof FileFormatByExtension];

/** One input file: absolute path, ClickHouse format and size on disk. */
export interface InputFile {
  /** Absolute path. */
  path: string;
  /** ClickHouse input format, from the extension. */
  format: FileFormat;
  /** Size in bytes. */
  bytes: number;
}

/** One column of an input file as ClickHouse's schema inference sees it. */
export interface FileColumn {
  /** Column name (header / key / Parquet field). */
  name: string;
  /** ClickHouse type, e.g. `Nullable(Float64)`. */
  type: string;
}

/**
 * Checks that `path` exists, is a non-empty regular file with a supported extension, and returns its
 * format. `role` (`reference` / `current`) is used in messages.
 */
export function inputFile(path: string, role: string): InputFile {
  const abs = resolve(path);
  const ext = extname(abs).toLowerCase();
  const format = (FileFormatByExtension as Record<string, FileFormat | undefined>)[ext];
  if (format === undefined) {
    throw new ModelwatchError(
      ErrorCodes.inputInvalid,
      `${role} file ${path}: unsupported format '${ext || '(no extension)'}' (expected ${Object.keys(FileFormatByExtension).join(', ')})`,
      { field: role },
    );
  }
  let bytes: number;
  try {
    const st = statSync(abs);
    if (!st.isFile()) throw new Error('not a regular file');
    bytes = st.size;
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ModelwatchError(
      ErrorCodes.inputInvalid,
      `${role} file ${path}: ${missing ? 'no such file' : errorMessage(err)}`,
      { field: role, cause: err },
    );
  }
  if (bytes === 0) {
    throw new ModelwatchError(ErrorCodes.inputInvalid, `${role} file ${path}: empty file (0 rows)`, { field: role });
  }
  return { path: abs, format, bytes };
}

/** ClickHouse error type names that mean "the file holds no data rows". */
const emptyDataErrors = new Set(['EMPTY_DATA_PASSED']);

/** The ClickHouse error type (e.g. `INCORRECT_DATA`) of a client error, when there is one. */
function clickHouseErrorType(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'type' in err) {
    const t = err.type;
    return typeof t === 'string' ? t : undefined;
  }
  return undefined;
}

/** First line of a ClickHouse message, without its trailing location noise. */
function shortMessage(err: unknown): string {
  const first = errorMessage(err).split('\n')[0] ?? '';
  return first.replace(/\s*\(in file\/uri [^)]*\)\.?\s*$/, '').trim();
}

/**
 * Wraps a failure of reading `file` into a one-line {@link ModelwatchError} (`input_invalid`): an empty
 * file, or a file ClickHouse cannot parse in its format.
 */
export function fileReadError(file: InputFile, role: string, err: unknown): ModelwatchError {
  if (err instanceof ModelwatchError) {
    if (err.code === ErrorCodes.inputInvalid) return err;
    // The drift engine wraps ClickHouse errors; judge and report the underlying one.
    if (err.cause !== undefined) err = err.cause;
  }
  const type = clickHouseErrorType(err);
  if (type !== undefined && emptyDataErrors.has(type)) {
    return new ModelwatchError(ErrorCodes.inputInvalid, `${role} file ${file.path}: empty file (0 rows)`, {
      field: role,
      cause: err,
    });
  }
  return new ModelwatchError(
    ErrorCodes.inputInvalid,
    `${role} file ${file.path}: cannot read as ${file.format}: ${shortMessage(err)}`,
    { field: role, cause: err },
  );
}

/**
 * Schema inference settings: numbers written with an exponent (`1e-05`, common in CSV written by NumPy or
 * pandas) are floats, not strings (ClickHouse leaves `input_format_try_infer_exponent_floats` off by default).
 */
const inferenceSettings = { input_format_try_infer_exponent_floats: 1 } as const;

/** Columns of `file` by ClickHouse schema inference (`DESCRIBE file(path, format)`). */
export async function describeFile(client: ClickHouseClient, file: InputFile, role: string): Promise<FileColumn[]> {
  try {
    const rs = await client.query({
      query: 'DESCRIBE TABLE file({path:String}, {format:String})',
      query_params: { path: file.path, format: file.format },
      format: 'JSONEachRow',
      clickhouse_settings: inferenceSettings,
    });
    const rows = await rs.json<{ name: string; type: string }>();
    return rows.map((r) => ({ name: r.name, type: r.type }));
  } catch (err) {
    throw fileReadError(file, role, err);
  }
}

/**
 * CSV and TSV carry no types, and ClickHouse's schema inference sometimes gives up on numbers it could
 * read (e.g. TSV infers `0.0007158251677442754` as String). For these formats, a String column whose every
 * non-empty value parses as Float64 (`nan`, `inf` included) becomes `Nullable(Float64)`; one pass over the
 * file checks all String columns at once. JSON and Parquet keep their own types.
 */
export async function refineTextColumns(
  client: ClickHouseClient,
  file: InputFile,
  columns: readonly FileColumn[],
  role: string,
): Promise<FileColumn[]> {
  if (file.format !== 'CSVWithNames' && file.format !== 'TSVWithNames') return [...columns];
  const candidates = columns.map((c, i) => ({ c, i })).filter(({ c }) => baseType(c.type) === 'String');
  if (candidates.length === 0) return [...columns];
  const checks = candidates
    .map(({ c }, k) => {
      const q = quoteIdentifier(c.name);
      const value = `nullIf(trimBoth(${q}), '')`;
      return `countIf(${value} IS NOT NULL AND toFloat64OrNull(assumeNotNull(${value})) IS NULL) AS bad${k}, countIf(${value} IS NOT NULL) AS n${k}`;
    })
    .join(', ');
  let row: Record<string, number | string>;
  try {
    const rs = await client.query({
      query: `SELECT ${checks} FROM file({path:String}, {format:String}, {structure:String})`,
      query_params: { path: file.path, format: file.format, structure: structureOf(columns) },
      format: 'JSONEachRow',
    });
    row = (await rs.json<Record<string, number | string>>())[0] ?? {};
  } catch (err) {
    throw fileReadError(file, role, err);
  }
  const out = [...columns];
  candidates.forEach(({ c, i }, k) => {
    if (Number(row[`bad${k}`]) === 0 && Number(row[`n${k}`]) > 0) out[i] = { name: c.name, type: 'Nullable(Float64)' };
  });
  return out;
}

/** Number of data rows in `file`; 0 rows is an error (`empty file`). */
export async function countFileRows(
  client: ClickHouseClient,
  file: InputFile,
  fileColumns: readonly FileColumn[],
  role: string,
): Promise<number> {
  let rows: number;
  try {
    const rs = await client.query({
      query: 'SELECT count() AS n FROM file({path:String}, {format:String}, {structure:String})',
      query_params: { path: file.path, format: file.format, structure: structureOf(fileColumns) },
      format: 'JSONEachRow',
    });
    const out = await rs.json<{ n: number | string }>();
    rows = Number(out[0]?.n ?? 0);
  } catch (err) {
    throw fileReadError(file, role, err);
  }
  if (rows === 0) {
    throw new ModelwatchError(ErrorCodes.inputInvalid, `${role} file ${file.path}: empty file (0 rows)`, { field: role });
  }
  return rows;
}

/** The `file()` structure argument (`name Type, ...`) for `columns`, so later reads skip schema inference. */
export function structureOf(columns: readonly FileColumn[]): string {
  return columns.map((c) => `${quoteIdentifier(c.name)} ${c.type}`).join(', ');
}

/**
 * Name of the sample column that carries report column `index`. File columns are renamed to these
 * neutral names so that no user column name (`side`, `c0`, `rows`, ...) can collide with an alias the
 * statistics queries use internally.
 */
export function sampleColumn(index: number): string {
  return `__mw_col${index}`;
}

/**
 * A sample over one input file: a SELECT yielding one column per report column, named
 * {@link sampleColumn}(i) in `columns` order, numeric ones as `Nullable(Float64)` (NaN and infinities
 * kept, for the quality counts) and categorical ones as `Nullable(String)`. `prefix` keeps the bound
 * parameter names of two samples apart when they are combined in one query.
 */
export function fileSample(
  file: InputFile,
  fileColumns: readonly FileColumn[],
  columns: readonly ReportColumn[],
  prefix: string,
): Sample {
  if (!/^[a-z][a-z0-9_]*$/.test(prefix)) throw new RangeError(`bad parameter prefix '${prefix}'`);
  const select = columns
    .map((c, i) => {
      const type = c.kind === 'numeric' ? 'Nullable(Float64)' : 'Nullable(String)';
      return `CAST(${quoteIdentifier(c.name)} AS ${type}) AS ${sampleColumn(i)}`;
    })
    .join(', ');
  return {
    sql: `SELECT ${select} FROM file({${prefix}_path:String}, {${prefix}_format:String}, {${prefix}_structure:String})`,
    params: {
      [`${prefix}_path`]: file.path,
      [`${prefix}_format`]: file.format,
      [`${prefix}_structure`]: structureOf(fileColumns),
    },
  };
}
