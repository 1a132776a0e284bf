import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tables, appliedVersions, migrations, type ClickHouseStore } from '../src/store/index.js';
import { openTestStore } from './support/store.js';
import { selectRows } from './support/store.js';

let store: ClickHouseStore;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
});
afterAll(async () => cleanup());

describe('store', () => {
  it('applies migrations once and is idempotent', async () => {
    expect(await store.migrate()).toEqual([]);
    expect(await appliedVersions(store)).toEqual(migrations.map((m) => m.version));
  });

  it('round-trips non-finite floats and drops a re-sent insert with the same dedup token', async () => {
    const row = {
      model: 'm',
      version: '1',
      ts: Date.UTC(2026, 0, 1),
      event_id: 'e1',
      request_id: 'r1',
      row: 0,
      features_num: { a: NaN, b: Infinity, c: 1.5 },
      features_cat: { k: 'x' },
      outputs_num: {},
      outputs_cat: {},
    };
    await store.insertPredictions([row], { dedupToken: 't-0-0' });
    await store.insertPredictions([row], { dedupToken: 't-0-0' });
    const rs = selectRows(store, {
      query: `SELECT count() AS n, countIf(isNaN(features_num['a'])) AS nan, countIf(isInfinite(features_num['b'])) AS inf,
              any(features_num['c']) AS c FROM ${Tables.predictions}`,
      format: 'JSONEachRow',
    });
    expect(await rs.json()).toEqual([{ n: 1, nan: 1, inf: 1, c: 1.5 }]);
  });

  it('reports which event ids exist', async () => {
    await store.insertRequests([
      {
        model: 'm',
        version: '',
        ts: Date.now(),
        event_id: 'ev-a',
        request_id: 'r',
        source: 'rest',
        route: '/v2/models/m/infer',
        status: 200,
        latency_ms: 1,
        request_bytes: 10,
        response_bytes: 10,
        request_truncated: false,
        response_truncated: false,
        rows: 1,
        error: '',
      },
    ]);
    expect([...(await store.existingEventIds(['ev-a', 'ev-b']))]).toEqual(['ev-a']);
    expect(await store.ping()).toBe(true);
  });
});
