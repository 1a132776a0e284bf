// Test helpers for ingest: captured calls with V2 JSON bodies, a loss/duplicate checker over the
// store, and a fault-injecting wrapper around the real store.
import { Registry } from 'prom-client';
import { encodeCapture, type BusMessage, type CapturedCall } from '../../src/bus/index.js';
import { ErrorCodes, ModelwatchError } from '../../src/common/index.js';
import { configSchema, type Config, type ConfigInput } from '../../src/config/index.js';
import {
  Tables,
  type EncodedInsertOptions,
  type InsertOptions,
  type LabelRow,
  type PredictionRow,
  type QuarantineRow,
  type RequestRow,
  type ClickHouseStore,
  type StatementOptions,
  type Store,
} from '../../src/store/index.js';
import { encodeJsonRequest, encodeJsonResponse } from './v2-encode.js';
import { openTestStore, selectRows } from './store.js';

/**
 * {@link openTestStore} with merges of `mw_predictions` and `mw_requests` stopped, so that
 * {@link checkStored} sees raw duplicates (ReplacingMergeTree would collapse them on merge).
 */
export async function openStoreKeepingDuplicates(): Promise<{ store: ClickHouseStore; cleanup: () => Promise<void> }> {
  const { store, cleanup } = await openTestStore();
  for (const t of [Tables.predictions, Tables.requests]) await store.command(`SYSTEM STOP MERGES ${t}`);
  return { store, cleanup };
}

/** A validated config with test-friendly ingest numbers. */
export function testConfig(input: ConfigInput = {}): Config {
  return configSchema.parse({
    logLevel: 'silent',
    ...input,
    ingest: { retryInitialMs: 50, retryMaxMs: 400, ...input.ingest },
  });
}

/** A fresh metrics registry (one per role start, like a process). */
export function newRegistry(): Registry {
  return new Registry();
}

/** Deterministic feature value of record `i`, row `r`, column `c`. */
export function feature(i: number, r: number, c: number): number {
  return i * 100 + r * 10 + c;
}

/** A successful V2 call of model `m` with `rows` rows of 3 FP32 features; event `ev-<i>`, request `req-<i>`. */
export function makeCall(i: number, rows = 2, overrides: Partial<CapturedCall> = {}): CapturedCall {
  const data = Array.from({ length: rows * 3 }, (_, k) => feature(i, Math.floor(k / 3), k % 3));
  const request = encodeJsonRequest([{ name: 'x', datatype: 'FP32', shape: [rows, 3], data }]);
  const response = encodeJsonResponse(
    [{ name: 'y', datatype: 'FP32', shape: [rows, 1], data: Array.from({ length: rows }, (_, r) => r / 4) }],
    { model_name: 'm' },
  );
  const body = (b: Buffer): CapturedCall['request'] => ({
    body: b,
    size: b.length,
    truncated: false,
    contentType: 'application/json',
    contentEncoding: '',
  });
  return {
    eventId: `ev-${i}`,
    requestId: `req-${i}`,
    source: 'rest',
    model: 'm',
    version: '1',
    route: '/v2/models/m/versions/1/infer',
    method: 'POST',
    status: 200,
    startedAt: 1_700_000_000_000 + i * 1000,
    latencyMs: 1.5,
    request: body(request),
    response: body(response),
    headers: {},
    error: '',
    ...overrides,
  };
}

/** A record whose envelope cannot be decoded (wrong CloudEvents type, value shorter than its prefix). */
export function poisonEnvelope(i: number): BusMessage {
  return { key: `req-${i}`, value: Buffer.from([0, 0]), headers: { ce_id: `ev-${i}`, ce_type: 'not.a.capture' } };
}

/** A well-formed envelope of a 200 call whose request body is not JSON. */
export function poisonBody(i: number): BusMessage {
  const call = makeCall(i);
  const bad = Buffer.from('{"inputs": [ this is not json');
  return encodeCapture({ ...call, request: { ...call.request, body: bad, size: bad.length } });
}

/** What the store should hold: event id → number of prediction rows. */
export type Expected = Map<string, number>;

/** What {@link checkStored} found wrong; every list empty means exactly-once. */
export interface StoredReport {
  /** `event/row` (or `event` for requests) expected but absent. */
  lost: string[];
  /** `table:event/row` stored more than once (raw rows, before any merge). */
  duplicated: string[];
  /** `table:event/row` stored but not expected. */
  unexpected: string[];
}

/**
 * Compares the raw (un-merged, no FINAL) contents of `mw_requests` and `mw_predictions` with
 * `expected`, so a duplicate is seen even if a later merge would hide it.
 */
