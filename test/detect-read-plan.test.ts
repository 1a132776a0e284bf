// How detection reads a window's numeric features once its row count is known (windowReadPlan): a window whose
// values fit two wide reads of 80 MiB is read in one query (each read decodes every row's whole `Map` column),
// whether the reference comes from the local cache or from the store; other windows keep reads of 80 MiB. Expected values are worked
// out by hand from the byte counts: 8 bytes per value, 80 MiB = 83,886,080 bytes.
import { describe, expect, it } from 'vitest';
import { groupWithin } from '../src/drift/exact/index.js';
import { windowReadPlan } from '../src/drift/detect-drift.js';

const MiB = 2 ** 20;

/** Features per read of `rows`-row windows under a plan (as compareSampleToReference sizes its groups). */
function perRead(rows: number, numeric: number): number {
  const plan = windowReadPlan(rows, numeric);
  return Math.min(numeric, groupWithin(plan.groupSize, plan.readBudgetBytes, rows));
}

describe('window read plan', () => {
  it('reads 1M rows × 20 features in one query', () => {
    // 160,000,000 bytes ≤ 2 × 80 MiB (167,772,160): one read of all 20, with both reads' budget.
    expect(windowReadPlan(1_000_000, 20)).toEqual({ groupSize: 20, readBudgetBytes: 160 * MiB, readAhead: 1 });
    expect(perRead(1_000_000, 20)).toBe(20);
  });

  it('keeps reads of 80 MiB, one at a time, for windows over two reads', () => {
    // 2M rows × 20 features = 320,000,000 bytes > 167,772,160: 80 MiB / 16,000,000 bytes = 5 features per read.
    expect(windowReadPlan(2_000_000, 20)).toEqual({ groupSize: 20, readBudgetBytes: 80 * MiB, readAhead: 0 });
    expect(perRead(2_000_000, 20)).toBe(5);
    // 1,048,577 rows × 20 features = 167,772,320 bytes: 160 bytes over two reads.
    expect(windowReadPlan(1_048_577, 20).readBudgetBytes).toBe(80 * MiB);
  });

  it('reads more than 20 features of a small window in groups of 20, two at once', () => {
    expect(windowReadPlan(1_000, 40)).toEqual({ groupSize: 20, readBudgetBytes: 160 * MiB, readAhead: 1 });
    expect(perRead(1_000, 40)).toBe(20);
  });
});
