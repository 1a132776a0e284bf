// The sort workers' warm-up (warmUpNumericJob in src/drift/exact/job.ts, run by worker-entry.ts): after it, the
// first large jobs of a thread run compiled merge passes throughout, where a cold thread's compiled merge pass
// was left for the interpreter (a deoptimization) at its tails and at the first product past 2^31; and the
// results are the same either way.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runTsxChild } from './support/tsx-child.js';

const child = join(import.meta.dirname, 'support', 'numeric-warm-up-child.ts');

interface ChildRun {
  /** The jobs' results (the last stdout line). */
  results: string;
  /** Deoptimizations of the merge pass that V8 reported. */
  mergeDeopts: number;
}

async function runChild(mode: 'cold' | 'warm' | 'pool'): Promise<ChildRun> {
  const lines = (await runTsxChild(child, [mode], ['--trace-deopt'])).trimEnd().split('\n');
  return {
    results: lines[lines.length - 1]!,
    mergeDeopts: lines.filter((l) => l.includes('deoptimizing') && l.includes('<JSFunction compareSorted')).length,
  };
}

describe('warmUpNumericJob', () => {
  it('a cold thread deoptimizes its first large merge passes (what the warm-up is for)', async () => {
    const cold = await runChild('cold');
    expect(cold.mergeDeopts).toBeGreaterThan(0);
  }, 120_000);

  it('after the warm-up, the first large merge passes are never deoptimized, with the same results', async () => {
    const [cold, warm] = await Promise.all([runChild('cold'), runChild('warm')]);
    expect(warm.mergeDeopts).toBe(0);
    expect(warm.results).toBe(cold.results);
    expect(JSON.parse(warm.results)).toHaveLength(4);
  }, 120_000);

  it('a sort worker warms itself up before its first job', async () => {
    const [cold, pooled] = await Promise.all([runChild('cold'), runChild('pool')]);
    expect(pooled.mergeDeopts).toBe(0);
    expect(pooled.results).toBe(cold.results);
  }, 120_000);
});
