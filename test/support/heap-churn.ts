// Child process of test/ingest-heap-growth.test.ts: keeps a steady live set and churns short-lived objects
// (as a backlog does), then prints the JavaScript heap's live size and its peak, in bytes, as JSON.
// argv[2]: 'plain' (nothing set), 'ingest' (the ingest role started first, then a worker thread).
import { Worker } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { InProcessBus } from '../../src/bus/index.js';
import { silentLogger } from '../../src/common/index.js';
import { configSchema } from '../../src/config/index.js';
import { startIngest } from '../../src/ingest/index.js';
import { createStore } from '../../src/store/index.js';

const mode = process.argv[2];
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');
let stop = (): Promise<void> => Promise.resolve();
if (mode === 'ingest') {
  const config = configSchema.parse({ logLevel: 'silent' });
  const store = createStore({ url: 'chdb::memory:' });
  const bus = new InProcessBus({ maxBufferedBytes: 1 << 20 });
  const role = await startIngest({ config, store, bus, logger: silentLogger, metrics: new Registry() });
  // A worker thread started after ingest (the flag is process-wide and must survive it).
  const worker = new Worker('setTimeout(() => {}, 1)', { eval: true });
  await new Promise((resolve) => worker.once('exit', resolve));
  stop = async () => {
    await role.stop();
    await store.close();
  };
}
const live: { a: string; b: number[] }[] = [];
for (let i = 0; i < 400_000; i++) live.push({ a: `live-${i}`, b: [i, i + 1] });
gc();
const liveBytes = process.memoryUsage().heapUsed;
let peak = 0;
let junk: { s: string; n: number[] }[] = [];
for (let round = 0; round < 300; round++) {
  for (let i = 0; i < 20_000; i++) junk.push({ s: `junk-${i}-${round}`, n: [i] });
  if (junk.length > 100_000) junk = [];
  peak = Math.max(peak, process.memoryUsage().heapUsed);
}
console.log(JSON.stringify({ liveBytes, peakBytes: peak, kept: live.length + junk.length }));
await stop();
