import { statSync } from 'node:fs';
import { extname, resolve } from 'node:path';
/**
 * The one file-input path of the drift engine: `modelwatch report` and file references both check, type
 * and read their files here (ClickHouse `file()` with bound path, format and structure).
 */
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import type { SqlPort } from '../store/port.js';
import { storeErrorCodes } from '../store/errors.js';
import { quoteIdent, quoteString } from './stats/sample.js';
import type { Sample } from './stats/types.js';

/** ClickHouse input formats read from files, keyed by file extension. */
export const FileFormatByExtension = {
  '.csv': 'CSVWithNames',
  '.tsv': 'TSVWithNames',
  '.parquet': 'Parquet',
  '.jsonl': 'JSONEachRow',
  '.ndjson': 'JSONEachRow',
} as const;

/** ClickHouse input formats accepted for files (by extension, or named explicitly). */
export const FileFormats = [
  'CSVWithNames',
  'TSVWithNames',
  'Parquet',
  'JSONEachRow',
  'CSV',
  'TSV',
  'JSONLines',
  'NDJSON',
] as const;
/** One of {@link FileFormats}. */
export type FileFormat = (typeof FileFormats)[number];

/** A column of a file or a report, with the kind its statistics use. */
export type ColumnKind = 'numeric' | 'categorical';

/** Strips `Nullable(...)` and `LowCardinality(...)` wrappers from a ClickHouse type name. */
export function baseType(type: string): string {
  let t = type.trim();
  for (;;) {
    const m = /^(?:Nullable|LowCardinality)\((.*)\)$/.exec(t);
    if (m?.[1] === undefined) return t;
    t = m[1].trim();
  }
}

/** True for ClickHouse integer, float and decimal types (after unwrapping Nullable/LowCardinality). */
export function isNumericType(type: string): boolean {
  return /^(?:U?Int(?:8|16|32|64|128|256)|Float(?:32|64)|BFloat16|Decimal(?:32|64|128|256)?(?:\(.*\))?)$/.test(
    baseType(type),
  );
}

