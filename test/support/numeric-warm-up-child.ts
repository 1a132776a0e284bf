// Run by test/drift-exact-warm-up.test.ts in a fresh process (`node --trace-deopt --import tsx`): V8's type
// feedback and compiled code are per process (per thread), so each case needs its own.
//   numeric-warm-up-child.ts cold|warm|pool
// Runs four numeric jobs of 1M values per side (a sorted reference in a SharedArrayBuffer, as read from the
// store, against raw values with NaN and ±Inf; the upper tail on either side in turn): `cold` on this thread
// as it starts, `warm` on this thread after warmUpNumericJob(), `pool` in a SortPool worker (which warms itself
// up at start-up). Prints one JSON line with the jobs' comparisons; V8 prints its deoptimizations to stdout.
import { runNumericJob, warmUpNumericJob, type NumericJobInput } from '../../src/drift/exact/job.js';
import { SortPool } from '../../src/drift/exact/pool.js';
import { gaussian, mulberry32 } from './seeded-prng.js';

const N = 1_000_000;
const mode = process.argv[2];

function input(seed: number, shift: number): NumericJobInput {
  const g = gaussian(mulberry32(seed));
  // Rounded to 3 decimals: ties on both sides and across them.
  const ref = Float64Array.from({ length: N }, () => Math.round(g() * 1000) / 1000).sort();
  const sorted = new Float64Array(new SharedArrayBuffer(8 * N));
  sorted.set(ref);
  const raw = Float64Array.from({ length: N }, (_, i) =>
    i % 9973 === 0 ? Number.NaN : i % 99991 === 0 ? Number.POSITIVE_INFINITY : Math.round((g() + shift) * 1000) / 1000,
  );
  return {
    reference: { sorted, missing: 0, nonFinite: 0 },
    current: { raw },
    fixed: { edges: [-1, 0, 1], std: 1, min: sorted[0], max: sorted[N - 1], distinct: 6 },
  };
}

if (mode === 'warm') warmUpNumericJob();
const pool = mode === 'pool' ? new SortPool(1) : undefined;
const out: unknown[] = [];
for (const [seed, shift] of [
  [1, 0.25],
  [2, -0.25],
  [3, 0.5],
  [4, -0.5],
] as const) {
  const job = input(seed, shift);
  const result = pool !== undefined ? await pool.run(job) : runNumericJob(job);
  out.push({ current: result.current, comparison: result.comparison });
}
await pool?.close();
process.stdout.write(`${JSON.stringify(out)}\n`);
