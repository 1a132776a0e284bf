// Run by test/sidecar-young-generation.test.ts in a fresh process (`node --trace-gc-nvp --import tsx`): how
// V8 scavenges is process-wide, so each case needs its own process.
//   scavenge-threads-child.ts single|parallel [worker]
// Calls scavengeOnCollectingThread (single: false, parallel: true), with `worker` starts a worker thread
// and waits for its exit (starting one resets V8's flags), prints a line `load` and then runs an allocation
// load whose survivors keep every scavenge busy; V8 prints a line per collection on stdout. Last, one JSON line.
import { Worker } from 'node:worker_threads';
import { scavengeOnCollectingThread } from '../../src/sidecar/young-generation.js';

const [mode, withWorker] = process.argv.slice(2);
const threads = scavengeOnCollectingThread(mode === 'parallel');
if (withWorker === 'worker') {
  const w = new Worker('let k = []; for (let i = 0; i < 1e6; i++) k.push({ i });', { eval: true });
  await new Promise((resolve) => w.once('exit', resolve));
}
process.stdout.write('load\n');
let keep: { a: number; b: number[] }[] = [];
for (let i = 0; i < 6_000_000; i++) {
  keep.push({ a: i, b: [i, i + 1] });
  if (keep.length > 200_000) keep = [];
}
process.stdout.write(`${JSON.stringify({ threads, kept: keep.length > 0 })}\n`);