/** One input file: absolute path, ClickHouse format and size on disk. */
export interface InputFile {
  /** Absolute path. */
  path: string;
  /** ClickHouse input format, from the extension unless named. */
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
 * Checks that `path` exists and is a non-empty regular file, and returns it with its format: `format` when
 * given, else from the extension. `role` (`reference` / `current` / `file`) is the error's field and names
 * the file in messages.
 */
export function inputFile(path: string, role: string, format?: FileFormat): InputFile {
  const abs = resolve(path);
  const ext = extname(abs).toLowerCase();
  if (format !== undefined && !(FileFormats as readonly string[]).includes(format)) {
    throw new ModelwatchError(ErrorCodes.inputInvalid, `format: unsupported file format ${String(format)}`, {
      field: 'format',
    });
  }
  format ??= (FileFormatByExtension as Record<string, FileFormat | undefined>)[ext];
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

/** ClickHouse exception types that mean "the file holds no data rows" (schema inference reports it under code 636). */
const emptyDataTypes = new Set(['EMPTY_DATA_PASSED']);

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
  const type = storeErrorCodes(err).clickhouseType;
  if (type !== undefined && emptyDataTypes.has(type)) {
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

/**
 * `sample` with its `String` parameters written into the SQL as literals. The embedded engine runs
 * statements with bound parameters one at a time per process, so the two sides of a group, read at once,
 * would otherwise wait for each other.
 */
export function withLiterals(sample: Sample): Sample {
  const sql = sample.sql.replace(/\{([A-Za-z_][A-Za-z0-9_]*):String\}/g, (_whole, name: string) => {
    const value = sample.params[name];
    if (typeof value !== 'string') throw new RangeError(`sample parameter ${name} is not a string`);
    return quoteString(value);
  });
  return { sql, params: {} };
}

/** Columns of `file` by ClickHouse schema inference (`DESCRIBE file(path, format)`). */
export async function describeFile(store: SqlPort, file: InputFile, role: string): Promise<FileColumn[]> {
  try {
    // Literals, not bound parameters: the two files of a report are described at once.
    const rows = await store.query<{ name: string; type: string }>(
      `DESCRIBE TABLE file(${quoteString(file.path)}, ${quoteString(file.format)})`,
      { label: 'describe file', settings: inferenceSettings },
    );
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
  store: SqlPort,
  file: InputFile,
  columns: readonly FileColumn[],
  role: string,
): Promise<FileColumn[]> {
  if (file.format !== 'CSVWithNames' && file.format !== 'TSVWithNames') return [...columns];
  const candidates = columns.map((c, i) => ({ c, i })).filter(({ c }) => baseType(c.type) === 'String');
  if (candidates.length === 0) return [...columns];
  const checks = candidates
    .map(({ c }, k) => {
      const q = quoteIdent(c.name);
      const value = `nullIf(trimBoth(${q}), '')`;
      return `countIf(${value} IS NOT NULL AND toFloat64OrNull(assumeNotNull(${value})) IS NULL) AS bad${k}, countIf(${value} IS NOT NULL) AS n${k}`;
    })
    .join(', ');
  let row: Record<string, number | string>;
  try {
    const rows = await store.query<Record<string, number | string>>(
      `SELECT ${checks} FROM file({path:String}, {format:String}, {structure:String})`,
      {
        label: 'check file columns',
        params: { path: file.path, format: file.format, structure: structureOf(columns) },
      },
    );
    row = rows[0] ?? {};
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
  store: SqlPort,
  file: InputFile,
  fileColumns: readonly FileColumn[],
  role: string,
): Promise<number> {
  let rows: number;
  try {
    const out = await store.query<{ n: number | string }>(
      'SELECT count() AS n FROM file({path:String}, {format:String}, {structure:String})',
      {
        label: 'count file rows',
        params: { path: file.path, format: file.format, structure: structureOf(fileColumns) },
      },
    );
    rows = Number(out[0]?.n ?? 0);
  } catch (err) {
    throw fileReadError(file, role, err);
  }
  if (rows === 0) throw emptyFileError(file, role);
  return rows;
}

/** The error of an input file without data rows (`input_invalid`, naming the file and its role). */
export function emptyFileError(file: InputFile, role: string): ModelwatchError {
  return new ModelwatchError(ErrorCodes.inputInvalid, `${role} file ${file.path}: empty file (0 rows)`, {
    field: role,
  });
}

/** The `file()` structure argument (`name Type, ...`) for `columns`, so later reads skip schema inference. */
export function structureOf(columns: readonly FileColumn[]): string {
  return columns.map((c) => `${quoteIdent(c.name)} ${c.type}`).join(', ');
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
  columns: ReadonlyArray<{ name: string; kind: ColumnKind }>,
  prefix: string,
): Sample {
  if (!/^[a-z][a-z0-9_]*$/.test(prefix)) throw new RangeError(`bad parameter prefix '${prefix}'`);
  const select = columns
    .map((c, i) => {
      const type = c.kind === 'numeric' ? 'Nullable(Float64)' : 'Nullable(String)';
      return `CAST(${quoteIdent(c.name)} AS ${type}) AS ${sampleColumn(i)}`;
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

/**
 * Reads a file's columns and their kinds in one way for every caller: ClickHouse schema inference
 * ({@link describeFile}), CSV/TSV text columns that hold only numbers refined to numbers
 * ({@link refineTextColumns}), then numeric ClickHouse types are `numeric` and everything else (String, Bool,
 * dates, ...) `categorical`, unless named in `categorical`.
 */
export async function fileColumns(
  store: SqlPort,
  file: InputFile,
  role: string,
  categorical: readonly string[] = [],
): Promise<Array<FileColumn & { kind: ColumnKind }>> {
  const cols = await refineTextColumns(store, file, await describeFile(store, file, role), role);
  return cols.map((c) => ({
    ...c,
    kind: !categorical.includes(c.name) && isNumericType(c.type) ? 'numeric' : 'categorical',
  }));
}

/** All rows of a file under their own column names, typed by `columns` (from {@link fileColumns}); parameters named `<prefix>_*`. */
export function fileRowsSample(file: InputFile, columns: readonly FileColumn[], prefix: string): Sample {
  if (!/^[a-z][a-z0-9_]*$/.test(prefix)) throw new RangeError(`bad parameter prefix '${prefix}'`);
  return {
    sql: `SELECT * FROM file({${prefix}_path:String}, {${prefix}_format:String}, {${prefix}_structure:String})`,
    params: {
      [`${prefix}_path`]: file.path,
      [`${prefix}_format`]: file.format,
      [`${prefix}_structure`]: structureOf(columns),
    },
  };
}
