// Direction-only: engine and JS CPU of the event-id lookup variants (tsx, from src).
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStore, Tables } from '../../src/store/index.js';
import { storedEventIds } from '../../src/ingest/pipeline.js';

function cpu(): { main: number; other: number } {
  let main = 0,
    other = 0;
  for (const t of readdirSync('/proc/self/task')) {
    const s = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    const v = (Number(f[11]) + Number(f[12])) * 10; // ms
    if (Number(t) === process.pid) main += v;
    else other += v;
  }
  return { main, other };
}
const dir = mkdtempSync(join(tmpdir(), 'mw-lk-'));
const store = createStore({ url: `chdb:${dir}` });
await store.migrate();
const T0 = 1.7e12;
// 60k stored calls in 12 inserts (parts), like a bench case.
for (let k = 0; k < 12; k++) {
  const rows = Array.from({ length: 5000 }, (_, j) => {
    const i = k * 5000 + j;
    return {
      model: 'm',
      version: '1',
      ts: T0 + i,
      event_id: `m-ev-${i}`,
      request_id: `m-req-${i}`,
      source: 'rest',
      route: '/',
      status: 200,
      latency_ms: 1,
      request_bytes: 1,
      response_bytes: 1,
      request_truncated: false,
      response_truncated: false,
      rows: 1,
      error: '',
    };
  });
  await store.insertRequests(rows);
  await store.insertPredictions(
    rows.map((r) => ({ ...r, row: 0, features_num: { a: 1 }, features_cat: {}, outputs_num: {}, outputs_cat: {} })),
  );
}
const fresh = Array.from({ length: 5000 }, (_, j) => ({
  event_id: `m-ev-${60000 + j}`,
  model: 'm',
  ts: T0 + 60000 + j,
}));
const where = `model IN {models:Array(String)} AND ts BETWEEN fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND fromUnixTimestamp64Milli({to:Int64}, 'UTC')`;
const params = { models: ['m'], from: T0 + 60000, to: T0 + 64999 };
const variants: [string, () => Promise<unknown>][] = [
  ['current (JSON ids)', () => storedEventIds(store, fresh)],
  [
    'range only, LIMIT',
    () =>
      store.query(
        `SELECT 'requests' AS t, event_id FROM ${Tables.requests} WHERE ${where} LIMIT 20001 UNION ALL SELECT 'predictions' AS t, event_id FROM ${Tables.predictions} WHERE ${where} LIMIT 20001`,
        { params },
      ),
  ],
  [
    'range count',
    () =>
      store.query(
        `SELECT (SELECT count() FROM ${Tables.requests} WHERE ${where}) AS r, (SELECT count() FROM ${Tables.predictions} WHERE ${where}) AS p`,
        { params },
      ),
  ],
  ['SELECT 1', () => store.query('SELECT 1')],
];
for (let round = 0; round < 2; round++) {
  for (const [name, fn] of variants) {
    const c0 = cpu();
    const t = performance.now();
    for (let r = 0; r < 10; r++) await fn();
    const c1 = cpu();
    console.log(
      `${name.padEnd(22)} wall ${((performance.now() - t) / 10).toFixed(1)} ms  JS ${((c1.main - c0.main) / 10).toFixed(1)} ms  engine ${((c1.other - c0.other) / 10).toFixed(1)} ms`,
    );
  }
}
await store.close();
rmSync(dir, { recursive: true, force: true });
