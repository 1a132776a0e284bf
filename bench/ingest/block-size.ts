// Direction-only: CPU per 1-row call of the three inserts a call makes (mw_predictions, mw_payloads,
// mw_requests, with their materialized views), by rows per insert, compiled code (dist/). `seq` runs the three
// inserts one after the other (as ingest does), `par` all three at once (chdb gained nothing from it here).
// Usage: npm run build && npx tsx bench/ingest/block-size.ts [rowsPerInsert] [seq,par]
import { mkdtempSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { shipped } from '../shipped.js';
import { call } from './calls.js';
const ingest = await shipped<typeof import('../../src/ingest/index.js')>('ingest/index.js');
const { decodeCall } = await shipped<typeof import('../../src/protocol/index.js')>('protocol/index.js');
const { defaultModelSchema } = await shipped<typeof import('../../src/config/index.js')>('config/index.js');
const { createStore, Tables } = await shipped<typeof import('../../src/store/index.js')>('store/index.js');
const store = createStore({ url: `chdb:${mkdtempSync(join(tmpdir(), 'mw-conc-'))}` });
await store.migrate();
const B = Number(process.argv[2] ?? 5000);
/** Calls per mode and repetition. */
const N = 60000;
function bodies(model: string, t0: number) {
  const p: string[] = [],
    r: string[] = [],
    y: string[] = [];
  for (let i = 0; i < N; i++) {
    const c = call(model, i, 1, t0);
    const rec = ingest.buildCallRecords(c, 'x', c.request.body, (cc) => decodeCall(cc, defaultModelSchema));
    p.push(ingest.predictionLine(rec.predictions[0]!));
    r.push(ingest.requestLine(rec.request));
    y.push(ingest.payloadLine(ingest.payloadRowOf(c, model, '1')!));
  }
  const out: Buffer[][] = [];
  for (let k = 0; k < N; k += B) out.push([p, y, r].map((l) => Buffer.from(l.slice(k, k + B).join('\n') + '\n')));
  return out;
}
const t = [Tables.predictions, 'mw_payloads', Tables.requests];
const cols = [ingest.PredictionColumns, ingest.PayloadColumns, ingest.RequestColumns];
for (let rep = 0; rep < 3; rep++)
  for (const mode of (process.argv[3] ?? 'seq,par').split(',')) {
    const bs = bodies(`${mode}${rep}`, Date.UTC(2026, 0, 1) + rep * 1e8 + (mode === 'par' ? 5e7 : 0));
    const u0 = process.cpuUsage();
    const w0 = performance.now();
    for (const b of bs) {
      if (mode === 'seq')
        for (let j = 0; j < 3; j++)
          await store.insertEncoded(t[j]!, b[j]!, {
            role: 'ingest',
            format: 'JSONCompactEachRow',
            columns: cols[j]!,
            dedupToken: `${mode}${rep}-${j}-${Math.random()}`,
          });
      else
        await Promise.all(
          [0, 1, 2].map((j) =>
            store.insertEncoded(t[j]!, b[j]!, {
              role: 'ingest',
              format: 'JSONCompactEachRow',
              columns: cols[j]!,
              dedupToken: `${mode}${rep}-${j}-${Math.random()}`,
            }),
          ),
        );
    }
    const w = performance.now() - w0;
    const u = process.cpuUsage(u0);
    console.log(
      `${mode} block ${B}: ${((w * 1000) / N).toFixed(1)} µs/call wall, ${((u.user + u.system) / N).toFixed(1)} µs CPU, load ${loadavg()[0]!.toFixed(2)}`,
    );
  }
await store.close();
