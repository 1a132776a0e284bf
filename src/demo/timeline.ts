/**
 * The demo's clock: parsing `--duration`, the detection cadence that fits it, and when each phase of
 * the story starts (warm-up, reference pinned, drift and performance drop, shadow replay, back to normal).
 */
import { ErrorCodes, ModelwatchError } from '../common/errors.js';

/** Shortest `--duration` the story fits in (warm-up, drift, detection and resolve each need a few windows). */
export const MIN_DURATION_MS = 60_000;
/** Longest `--duration`. */
export const MAX_DURATION_MS = 24 * 3_600_000;
/** Length of the story when no `--duration` is given (then baseline traffic goes on until Ctrl-C). */
export const DEFAULT_STORY_MS = 150_000;

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/**
 * Parses a `--duration` value: a number with a unit (`150s`, `2m`, `1.5m`, `90000ms`, `1h`) or a bare
 * number of milliseconds. Throws `config_invalid` naming the flag for anything else, or for a duration
 * outside {@link MIN_DURATION_MS}..{@link MAX_DURATION_MS}.
 */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(text);
  if (m === null) {
    throw new ModelwatchError(
      ErrorCodes.configInvalid,
      `--duration: expected a duration such as 150s, 2m or 90000 (milliseconds), got "${text}"`,
      { field: 'duration' },
    );
  }
  const unit = (m[2] ?? 'ms').toLowerCase();
  const ms = Math.round(Number(m[1]) * (UNITS[unit] ?? 1));
  if (ms < MIN_DURATION_MS || ms > MAX_DURATION_MS) {
    const hint =
      m[2] === undefined && ms < MIN_DURATION_MS ? ` (a bare number is milliseconds: did you mean ${m[1]}s?)` : '';
    throw new ModelwatchError(
      ErrorCodes.configInvalid,
      `--duration: must be between ${MIN_DURATION_MS / 1000}s and ${MAX_DURATION_MS / 3_600_000}h, got "${text}"${hint}`,
      { field: 'duration' },
    );
  }
  return ms;
}

/** Detection cadence of the demo. */
export interface DemoCadence {
  /** Time between detection runs. */
  intervalMs: number;
  /** Window each run compares with the reference. */
  windowMs: number;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

/**
 * The detection cadence for a story of `storyMs`: a window of 15% of the story (10–30 s, whole seconds)
 * so drift shows within a few seconds of its start and clears before the end, and a run every quarter
 * window (2–5 s).
 */
export function cadenceFor(storyMs: number): DemoCadence {
  const windowMs = Math.floor(clamp(storyMs * 0.15, 10_000, 30_000) / 1000) * 1000;
  const intervalMs = Math.round(clamp(windowMs / 4, 2_000, 5_000) / 1000) * 1000;
  return { intervalMs, windowMs };
}

/** When each phase starts, in ms after the story starts. */
export interface DemoTimeline {
  /** Warm-up ends and the reference is pinned over the warm-up traffic. */
  pinAt: number;
  /** Drift and the performance drop are injected. */
  driftAt: number;
  /** A shadow replay of the candidate model is started. */
  shadowAt: number;
  /** Traffic returns to normal. */
  normalAt: number;
  /** The story ends (the command exits with `--duration`; otherwise baseline traffic goes on). */
  endAt: number;
}

/**
 * Phases scaled to a story of `storyMs`: warm-up until 25%, drift injected at 40%, a shadow replay at
 * 55%, back to normal at 72% (so the last windows see normal traffic again before the end).
 */
export function timelineFor(storyMs: number): DemoTimeline {
  const at = (f: number): number => Math.round(storyMs * f);
  return { pinAt: at(0.25), driftAt: at(0.4), shadowAt: at(0.55), normalAt: at(0.72), endAt: storyMs };
}