export async function checkStored(store: Store, expected: Expected): Promise<StoredReport> {
  const q = async <T>(query: string): Promise<T[]> => selectRows(store, { query, format: 'JSONEachRow' }).json<T>();
  const preds = await q<{ event_id: string; row: number; n: number }>(
    `SELECT event_id, row, count() AS n FROM ${Tables.predictions} GROUP BY event_id, row`,
  );
  const reqs = await q<{ event_id: string; n: number; rows: number }>(
    `SELECT event_id, count() AS n, max(rows) AS rows FROM ${Tables.requests} GROUP BY event_id`,
  );
  const report: StoredReport = { lost: [], duplicated: [], unexpected: [] };
  const seenPred = new Set<string>();
  for (const p of preds) {
    const key = `${p.event_id}/${p.row}`;
    seenPred.add(key);
    if (Number(p.n) > 1) report.duplicated.push(`predictions:${key}`);
    const rows = expected.get(p.event_id);
    if (rows === undefined || Number(p.row) >= rows) report.unexpected.push(`predictions:${key}`);
  }
  const seenReq = new Set<string>();
  for (const r of reqs) {
    seenReq.add(r.event_id);
    if (Number(r.n) > 1) report.duplicated.push(`requests:${r.event_id}`);
    if (!expected.has(r.event_id)) report.unexpected.push(`requests:${r.event_id}`);
  }
  for (const [ev, rows] of expected) {
    if (!seenReq.has(ev)) report.lost.push(ev);
    for (let row = 0; row < rows; row++) if (!seenPred.has(`${ev}/${row}`)) report.lost.push(`${ev}/${row}`);
  }
  return report;
}

/** Rows of the quarantine table. */
export async function quarantined(store: Store): Promise<QuarantineRow[]> {
  const rs = selectRows(store, { query: `SELECT * FROM ${Tables.quarantine} ORDER BY origin`, format: 'JSONEachRow' });
  return rs.json<QuarantineRow>();
}

/** Polls `check` until it returns true or `timeoutMs` passes (waiting on a condition, not a fixed sleep). */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Sum of a counter (all label sets) on `registry`. */
export async function counterValue(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const { values } = await m.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l))
    .reduce((a, v) => a + v.value, 0);
}

/**
 * The real store with one-shot fault injection: the first `failInserts` typed insert calls (any table)
 * throw a retryable `store_unavailable` before reaching ClickHouse. Views made with `with()` share the
 * injection state.
 */
export class FlakyStore implements Store {
  readonly kind: Store['kind'];
  failures = 0;
  /** Called after each successful insert (tests sample committed offsets here). */
  onInserted: ((table: string) => void) | undefined;
  /** Awaited before each insert that is not refused (tests hold a write back here). */
  beforeInsert: ((table: string) => Promise<void>) | undefined;

  constructor(
    private readonly inner: Store,
    public failInserts: number,
    private readonly root?: FlakyStore,
  ) {
    this.kind = inner.kind;
  }

  private async gate<T>(table: string, run: () => Promise<T>): Promise<T> {
    const r = this.root ?? this;
    if (r.failInserts > 0) {
      r.failInserts--;
      r.failures++;
      throw new ModelwatchError(ErrorCodes.storeUnavailable, `injected: insert into ${table} refused`, {
        retryable: true,
      });
    }
    if (r.beforeInsert) await r.beforeInsert(table);
    const out = await run();
    r.onInserted?.(table);
    return out;
  }

  with(defaults: StatementOptions): FlakyStore {
    return new FlakyStore(this.inner.with(defaults), 0, this.root ?? this);
  }
  query<T = Record<string, unknown>>(sql: string, options?: StatementOptions): Promise<T[]> {
    return this.inner.query<T>(sql, options);
  }
  insert(table: string, rows: readonly object[], options?: InsertOptions): Promise<void> {
    return this.inner.insert(table, rows, options);
  }
  command(sql: string, options?: StatementOptions): Promise<void> {
    return this.inner.command(sql, options);
  }
  insertPredictions(rows: PredictionRow[], o?: InsertOptions): Promise<void> {
    return this.gate(Tables.predictions, () => this.inner.insertPredictions(rows, o));
  }
  insertRequests(rows: RequestRow[], o?: InsertOptions): Promise<void> {
    return this.gate(Tables.requests, () => this.inner.insertRequests(rows, o));
  }
  insertLabels(rows: LabelRow[], o?: InsertOptions): Promise<void> {
    return this.gate(Tables.labels, () => this.inner.insertLabels(rows, o));
  }
  insertQuarantine(rows: QuarantineRow[], o?: InsertOptions): Promise<void> {
    return this.gate(Tables.quarantine, () => this.inner.insertQuarantine(rows, o));
  }
  insertEncoded(table: string, body: Buffer, o: EncodedInsertOptions): Promise<void> {
    return this.gate(table, () => this.inner.insertEncoded(table, body, o));
  }
  existingEventIds(ids: string[]): Promise<Set<string>> {
    return this.inner.existingEventIds(ids);
  }
  ping(): Promise<boolean> {
    return this.inner.ping();
  }
  migrate(): Promise<number[]> {
    return this.inner.migrate();
  }
  appliedVersions(): Promise<number[]> {
    return this.inner.appliedVersions();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
