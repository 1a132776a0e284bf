// Direction-only: CPU per 1-row call of the ingest pipeline (tsx, from src), JS thread vs engine threads,
// with parts switched off. Usage: npx tsx bench/ingest/profile.ts [calls]
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { encodeCapture, InProcessBus } from '../../src/bus/index.js';
import { isModelwatchError } from '../../src/common/index.js';
import { createStore } from '../../src/store/index.js';
import { IngestPipeline, type IngestPipelineOptions } from '../../src/ingest/pipeline.js';
import { createIngestMetrics } from '../../src/ingest/metrics.js';
import { call } from './calls.js';

function cpu(): { main: number; other: number } {
  let main = 0,
    other = 0;
  for (const t of readdirSync('/proc/self/task')) {
    const s = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    const v = (Number(f[11]) + Number(f[12])) * 10_000; // µs
    if (Number(t) === process.pid) main += v;
    else other += v;
  }
  return { main, other };
}
const N = Number(process.argv[2] ?? 20000);
/** `bus`: compare the in-process bus bound (16 vs 64 MiB) with a producer that backs off on bus_full, as bench/ingest.ts does. */
const MODE = process.argv[3] ?? 'parts';
const dir = mkdtempSync(join(tmpdir(), 'mw-prof-'));
// ENGINE_ARGS='["--config-file=…"]': engine (server) arguments, given by a first session at the same path.
const engineArgs = JSON.parse(process.env.ENGINE_ARGS ?? '[]') as string[];
if (engineArgs.length > 0) {
  const { Session } = createRequire(import.meta.url)('chdb') as {
    Session: new (path: string, o: { connectionArgs: string[] }) => unknown;
  };
  new Session(dir, { connectionArgs: engineArgs });
}
const store = createStore({ url: `chdb:${dir}` });
await store.migrate();
const base: [string, IngestPipelineOptions][] = [
  ['default', {}],
  ['no lookup', { eventIdLookup: false }],
  ['no payloads', { payloads: false }],
  ['no lookup, no payloads', { eventIdLookup: false, payloads: false }],
];
// A warm-up run (JIT, the engine's first inserts) is discarded; then each variant twice, interleaved.
const busBase: [string, IngestPipelineOptions][] = [
  ['bus 16 MiB', {}],
  ['bus 64 MiB', {}],
];
const chosen = MODE === 'bus' ? busBase : base;
const variants: [string, IngestPipelineOptions][] = [['warm-up (discard)', {}], ...chosen, ...chosen];
let run = 0;
for (const [name, opts] of variants) {
  const model = `${name.replace(/\W/g, '')}${run++}`;
  const msgs = Array.from({ length: N }, (_, i) => encodeCapture(call(model, i, 1, 1.7e12)));
  const busMiB = name.startsWith('bus 16') ? 16 : name.startsWith('bus 64') ? 64 : 1024;
  const bus = new InProcessBus({
    maxBatchMessages: 10000,
    lingerMessages: 1000,
    lingerMs: 1000,
    maxBufferedBytes: busMiB * 1024 * 1024,
  });
  const p = new IngestPipeline(store, createIngestMetrics(new Registry()), {
    ...opts,
    tokenPrefix: `${Math.random()}:`,
  });
  let done = 0;
  let batches = 0;
  let finish!: () => void;
  const all = new Promise<void>((r) => (finish = r));
  const c = await bus.consume({
    handler: async (b) => {
      await p.handleBatch(b);
      done += b.messages.length;
      batches++;
      if (done >= N) finish();
    },
  });
  const c0 = cpu();
  const t = performance.now();
  for (let k = 0; k < msgs.length;) {
    const part = msgs.slice(k, k + 256);
    try {
      await bus.publish(part);
      k += part.length;
    } catch (err) {
      if (!isModelwatchError(err, 'bus_full')) throw err;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  await all;
  const wall = performance.now() - t;
  const c1 = cpu();
  await c.stop();
  console.log(
    `${name.padEnd(24)} wall ${((wall * 1000) / N).toFixed(1)} µs/call  JS ${((c1.main - c0.main) / N).toFixed(1)}  engine ${((c1.other - c0.other) / N).toFixed(1)}  batches ${batches}`,
  );
}
await store.close();
rmSync(dir, { recursive: true, force: true });
