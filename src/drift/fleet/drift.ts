import { ErrorCodes, ModelwatchError, errorMessage, isModelwatchError } from '../../common/errors.js';
import type { Store } from '../../store/store.js';
import type { DriftDetection, SegmentBy, SegmentReport } from '../detect-drift.js';
import { isDetection } from '../detect-series.js';
import type { DriftReport } from '../stats/types.js';

/**
 * Computes drift of `model` over [from, to) against its reference (and per segment with `segmentBy`); null when
 * the model has no reference yet. The per-model form of the drift engine ({@link perModelDrift} adapts it to a
 * cycle).
 */
export type DriftDetectFn = (
  store: Store,
  options: {
    model: string;
    from: number;
    to: number;
    signal?: AbortSignal | undefined;
    segmentBy?: SegmentBy | undefined;
  },
) => Promise<DriftReport | DriftDetection | null>;

/** How a drift engine's answer for one model maps to a run status (see {@link driftOutcome}). */
export interface DriftOutcome {
  status: 'ok' | 'no_reference' | 'failed';
  report: DriftReport | null;
  error: string;
}

/** One model's drift in a cycle: its outcome and its segment reports (configured splits). */
export interface FleetDriftResult {
  outcome: DriftOutcome;
  segments: SegmentReport[];
}

/** What a cycle asks the drift engine: every model with rows in the window, one window. */
export interface FleetDriftRequest {
  /** Each model with its configured segment splits and its rows in the window (as counted by the cycle). */
  models: ReadonlyArray<{ model: string; splits: readonly SegmentBy[]; rows?: number | undefined }>;
  from: number;
  to: number;
  signal?: AbortSignal | undefined;
  /**
   * Tells the cycle which models the engine works on now (all of them in a batched step, one at a time in a
   * per-model loop): past the deadline exactly those are recorded `timed_out`, the others wait for the next tick.
   */
  inFlight: (models: readonly string[]) => void;
}

/**
 * The drift step of a detection cycle: drift of every requested model (absent from the answer = not computed).
 * A cancellation rejects; a model's own failure is its `failed` outcome.
 */
export type FleetDriftFn = (store: Store, request: FleetDriftRequest) => Promise<Map<string, FleetDriftResult>>;

/**
 * How a drift engine's answer maps to a run status: a report → `ok`; `null`, a `no_reference` error or a
 * `not_found` error (no reference, no traffic to take one from) → `no_reference`; anything else → `failed`.
 * The one place to adapt when the engine signals "no reference yet" differently.
 */
export function driftOutcome(
  result: { report: DriftReport | DriftDetection | null } | { error: unknown },
): DriftOutcome {
  if ('report' in result) {
    const r = result.report;
    if (r === null || (r as { status?: unknown }).status === 'no_reference')
      return { status: 'no_reference', report: null, error: '' };
    return { status: 'ok', report: r, error: '' };
  }
  const err = result.error;
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'no_reference' || isModelwatchError(err, ErrorCodes.notFound)) {
    return { status: 'no_reference', report: null, error: errorMessage(err) };
  }
  return { status: 'failed', report: null, error: errorMessage(err) };
}

/** The signal's reason as an error (a cancellation). */
export function abortError(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new ModelwatchError(ErrorCodes.cancelled, 'detection run cancelled', { cause: r });
}

/**
 * A cycle's drift step from a per-model engine: the models one after another, each in flight on its own; the
 * first split comes with the main report, each further split is one more call.
 */
export function perModelDrift(detect: DriftDetectFn): FleetDriftFn {
  return async (store, request) => {
    const { from, to, signal } = request;
    const out = new Map<string, FleetDriftResult>();
    const check = (): void => {
      if (signal?.aborted === true) throw abortError(signal);
    };
    for (const { model, splits } of request.models) {
      check();
      request.inFlight([model]);
      const segments: SegmentReport[] = [];
      let outcome: DriftOutcome;
      try {
        const report = await detect(store, { model, from, to, signal, segmentBy: splits[0] });
        outcome = driftOutcome({ report });
        if (report && isDetection(report)) segments.push(...(report.segments ?? []));
      } catch (err) {
        check();
        outcome = driftOutcome({ error: err });
      }
      check();
      // Further splits: the engine reports one split per call.
      try {
        for (const segmentBy of outcome.report ? splits.slice(1) : []) {
          const r = await detect(store, { model, from, to, signal, segmentBy });
          check();
          if (r && isDetection(r)) segments.push(...(r.segments ?? []));
        }
      } catch (err) {
        check();
        outcome = driftOutcome({ error: err });
        segments.length = 0;
      }
      out.set(model, { outcome, segments });
    }
    return out;
  };
}
