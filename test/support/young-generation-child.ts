// Run by test/sidecar-young-generation.test.ts in a fresh process (`node --import tsx`): V8's
// young-generation sizing is process-wide and cannot be undone, so each case needs its own process.
//   young-generation-child.ts held|free CAP_MB [worker]
// `held`: holdYoungGeneration() first; `free`: not. Then capYoungGeneration(CAP_MB), then an allocation
// load whose survivors make V8 grow the young generation (with `worker`, after a worker thread has
// started and finished: starting one resets V8's flags). Prints one JSON line.
import { getHeapSpaceStatistics } from 'node:v8';
import { Worker } from 'node:worker_threads';
import { setImmediate as tick } from 'node:timers/promises';
import { capYoungGeneration, holdYoungGeneration } from '../../src/sidecar/young-generation.js';

const newSpaceMb = (): number =>
  (getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0) / 1024 / 1024;

const [mode, capArg, withWorker] = process.argv.slice(2);
const held = mode === 'held' ? holdYoungGeneration() : false;
const atStart = newSpaceMb();
const cap = capYoungGeneration(Number(capArg));
// What capping left, before any load of ours: a capped young generation is at its cap already.
const afterCap = newSpaceMb();
if (withWorker === 'worker') {
  const w = new Worker('let k = []; for (let i = 0; i < 1e6; i++) k.push({ i });', { eval: true });
  await new Promise((resolve) => w.once('exit', resolve));
}
let keep: { a: number; b: string }[] = [];
let peak = atStart;
// Survivors at every scavenge (up to 200k live objects) grow V8's young generation when it may grow.
for (let round = 0; round < 600; round++) {
  for (let i = 0; i < 5_000; i++) {
    keep.push({ a: i, b: `x${i}` });
    if (keep.length > 200_000) keep = [];
  }
  peak = Math.max(peak, newSpaceMb());
  // Let the gc observer run, as it does between requests.
  await tick();
}
process.stdout.write(
  `${JSON.stringify({ held, cap, atStartMb: atStart, afterCapMb: afterCap, peakMb: peak, kept: keep.length > 0 })}\n`,
);
