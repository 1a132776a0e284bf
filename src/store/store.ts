import type { ClickHouseClient } from '@clickhouse/client';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import { Tables, migrate } from './migrations.js';
import type { LabelRow, PredictionRow, QuarantineRow, RequestRow } from './rows.js';
import type { StoreClient } from './client.js';

/** Options of an insert. */
export interface InsertOptions {
  /**
   * ClickHouse `insert_deduplication_token`: a re-sent insert with the same token is dropped by the
   * server (needs `non_replicated_deduplication_window` on the table, set by the migrations).
   */
  dedupToken?: string;
}

/** The storage port used by ingest, the API and detectors. */
export interface Store {
  /** The underlying client, for query modules (drift, API) that write their own SQL. */
  readonly client: ClickHouseClient;
  readonly kind: 'chdb' | 'http';
  insertPredictions(rows: PredictionRow[], options?: InsertOptions): Promise<void>;
  insertRequests(rows: RequestRow[], options?: InsertOptions): Promise<void>;
  insertLabels(rows: LabelRow[]): Promise<void>;
  insertQuarantine(rows: QuarantineRow[], options?: InsertOptions): Promise<void>;
  /** Which of `eventIds` are already stored (request records), for idempotent ingest. */
  existingEventIds(eventIds: string[]): Promise<Set<string>>;
  /** True when the store answers. */
  ping(): Promise<boolean>;
  /** Applies pending migrations; returns the versions applied now. */
  migrate(): Promise<number[]>;
  close(): Promise<void>;
}

/** ClickHouse DateTime64(3) text for epoch ms ('YYYY-MM-DD hh:mm:ss.sss', UTC). */
export function toChTime(ms: number): string {
  const iso = new Date(ms).toISOString();
  // 'YYYY-MM-DDThh:mm:ss.sssZ' (24 chars) for years 0000–9999; extended years keep the general path.
  if (iso.length === 24) return `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
  return iso.replace('T', ' ').replace('Z', '');
}

// JSON has no NaN/Infinity; ClickHouse parses the quoted words into Float64 (verified on chdb 26.7).
function encodeFloatMap(map: Record<string, number>): Record<string, number | string> {
  let out: Record<string, number | string> | undefined;
  // for…in, not Object.entries: no [key, value] array per entry for the common all-finite map.
  for (const k in map) {
    const v = map[k] as number;
    if (Number.isFinite(v) || !Object.hasOwn(map, k)) continue;
    out ??= { ...map };
    out[k] = Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
  }
  return out ?? map;
}

function storeError(op: string, err: unknown): ModelwatchError {
  if (err instanceof ModelwatchError) return err;
  const msg = errorMessage(err);
  // Connection-level failures are transient; SQL/data errors from the server are not.
  const transient = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|socket hang up|Timeout|timed out|network|fetch failed/i.test(msg);
  return new ModelwatchError(transient ? ErrorCodes.storeUnavailable : ErrorCodes.storeError, `${op}: ${msg}`, {
    retryable: transient,
    cause: err,
  });
}

/** {@link Store} on ClickHouse (server or chdb) through `@clickhouse/client`. */
export class ClickHouseStore implements Store {
  readonly client: ClickHouseClient;
  readonly kind: 'chdb' | 'http';

  constructor(sc: StoreClient) {
    this.client = sc.client;
    this.kind = sc.kind;
  }

  private async insert(table: string, values: object[], options?: InsertOptions): Promise<void> {
    if (values.length === 0) return;
    try {
      await this.client.insert({
        table,
        values,
        format: 'JSONEachRow',
        // Always set the token, '' meaning none: chdb's connection applies settings as session-wide `SET`,
        // so a token left from an earlier insert would otherwise stick and silently drop later inserts.
        clickhouse_settings: {
          insert_deduplication_token: options?.dedupToken !== undefined ? `${table}:${options.dedupToken}` : '',
        },
      });
    } catch (err) {
      throw storeError(`insert into ${table}`, err);
    }
  }

  insertPredictions(rows: PredictionRow[], options?: InsertOptions): Promise<void> {
    return this.insert(
      Tables.predictions,
      // Explicit literal (not a spread): one object shape for every row, cheaper to build and to stringify.
      rows.map((r) => ({
        model: r.model,
        version: r.version,
        ts: toChTime(r.ts),
        event_id: r.event_id,
        request_id: r.request_id,
        row: r.row,
        features_num: encodeFloatMap(r.features_num),
        features_cat: r.features_cat,
        outputs_num: encodeFloatMap(r.outputs_num),
        outputs_cat: r.outputs_cat,
      })),
      options,
    );
  }

  insertRequests(rows: RequestRow[], options?: InsertOptions): Promise<void> {
    return this.insert(
      Tables.requests,
      rows.map((r) => ({ ...r, ts: toChTime(r.ts), latency_ms: Number.isFinite(r.latency_ms) ? r.latency_ms : 0 })),
      options,
    );
  }

  insertLabels(rows: LabelRow[]): Promise<void> {
    return this.insert(Tables.labels, rows);
  }

  insertQuarantine(rows: QuarantineRow[], options?: InsertOptions): Promise<void> {
    return this.insert(Tables.quarantine, rows, options);
  }

  async existingEventIds(eventIds: string[]): Promise<Set<string>> {
    if (eventIds.length === 0) return new Set();
    try {
      const rs = await this.client.query({
        query: `SELECT DISTINCT event_id FROM ${Tables.requests} WHERE event_id IN {ids:Array(String)}`,
        query_params: { ids: eventIds },
        format: 'JSONEachRow',
      });
      const rows = await rs.json<{ event_id: string }>();
      return new Set(rows.map((r) => r.event_id));
    } catch (err) {
      throw storeError('dedupe lookup', err);
    }
  }

  async ping(): Promise<boolean> {
    try {
      const r = await this.client.ping();
      return r.success;
    } catch {
      return false;
    }
  }

  async migrate(): Promise<number[]> {
    try {
      return await migrate(this.client);
    } catch (err) {
      throw storeError('migrate', err);
    }
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
