import { ErrorCodes, ModelwatchError } from '../../common/errors.js';
import type { ChangeDetector } from './types.js';

/** Options of {@link Adwin}; names and defaults as River's `drift.ADWIN`. */
export interface AdwinOptions {
  /** Confidence δ of the cut test (smaller = fewer false alarms, slower detection). @default 0.002 */
  delta?: number;
  /** The window is checked for a cut every `clock` values. @default 32 */
  clock?: number;
  /** Buckets kept per size row of the exponential histogram (M in the paper). @default 5 */
  max_buckets?: number;
  /** Both sub-windows of a cut must hold at least this many values. @default 5 */
  min_window_length?: number;
  /** No cut is checked before the window holds more than this many values. @default 10 */
  grace_period?: number;
}

const defaults = {
  delta: 0.002,
  clock: 32,
  max_buckets: 5,
  min_window_length: 5,
  grace_period: 10,
} satisfies Required<AdwinOptions>;

interface Bucket {
  total: number;
  /** Σ (x − mean)² of the bucket's values. */
  variance: number;
}

/**
 * ADWIN2 (Bifet & Gavaldà 2007, "Learning from time-changing data with adaptive windowing"): a window kept as
 * an exponential histogram (rows of buckets of 2^i values, at most `max_buckets` per row); every `clock` values,
 * each split into an older and a newer part is tested, and while some split's means differ by more than
 * ε = √(2 m⁻¹ σ²_W δ′) + (2/3) δ′ m⁻¹ (δ′ = ln(2 ln|W| / δ), m⁻¹ = 1/(n₀ − L + 1) + 1/(n₁ − L + 1),
 * L = `min_window_length`, as River computes it) the oldest bucket is dropped and a change is reported.
 * Not checked value-for-value against River (not installable here); tested by its properties.
 */
export class Adwin implements ChangeDetector {
  readonly kind = 'adwin' as const;
  private readonly o: Required<AdwinOptions>;
  /** rows[i]: buckets of 2^i values, oldest first. */
  private rows: Bucket[][] = [[]];
  private total = 0;
  private variance = 0;
  private count = 0;
  private tick = 0;
  private detected = false;
  private detections = 0;

  constructor(options: AdwinOptions = {}) {
    this.o = { ...defaults, ...options };
    const { delta, clock, max_buckets, min_window_length, grace_period } = this.o;
    if (!(delta > 0 && delta < 1)) throw invalid('delta', 'in (0, 1)');
    for (const [k, v] of Object.entries({ clock, max_buckets, min_window_length })) {
      if (!Number.isInteger(v) || v < 1) throw invalid(k, 'a positive integer');
    }
    if (!Number.isInteger(grace_period) || grace_period < 0) throw invalid('grace_period', 'a non-negative integer');
  }

  get driftDetected(): boolean {
    return this.detected;
  }

  /** Current window length. */
  get n(): number {
    return this.count;
  }

  /** Mean of the current window. */
  get estimation(): number {
    return this.count === 0 ? 0 : this.total / this.count;
  }

  /** Changes detected since construction. */
  get nDetections(): number {
    return this.detections;
  }

  params(): Record<string, number | string> {
    return { ...this.o };
  }

  reset(): void {
    this.rows = [[]];
    this.total = 0;
    this.variance = 0;
    this.count = 0;
    this.tick = 0;
    this.detected = false;
  }

  update(x: number): boolean {
    // Unlike the other detectors ADWIN keeps its (already shrunk) window after a detection.
    this.detected = false;
    if (!Number.isFinite(x)) return false;
    this.insert(x);
    this.tick++;
    if (this.tick % this.o.clock === 0 && this.count > this.o.grace_period) this.detected = this.shrink();
    if (this.detected) this.detections++;
    return this.detected;
  }

  private insert(x: number): void {
    this.count++;
    if (this.count > 1) {
      const prevMean = this.total / (this.count - 1);
      this.variance += ((this.count - 1) * (x - prevMean) * (x - prevMean)) / this.count;
    }
    this.total += x;
    this.rows[0]?.push({ total: x, variance: 0 });
    for (let i = 0; i < this.rows.length; i++) {
      const row = this.rows[i] ?? [];
      if (row.length <= this.o.max_buckets) break;
      const a = row.shift();
      const b = row.shift();
      if (!a || !b) break;
      const size = 2 ** i;
      const d = a.total / size - b.total / size;
      const merged = {
        total: a.total + b.total,
        variance: a.variance + b.variance + (size * size * d * d) / (2 * size),
      };
      if (this.rows[i + 1] === undefined) this.rows.push([]);
      this.rows[i + 1]?.push(merged);
    }
  }

  private dropOldest(): void {
    for (let i = this.rows.length - 1; i >= 0; i--) {
      const row = this.rows[i];
      const bucket = row?.shift();
      if (!row || !bucket) continue;
      const size = 2 ** i;
      this.count -= size;
      this.total -= bucket.total;
      const mu = bucket.total / size;
      const muWindow = this.count === 0 ? 0 : this.total / this.count;
      this.variance -= bucket.variance + (size * this.count * (mu - muWindow) * (mu - muWindow)) / (size + this.count);
      if (this.variance < 0) this.variance = 0;
      if (row.length === 0 && i === this.rows.length - 1 && i > 0) this.rows.pop();
      return;
    }
  }

  /** Drops old buckets while some cut shows a change; true when at least one did. */
  private shrink(): boolean {
    let changed = false;
    for (;;) {
      let cut = false;
      let n0 = 0;
      let u0 = 0;
      const L = this.o.min_window_length;
      // Buckets from oldest (largest row, front) to newest; W0 = the older prefix, W1 = the rest.
      outer: for (let i = this.rows.length - 1; i >= 0; i--) {
        const size = 2 ** i;
        for (const b of this.rows[i] ?? []) {
          n0 += size;
          u0 += b.total;
          const n1 = this.count - n0;
          if (n1 <= 0) break outer;
          if (n0 < L || n1 < L) continue;
          const diff = u0 / n0 - (this.total - u0) / n1;
          if (Math.abs(diff) > this.epsilon(n0, n1)) {
            cut = true;
            break outer;
          }
        }
      }
      if (!cut) return changed;
      changed = true;
      this.dropOldest();
    }
  }

  private epsilon(n0: number, n1: number): number {
    const L = this.o.min_window_length;
    const deltaPrime = Math.log((2 * Math.log(this.count)) / this.o.delta);
    const mRecip = 1 / (n0 - L + 1) + 1 / (n1 - L + 1);
    const varianceInWindow = this.variance / this.count;
    return Math.sqrt(2 * mRecip * varianceInWindow * deltaPrime) + (2 / 3) * deltaPrime * mRecip;
  }
}

function invalid(field: string, expected: string): ModelwatchError {
  return new ModelwatchError(ErrorCodes.configInvalid, `ADWIN ${field}: must be ${expected}`, { field });
}
