import { ErrorCodes, ModelwatchError } from '../../common/errors.js';

/** Names of the streaming change detectors. */
export const DetectorKinds = ['page_hinkley', 'adwin', 'cusum'] as const;
/** One of {@link DetectorKinds}. */
export type DetectorKind = (typeof DetectorKinds)[number];

/** Which direction of change a two-sided detector reports. */
export type DetectorMode = 'up' | 'down' | 'both';

/**
 * A change detector fed one value at a time (River's `DriftDetector` contract): `update` returns whether a
 * change was detected at this value; the detector resets itself on the next update after a detection.
 */
export interface ChangeDetector {
  readonly kind: DetectorKind;
  /** Feeds one value; true when a change is detected at it. Non-finite values are ignored (false). */
  update(x: number): boolean;
  /** Whether the last update detected a change. */
  readonly driftDetected: boolean;
  /** Values seen since the last reset. */
  readonly n: number;
  /** The detector's parameters, by their paper/River names, for storing next to a change point. */
  params(): Record<string, number | string>;
  reset(): void;
}

/** Validates a detector `mode`. */
export function checkMode(mode: string): DetectorMode {
  if (mode !== 'up' && mode !== 'down' && mode !== 'both') {
    throw new ModelwatchError(ErrorCodes.configInvalid, `mode: expected up, down or both, got ${mode}`, {
      field: 'mode',
    });
  }
  return mode;
}
