// A child process for test/references-cli.test.ts: chdb allows one engine per process, so the test itself never
// opens the store the `modelwatch reference` CLI uses; it runs this script (through tsx) before and after it.
//   insert DIR MODEL START_MS  → stores the traffic_base, traffic_shift and current fixture rows
//   drift DIR MODEL FROM TO NOW → prints detectDrift's JSON
import { configSchema } from '../../src/config/index.js';
import { detectDrift } from '../../src/drift/index.js';
import { createStore } from '../../src/store/index.js';
import { fixtureRows, trafficRows } from './reference-fixtures.js';

const [mode, dir, model, ...rest] = process.argv.slice(2);
const store = createStore({ url: `chdb:${dir}` });
await store.migrate();
try {
  if (mode === 'insert') {
    const start = Number(rest[0]);
    const HOUR = 3_600_000;
    for (const [name, at] of [
      ['traffic_base', start],
      ['traffic_shift', start + HOUR],
      ['current', start + 5 * HOUR],
    ] as const) {
      const t = trafficRows(model ?? '', fixtureRows(name), at, 1_000, name);
      await store.insertPredictions(t.predictions);
      await store.insertRequests(t.requests);
    }
  } else if (mode === 'drift') {
    const [from, to, now] = rest.map(Number);
    const config = configSchema.parse({ detect: { reference: { rows: 500 } } });
    const d = await detectDrift(store, { model: model ?? '', from: from ?? 0, to: to ?? 0, now, config });
    process.stdout.write(JSON.stringify(d));
  } else {
    throw new Error(`unknown mode ${String(mode)}`);
  }
} finally {
  await store.close();
}
