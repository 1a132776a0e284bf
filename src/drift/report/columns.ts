import { ErrorCodes, ModelwatchError } from '../../common/errors.js';
import { isNumericType, type ColumnKind, type FileColumn } from '../files.js';

export { baseType, isNumericType } from '../files.js';
export type { ColumnKind } from '../files.js';

/** A column selected for the report with its kind. */
export interface ReportColumn {
  /** Column name, as in both files. */
  name: string;
  /** Kind used for the statistics. */
  kind: ColumnKind;
}

/** Options of {@link resolveColumns}. */
export interface ResolveColumnsOptions {
  /** Columns to treat as categorical whatever their inferred type. @default [] */
  categorical?: readonly string[];
  /** Only these columns, in this order. @default all columns of the reference file */
  columns?: readonly string[] | undefined;
}

/**
 * Picks the report's columns and their kinds from the two files' inferred schemas: numeric ClickHouse
 * types are numeric, everything else (String, Bool, dates, ...) categorical; `categorical` forces a column
 * categorical; a column numeric in one file and not in the other is categorical. Columns present in only
 * one file are an error unless `columns` leaves them out; a `columns` or `categorical` entry present in
 * neither file is an error.
 */
export function resolveColumns(
  reference: readonly FileColumn[],
  current: readonly FileColumn[],
  options: ResolveColumnsOptions = {},
): ReportColumn[] {
  const refByName = new Map(reference.map((c) => [c.name, c]));
  const curByName = new Map(current.map((c) => [c.name, c]));
  const forced = new Set(options.categorical ?? []);
  for (const name of forced) {
    if (!refByName.has(name) && !curByName.has(name)) {
      throw new ModelwatchError(ErrorCodes.inputInvalid, `--categorical: unknown column '${name}'`, {
        field: 'categorical',
      });
    }
  }
  let names: string[];
  if (options.columns !== undefined && options.columns.length > 0) {
    const seen = new Set<string>();
    names = [];
    for (const name of options.columns) {
      if (!refByName.has(name) && !curByName.has(name)) {
        throw new ModelwatchError(ErrorCodes.inputInvalid, `--columns: unknown column '${name}'`, { field: 'columns' });
      }
      if (!seen.has(name)) {
        seen.add(name);
        names.push(name);
      }
    }
  } else {
    names = reference.map((c) => c.name);
    for (const c of current) if (!refByName.has(c.name)) names.push(c.name);
  }
  const onlyRef = names.filter((n) => !curByName.has(n));
  const onlyCur = names.filter((n) => !refByName.has(n));
  if (onlyRef.length > 0 || onlyCur.length > 0) {
    const parts: string[] = [];
    if (onlyRef.length > 0) parts.push(`only in reference: ${onlyRef.join(', ')}`);
    if (onlyCur.length > 0) parts.push(`only in current: ${onlyCur.join(', ')}`);
    throw new ModelwatchError(
      ErrorCodes.inputInvalid,
      `mismatched columns (${parts.join('; ')}); use --columns to compare the shared ones`,
      { field: 'columns' },
    );
  }
  if (names.length === 0) {
    throw new ModelwatchError(ErrorCodes.inputInvalid, 'no columns to compare', { field: 'columns' });
  }
  return names.map((name) => {
    const r = refByName.get(name);
    const c = curByName.get(name);
    const numeric =
      !forced.has(name) && r !== undefined && c !== undefined && isNumericType(r.type) && isNumericType(c.type);
    return { name, kind: numeric ? 'numeric' : 'categorical' };
  });
}
