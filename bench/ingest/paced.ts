// Direction-only: ingest's share of `modelwatch up`'s CPU per captured 1-row call at a fixed rate (tsx, from
// src): 1-row calls published into the in-process bus as the runtime makes it (inProcessBusOptions), paced at
// RATE calls/s for SECONDS, CPU per call of the JavaScript thread and of the engine's threads (/proc), idle
// engine CPU measured first and reported apart. Usage: npx tsx bench/ingest/paced.ts [rate] [seconds]
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { encodeCapture, InProcessBus } from '../../src/bus/index.js';
import { configSchema } from '../../src/config/index.js';
import { silentLogger } from '../../src/common/index.js';
import { startIngest } from '../../src/ingest/index.js';
import { inProcessBusOptions } from '../../src/runtime/index.js';
import { createStore } from '../../src/store/index.js';
import { call } from './calls.js';

/** Engine CPU by thread name, µs (filled by every cpu() call: the last one wins). */
let byName: Record<string, number> = {};

function cpu(): { main: number; other: number } {
  let main = 0;
  let other = 0;
  byName = {};
  for (const t of readdirSync('/proc/self/task')) {
    const s = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    const v = (Number(f[11]) + Number(f[12])) * 10_000; // µs
    if (Number(t) === process.pid) main += v;
    else {
      other += v;
      const name = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
      byName[name] = (byName[name] ?? 0) + v;
    }
  }
  return { main, other };
}

const RATE = Number(process.argv[2] ?? 1000);
const SECONDS = Number(process.argv[3] ?? 10);
const dir = mkdtempSync(join(tmpdir(), 'mw-paced-'));
// ENGINE_MERGE_TREE='{"merge_selector_base":10}': MergeTree settings of the engine's config file (over the defaults).
const mergeTree = JSON.parse(process.env.ENGINE_MERGE_TREE ?? '{}') as Record<string, number>;
const store = createStore({ url: `chdb:${dir}`, engine: { mergeTree } });
await store.migrate();
// PACED_INGEST: JSON of the `ingest` config section to try (e.g. a longer linger).
const config = configSchema.parse({
  logLevel: 'silent',
  ingest: JSON.parse(process.env.PACED_INGEST ?? '{}') as unknown,
});
const bus = new InProcessBus(inProcessBusOptions(config));
const registry = new Registry();
// PACED_SETTINGS='{"input_format_parallel_parsing":0}': ClickHouse settings added to ingest's statements.
const settings = JSON.parse(process.env.PACED_SETTINGS ?? '{}') as Record<string, number | string>;
const role = await startIngest({
  config,
  store: store.with({ settings }),
  bus,
  logger: silentLogger,
  metrics: registry,
});
await role.ready;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
await sleep(1000);
const i0 = cpu();
await sleep(3000);
const i1 = cpu();
const idle = (i1.other - i0.other) / 3;
const n = RATE * SECONDS;
const c0 = cpu();
const names0 = byName;
const t0 = performance.now();
for (let i = 0; i < n;) {
  // Publish what is due every 10 ms, as a tee of a proxy at RATE req/s would.
  const due = Math.min(n, Math.floor(((performance.now() - t0) / 1000) * RATE));
  const part = [];
  for (; i < due; i++) part.push(encodeCapture(call('paced', i, 1, Date.UTC(2026, 0, 1) + i)));
  if (part.length > 0) await bus.publish(part);
  await sleep(10);
}
const rows = async (): Promise<number> => {
  const v = await registry.getSingleMetric('modelwatch_ingest_rows_inserted_total')?.get();
  return v?.values.reduce((a, x) => a + x.value, 0) ?? 0;
};
while ((await rows()) < n) await sleep(20);
const wall = (performance.now() - t0) / 1000;
const c1 = cpu();
const batches = (await registry.getSingleMetric('modelwatch_ingest_batches_total')?.get())?.values[0]?.value ?? 0;
console.log(
  `${n} calls at ${RATE}/s: ${wall.toFixed(1)} s, ${batches} batches; CPU per call: JS ${((c1.main - c0.main) / n).toFixed(0)} µs, engine ${((c1.other - c0.other) / n).toFixed(0)} µs (of which idle engine ${((idle * wall) / n).toFixed(0)} µs)`,
);
const perThread = Object.entries(byName)
  .map(([k, v]) => [k, Math.round((v - (names0[k] ?? 0)) / n)] as const)
  .filter(([, v]) => v > 0)
  .sort((a, b) => b[1] - a[1]);
console.log(`engine µs per call by thread: ${perThread.map(([k, v]) => `${k} ${v}`).join(', ')}`);
await role.stop();
await store.close();
rmSync(dir, { recursive: true, force: true });
