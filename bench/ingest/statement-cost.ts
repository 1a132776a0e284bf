// Direction-only: the fixed engine cost of one insert statement per ingest table, from 300 one-row inserts
// each (CPU of the whole process per statement), into the real tables and into copies without their
// materialized views, without the dedup token, and without the dedup window; compiled code (dist/).
// Usage: npm run build && npx tsx bench/ingest/statement-cost.ts
import { mkdtempSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { shipped } from '../shipped.js';
import { call } from './calls.js';
const ingest = await shipped<typeof import('../../src/ingest/index.js')>('ingest/index.js');
const { decodeCall } = await shipped<typeof import('../../src/protocol/index.js')>('protocol/index.js');
const { defaultModelSchema } = await shipped<typeof import('../../src/config/index.js')>('config/index.js');
const { createStore, Tables } = await shipped<typeof import('../../src/store/index.js')>('store/index.js');
const store = createStore({ url: `chdb:${mkdtempSync(join(tmpdir(), 'mw-fixed-'))}` });
await store.migrate();
await store.command(`CREATE TABLE p_nomv AS ${Tables.predictions}`);
await store.command(`CREATE TABLE r_nomv AS ${Tables.requests}`);
await store.command(`CREATE TABLE p_nodedup AS ${Tables.predictions}`);
await store.command(`ALTER TABLE p_nodedup MODIFY SETTING non_replicated_deduplication_window = 0`);
const M = 300;
const c = call('m', 1, 1, Date.UTC(2026, 0, 1));
const rec = ingest.buildCallRecords(c, 'x', c.request.body, (cc) => decodeCall(cc, defaultModelSchema));
const lines = {
  p: ingest.predictionLine(rec.predictions[0]!),
  r: ingest.requestLine(rec.request),
  y: ingest.payloadLine(ingest.payloadRowOf(c, 'm', '1')!),
};
const cases: [string, string, 'p' | 'r' | 'y', boolean][] = [
  ['pred', Tables.predictions, 'p', true],
  ['pred no MV', 'p_nomv', 'p', true],
  ['pred no MV no token', 'p_nomv', 'p', false],
  ['pred no dedup window', 'p_nodedup', 'p', false],
  ['req', Tables.requests, 'r', true],
  ['req no MV', 'r_nomv', 'r', true],
  ['payloads', 'mw_payloads', 'y', true],
];
for (let rep = 0; rep < 2; rep++)
  for (const [label, table, k, tok] of cases) {
    const cols = k === 'p' ? ingest.PredictionColumns : k === 'r' ? ingest.RequestColumns : ingest.PayloadColumns;
    const body = Buffer.from(lines[k] + '\n');
    const u0 = process.cpuUsage();
    const w0 = performance.now();
    for (let i = 0; i < M; i++)
      await store.insertEncoded(table, body, {
        role: 'ingest',
        format: 'JSONCompactEachRow',
        columns: cols,
        ...(tok ? { dedupToken: `${rep}-${label}-${i}` } : {}),
      });
    const u = process.cpuUsage(u0);
    console.log(
      `${label.padEnd(22)} ${((performance.now() - w0) / M).toFixed(2)} ms wall, ${((u.user + u.system) / M / 1000).toFixed(2)} ms CPU per 1-row insert; load ${loadavg()[0]!.toFixed(1)}`,
    );
  }
await store.close();
