import type { ClickHouseSettings } from '@clickhouse/client';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import type { Store } from '../store/store.js';
import { Tables } from '../store/migrations.js';

/** Query parameters bound by ClickHouse (`{name:Type}` placeholders); never concatenated into SQL. */
export type QueryParams = Record<string, unknown>;

/**
 * Runs a read query with bound parameters and returns its rows. Connection failures become
 * `store_unavailable` (503), anything else `store_error` (500).
 */
export async function queryRows<T>(
  store: Store,
  query: string,
  params: QueryParams = {},
  settings: ClickHouseSettings = {},
): Promise<T[]> {
  try {
    const rs = await store.client.query({
      query,
      query_params: params,
      format: 'JSONEachRow',
      ...(Object.keys(settings).length > 0 ? { clickhouse_settings: settings } : {}),
    });
    return await rs.json<T>();
  } catch (err) {
    if (err instanceof ModelwatchError) throw err;
    const msg = errorMessage(err);
    const transient = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|socket hang up|Timeout|timed out|network|fetch failed/i.test(
      msg,
    );
    throw new ModelwatchError(
      transient ? ErrorCodes.storeUnavailable : ErrorCodes.storeError,
      transient ? 'store unavailable' : `store query failed: ${msg}`,
      { retryable: transient, cause: err },
    );
  }
}

/** True when the model has stored requests or prediction rows. */
export async function modelExists(store: Store, model: string): Promise<boolean> {
  const rows = await queryRows<{ n: number }>(
    store,
    `SELECT (SELECT count() FROM (SELECT 1 FROM ${Tables.requests} WHERE model = {model:String} LIMIT 1))
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
