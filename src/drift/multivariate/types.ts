import { ErrorCodes, ModelwatchError } from '../../common/errors.js';

/** Rows of numeric features: `rows[i][j]` is feature j of row i. Every row has the same length. */
export type Rows = readonly (readonly number[])[];

/** Verdict of one multivariate method on one window. */
export type MultivariateVerdict = 'drift' | 'no_drift';

/** Throws a `bad_request` {@link ModelwatchError} naming `field` when `ok` is false. */
export function check(ok: boolean, field: string, message: string): asserts ok {
  if (!ok) throw new ModelwatchError(ErrorCodes.badRequest, `${field}: ${message}`, { field });
}

/** Checks that `rows` is a non-empty rectangle of width ≥ 1 and returns its width. */
export function widthOf(rows: Rows, field: string, minRows = 1): number {
  check(rows.length >= minRows, field, `needs at least ${minRows} rows, got ${rows.length}`);
  const w = rows[0]?.length ?? 0;
  check(w >= 1, field, 'rows have no columns');
  for (let i = 0; i < rows.length; i++) {
    check(rows[i]?.length === w, field, `row ${i} has ${rows[i]?.length} columns, expected ${w}`);
  }
  return w;
}
