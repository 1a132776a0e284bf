// The event-id lookup of ingest: the cheap range read (stored ids of the chunk's models and capture-time
// range, intersected in JavaScript) and the fallback that names the ids (when the range holds too many
// stored ids to read back) find exactly the same stored calls, per table.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storedEventIds, type CallKey } from '../src/ingest/index.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { FlakyStore } from './support/ingest.js';
import { openTestStore } from './support/store.js';

/** The real store, counting the read statements it runs (no fault injected). */
class CountingStore extends FlakyStore {
  queries = 0;
  override query<T = Record<string, unknown>>(...args: Parameters<FlakyStore['query']>): Promise<T[]> {
    this.queries++;
    return super.query<T>(...args);
  }
}

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
const T0 = Date.UTC(2026, 2, 1);

function key(model: string, i: number): CallKey {
  return { event_id: `${model}-ev-${i}`, model, ts: T0 + i * 10 };
}

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  // 'lk': calls 0–199 fully stored; 200–209 with prediction rows only (a write cut before its request row).
  const requests = Array.from({ length: 200 }, (_, i) => {
    const k = key('lk', i);
    return {
      model: 'lk',
      version: '1',
      ts: k.ts,
      event_id: k.event_id,
      request_id: `r-${i}`,
      source: 'rest',
      route: '/',
      status: 200,
      latency_ms: 1,
      request_bytes: 1,
      response_bytes: 1,
      request_truncated: false,
      response_truncated: false,
      rows: 2,
      error: '',
    };
  });
  await store.insertRequests(requests);
  const predictions = Array.from({ length: 210 }, (_, i) => key('lk', i)).flatMap((k) =>
    [0, 1].map((row) => ({
      model: 'lk',
      version: '1',
      ts: k.ts,
      event_id: k.event_id,
      request_id: 'r',
      row,
      features_num: { a: row },
      features_cat: {},
      outputs_num: {},
      outputs_cat: {},
    })),
  );
  await store.insertPredictions(predictions);
  // Same ids under another model, same times: never a match for 'lk' calls (the lookup is per model).
  await store.insertRequests(requests.map((r) => ({ ...r, model: 'other', event_id: `lk-ev-${1000 + r.rows}` })));
});

afterAll(async () => {
  await cleanup();
});

describe('storedEventIds', () => {
  // A chunk mixing stored calls, half-stored calls and new ones, spread over the stored range and past it.
  const chunk: CallKey[] = [
    ...[5, 6, 150, 199].map((i) => key('lk', i)),
    ...[200, 209].map((i) => key('lk', i)),
    ...[210, 300, 1002].map((i) => key('lk', i)),
  ];
  const expected = {
    requests: new Set(['lk-ev-5', 'lk-ev-6', 'lk-ev-150', 'lk-ev-199']),
    predictions: new Set(['lk-ev-5', 'lk-ev-6', 'lk-ev-150', 'lk-ev-199', 'lk-ev-200', 'lk-ev-209']),
  };

  it('finds the stored calls per table from the range read', async () => {
    // The range (calls 5–1002) holds 210 stored ids per table: under the default bound, read back whole.
    const counting = new CountingStore(store, 0);
    expect(await storedEventIds(counting, chunk)).toEqual(expected);
    expect(counting.queries).toBe(1);
  });

  it('finds the same calls when the range holds more ids than it reads back (the ids are named)', async () => {
    // A bound of max(1, 2 × 9 calls) = 18 ids: the range's 200+ stored ids exceed it.
    const counting = new CountingStore(store, 0);
    expect(await storedEventIds(counting, chunk, { rangeReadMin: 1 })).toEqual(expected);
    expect(counting.queries).toBe(2);
  });

  it('finds nothing for calls newer than everything stored, and nothing for no calls', async () => {
    const fresh = [key('lk', 5000), key('lk', 5001)];
    expect(await storedEventIds(store, fresh)).toEqual({ requests: new Set(), predictions: new Set() });
    expect(await storedEventIds(store, [])).toEqual({ requests: new Set(), predictions: new Set() });
  });

  it('reads the range exactly at the bound and falls back one id past it', async () => {
    // Calls 0 and 199 as the chunk: its range holds 200 request ids and 200 prediction ids.
    const all = [key('lk', 0), key('lk', 199)];
    const want = new Set(['lk-ev-0', 'lk-ev-199']);
    for (const [rangeReadMin, queries] of [
      [200, 1],
      [199, 2],
    ] as const) {
      const counting = new CountingStore(store, 0);
      const got = await storedEventIds(counting, all, { rangeReadMin });
      expect(got.requests).toEqual(want);
      expect(got.predictions).toEqual(want);
      expect(counting.queries).toBe(queries);
    }
  });
});
