// The worker pool's queue depth (src/common/task-pool.ts): a worker of the exact drift engine's SortPool holds
// up to two jobs at once, so it starts the next one without waiting for the main thread to hear of the last.
// Real worker threads; the expected values are computed here with Array sort and Math.min/max.
import { describe, expect, it } from 'vitest';
import { SORT_POOL_DEPTH, SortPool } from '../src/drift/exact/pool.js';

/** Values with NaN (missing) and ±Inf (non-finite) mixed in, deterministic. */
function valuesOf(seed: number, n: number): Float64Array {
  const out = new Float64Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out[i] = i % 97 === 0 ? Number.NaN : i % 89 === 0 ? Number.POSITIVE_INFINITY : (x / 2147483648) * 200 - 100;
  }
  return out;
}

function expectedOf(values: Float64Array): { sorted: number[]; missing: number; nonFinite: number } {
  const finite = Array.from(values).filter((v) => Number.isFinite(v));
  return {
    sorted: finite.sort((a, b) => a - b),
    missing: Array.from(values).filter((v) => Number.isNaN(v)).length,
    nonFinite: Array.from(values).filter((v) => v === Number.POSITIVE_INFINITY || v === Number.NEGATIVE_INFINITY)
      .length,
  };
}

describe('sort pool queue depth', () => {
  it('a worker is handed its next job before it answers the last; each answer goes to its own job', async () => {
    expect(SORT_POOL_DEPTH).toBe(2);
    const pool = new SortPool(1);
    try {
      const inputs = [1, 2, 3].map((seed) => valuesOf(seed, 50_000 + seed * 1000));
      const expected = inputs.map(expectedOf);
      const runs = inputs.map((raw) => pool.run({ reference: { raw }, keepSorted: true }));
      // Two jobs posted to the one worker, the third waits here.
      expect(pool.held()).toEqual([2]);
      const outs = await Promise.all(runs);
      outs.forEach((out, i) => {
        const e = expected[i]!;
        expect(Array.from(out.sortedReference!)).toEqual(e.sorted);
        expect(out.reference.n).toBe(e.sorted.length);
        expect(out.reference.missing).toBe(e.missing);
        expect(out.reference.nonFinite).toBe(e.nonFinite);
        expect(out.reference.summary.min).toBe(e.sorted[0]);
        expect(out.reference.summary.max).toBe(e.sorted[e.sorted.length - 1]);
      });
      expect(pool.held()).toEqual([0]);
    } finally {
      await pool.close();
    }
  }, 60_000);

  it('an idle worker gets a job before a busy one gets its second', async () => {
    const pool = new SortPool(2);
    try {
      const runs = [pool.run({ reference: { raw: valuesOf(7, 10_000) } })];
      expect(pool.held()).toEqual([1]);
      runs.push(pool.run({ reference: { raw: valuesOf(8, 10_000) } }));
      expect(pool.held()).toEqual([1, 1]);
      runs.push(pool.run({ reference: { raw: valuesOf(9, 10_000) } }));
      expect(pool.held()).toEqual([2, 1]);
      runs.push(pool.run({ reference: { raw: valuesOf(10, 10_000) } }));
      runs.push(pool.run({ reference: { raw: valuesOf(11, 10_000) } }));
      expect(pool.held()).toEqual([2, 2]);
      const outs = await Promise.all(runs);
      expect(outs.map((o) => o.reference.n)).toEqual(
        [7, 8, 9, 10, 11].map((seed) => expectedOf(valuesOf(seed, 10_000)).sorted.length),
      );
    } finally {
      await pool.close();
    }
  }, 60_000);

  it('a worker that stops rejects every job it holds', async () => {
    const pool = new SortPool(1);
    const runs = [1, 2].map((seed) => pool.run({ reference: { raw: valuesOf(seed, 400_000) } }));
    expect(pool.held()).toEqual([2]);
    await pool.close();
    const settled = await Promise.allSettled(runs);
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected']);
    for (const s of settled) expect((s as PromiseRejectedResult).reason).toMatchObject({ code: 'internal' });
  }, 60_000);
});
