import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import type { StatementOptions, StoreSettings } from '../store/port.js';
import type { Store } from '../store/store.js';
import { Tables } from '../store/migrations.js';

/** Query parameters bound by ClickHouse (`{name:Type}` placeholders); never concatenated into SQL. */
export type QueryParams = Record<string, unknown>;

/**
 * Runs a read query of an API request with bound parameters and returns its rows. It runs with the `api`
 * role's deadline and memory cap (`clickhouse.roles.api`) and is cancelled in ClickHouse past its deadline
 * or when `options.signal` fires. Failures are classified by the store: `store_unavailable` (503),
 * `timeout` (504), anything else `store_error` (500); their ClickHouse text is for logs, not for clients.
 */
export function queryRows<T>(
  store: Store,
  query: string,
  params: QueryParams = {},
  settings: StoreSettings = {},
  options: Omit<StatementOptions, 'params' | 'settings'> = {},
): Promise<T[]> {
  return store.query<T>(query, { role: 'api', label: 'api query', ...options, params, settings });
}

/** True when the model answered a stored request (2xx) or has prediction rows; failed calls alone do not make a model. */
export async function modelExists(store: Store, model: string): Promise<boolean> {
  const rows = await queryRows<{ n: number }>(
    store,
    `SELECT (SELECT count() FROM (SELECT 1 FROM ${Tables.requests} WHERE model = {model:String} AND status >= 200 AND status < 300 LIMIT 1))
          + (SELECT count() FROM (SELECT 1 FROM ${Tables.predictions} WHERE model = {model:String} LIMIT 1)) AS n`,
    { model },
  );
  return Number(rows[0]?.n ?? 0) > 0;
}

/** Throws a 404 `not_found` error when the model has no stored data. */
export async function requireModel(store: Store, model: string): Promise<void> {
  if (!(await modelExists(store, model))) {
    throw new ModelwatchError(ErrorCodes.notFound, `model not found: ${model}`, { field: 'name' });
  }
}

/** ISO-8601 text of epoch ms. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}
