/**
 * The fleet's comparison of one model's window against its sorted reference, as a self-contained function that
 * runs on the calling thread or in a fleet worker ({@link FleetComparePool}): the exact engine's
 * `compareToReference`, with each numeric feature's job computed by the engine's `runNumericJob` on the
 * thread it runs on.
 */
import type { DriftReport, DriftOverrides, FeatureSpec } from '../stats/types.js';
import { compareToReference, SortPool, type CurrentWindow, type SortedReference } from '../exact/index.js';
import { runNumericJob, type NumericJobInput, type NumericJobOutput } from '../exact/job.js';

/** A "pool" that runs each job on the calling thread with the engine's `runNumericJob` (never starts a worker). */
class InlinePool extends SortPool {
  constructor() {
    super(1);
  }

  override run(input: NumericJobInput): Promise<NumericJobOutput> {
    try {
      return Promise.resolve(runNumericJob(input));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  override close(): Promise<void> {
    return Promise.resolve();
  }
}

const inline = new InlinePool();

/** One model's comparison: what {@link compareModel} needs. */
export interface ModelComparison {
  reference: SortedReference;
  current: CurrentWindow;
  features: FeatureSpec[];
  overrides: DriftOverrides | undefined;
  datasetShare: number;
  fdr: boolean;
}

/** The drift report of one model's window against its sorted reference, on the calling thread. */
export function compareModel(c: ModelComparison): Promise<DriftReport> {
  return compareToReference({
    reference: c.reference,
    current: c.current,
    features: c.features,
    overrides: c.overrides,
    datasetShare: c.datasetShare,
    fdr: c.fdr,
    pool: inline,
    inlineMaxValues: 0,
  });
}
