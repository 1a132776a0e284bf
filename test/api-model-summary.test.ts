import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiApp, MODEL_SUMMARY_TABLE } from '../src/api/index.js';
import {
  createStore,
  type ClickHouseStore,
  migrate,
  migrations,
  type PredictionRow,
  type RequestRow,
} from '../src/store/index.js';
import { apiTestContext } from './support/api.js';

let store: ClickHouseStore;
let dir: string;

const T0 = Date.now() - 30 * 60_000;
const iso = (ms: number): string => new Date(ms).toISOString();

function request(model: string, id: string, ts: number, version: string): RequestRow {
  return {
    model,
    version,
    ts,
    event_id: id,
    request_id: id,
    source: 'rest',
    route: `/v2/models/${model}/infer`,
    status: 200,
    latency_ms: 1,
    request_bytes: 10,
    response_bytes: 10,
    request_truncated: false,
    response_truncated: false,
    rows: 1,
    error: '',
  };
}

function prediction(model: string, id: string, row: number, ts: number, version: string): PredictionRow {
  return {
    model,
    version,
    ts,
    event_id: id,
    request_id: id,
    row,
    features_num: { x: row },
    features_cat: {},
    outputs_num: { p: 0.5 },
    outputs_cat: {},
  };
}

interface Model {
  name: string;
  versions: string[];
  first_seen: string;
  last_seen: string;
  requests: number;
  rows: number;
}

async function models(): Promise<Model[]> {
  const res = await createApiApp(apiTestContext(store)).request('/api/v1/models');
  expect(res.status).toBe(200);
  return ((await res.json()) as { models: Model[] }).models;
}

async function count(sql: string): Promise<number> {
  const [row] = await store.query<{ n: number }>(sql);
  return Number(row?.n ?? 0);
}

const v4 = migrations.find((m) => m.version === 4);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mw-chdb-'));
  store = createStore({ url: `chdb:${dir}` });
  // A store from before the summary existed, with traffic in it.
  await migrate(
    store,
    migrations.filter((m) => m.version < 4),
  );
  await store.insertRequests([
    request('old', 'o1', T0, '1'),
    request('old', 'o2', T0 + 1000, '2'),
    request('quiet', 'q1', T0 + 5, ''),
  ]);
  await store.insertPredictions([prediction('old', 'o1', 0, T0, '1'), prediction('old', 'o1', 1, T0, '1')]);
});

afterAll(async () => {
  await store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('model summary (migration 4)', () => {
  it('backfills traffic stored before the migration', async () => {
    expect(v4).toBeDefined();
    expect(await migrate(store)).toEqual(migrations.filter((m) => m.version >= 4).map((m) => m.version));
    expect(await models()).toEqual([
      { name: 'old', versions: ['1', '2'], first_seen: iso(T0), last_seen: iso(T0 + 1000), requests: 2, rows: 2 },
      { name: 'quiet', versions: [], first_seen: iso(T0 + 5), last_seen: iso(T0 + 5), requests: 1, rows: 0 },
    ]);
  });

  it('keeps counts right across many inserts (partial aggregates merged at read) and after a merge', async () => {
    for (let batch = 0; batch < 5; batch++) {
      const ts = T0 + 10_000 * (batch + 1);
      const version = batch < 3 ? '2' : '3';
      await store.insertRequests([
        request('old', `b${batch}a`, ts, version),
        request('new', `n${batch}`, ts + 1, 'v1'),
      ]);
      await store.insertPredictions([
        prediction('old', `b${batch}a`, 0, ts, version),
        prediction('old', `b${batch}a`, 1, ts, version),
        prediction('old', `b${batch}a`, 2, ts, version),
        prediction('new', `n${batch}`, 0, ts + 1, 'v1'),
      ]);
    }
    // An older request arriving late moves first_seen back.
    await store.insertRequests([request('old', 'late', T0 - 60_000, '1')]);
    const expected = [
      {
        name: 'new',
        versions: ['v1'],
        first_seen: iso(T0 + 10_001),
        last_seen: iso(T0 + 50_001),
        requests: 5,
        rows: 5,
      },
      {
        name: 'old',
        versions: ['1', '2', '3'],
        first_seen: iso(T0 - 60_000),
        last_seen: iso(T0 + 50_000),
        requests: 8,
        rows: 17,
      },
      { name: 'quiet', versions: [], first_seen: iso(T0 + 5), last_seen: iso(T0 + 5), requests: 1, rows: 0 },
    ];
    // Several partial rows per model are stored until ClickHouse merges them; the read merges them itself.
    expect(await count(`SELECT count() AS n FROM ${MODEL_SUMMARY_TABLE} WHERE model = 'old'`)).toBeGreaterThan(1);
    expect(await models()).toEqual(expected);
    await store.command(`OPTIMIZE TABLE ${MODEL_SUMMARY_TABLE} FINAL`);
    expect(await count(`SELECT count() AS n FROM ${MODEL_SUMMARY_TABLE} WHERE model = 'old'`)).toBe(2); // backfill + live
    expect(await models()).toEqual(expected);
    // The same as a full scan of both tables would say.
    expect(await count(`SELECT count() AS n FROM mw_requests WHERE model = 'old'`)).toBe(8);
    expect(await count(`SELECT count() AS n FROM mw_predictions WHERE model = 'old'`)).toBe(17);
  });

  it('re-running the migration statements (a crash before it was recorded) counts the backfill once', async () => {
    const before = await models();
    for (const statement of v4?.statements ?? []) await store.command(statement);
    expect(await models()).toEqual(before);
  });
});
