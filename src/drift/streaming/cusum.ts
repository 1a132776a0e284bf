import { ErrorCodes, ModelwatchError } from '../../common/errors.js';
import { checkMode, type ChangeDetector, type DetectorMode } from './types.js';

/** Options of {@link Cusum}; names and defaults as River's `drift.CUSUM` (k = `slack`, h = `threshold`). */
export interface CusumOptions {
  /** Warm-up values over which the reference mean and standard deviation are estimated, then frozen. @default 30 */
  min_instances?: number;
  /** k, the slack, in reference standard deviations. @default 0.5 */
  slack?: number;
  /** h, the decision interval, in reference standard deviations. @default 5 */
  threshold?: number;
  /** Detect increases (`up`), decreases (`down`) or both. @default 'both' */
  mode?: DetectorMode;
}

const defaults = { min_instances: 30, slack: 0.5, threshold: 5, mode: 'both' } satisfies Required<CusumOptions>;

/**
 * Tabular two-sided CUSUM (Page 1954): S⁺ = max(0, S⁺ + (x − μ₀) − kσ), S⁻ = max(0, S⁻ − (x − μ₀) − kσ),
 * change when either exceeds hσ; μ₀ and σ (sample sd, ddof 1) are frozen after the warm-up, as River does.
 * At k = 0.5, h = 5 the in-control average run length is a few hundred values; raise h for long streams
 * (Siegmund's approximation: ARL₀ ≈ (e^{2k(h+1.166)} − 2k(h+1.166) − 1) / 2k² per side).
 */
export class Cusum implements ChangeDetector {
  readonly kind = 'cusum' as const;
  private readonly o: Required<CusumOptions>;
  private count = 0;
  private mean = 0;
  private m2 = 0;
  private reference: number | null = null;
  private sigma = 0;
  private sumIncrease = 0;
  private sumDecrease = 0;
  private detected = false;

  constructor(options: CusumOptions = {}) {
    this.o = { ...defaults, ...options };
    const { min_instances, slack, threshold } = this.o;
    if (!Number.isInteger(min_instances) || min_instances < 1) throw invalid('min_instances', 'a positive integer');
    if (!(slack >= 0)) throw invalid('slack', '≥ 0');
    if (!(threshold > 0)) throw invalid('threshold', '> 0');
    this.o.mode = checkMode(this.o.mode);
  }

  get driftDetected(): boolean {
    return this.detected;
  }

  get n(): number {
    return this.count;
  }

  /**
   * The CUSUM sums after the last update (`increase` = S⁺, `decrease` = S⁻, in the series' units; a change
   * when one exceeds `threshold` × `sigma`) and the reference frozen after the warm-up (null before).
   */
  get statistics(): { increase: number; decrease: number; reference: number | null; sigma: number } {
    return { increase: this.sumIncrease, decrease: this.sumDecrease, reference: this.reference, sigma: this.sigma };
  }

  params(): Record<string, number | string> {
    return { ...this.o };
  }

  reset(): void {
    this.count = 0;
    this.mean = 0;
    this.m2 = 0;
    this.reference = null;
    this.sigma = 0;
    this.sumIncrease = 0;
    this.sumDecrease = 0;
    this.detected = false;
  }

  update(x: number): boolean {
    if (this.detected) this.reset();
    if (!Number.isFinite(x)) return false;
    this.count++;
    if (this.reference === null) {
      // Welford's running mean and variance over the warm-up.
      const d = x - this.mean;
      this.mean += d / this.count;
      this.m2 += d * (x - this.mean);
      if (this.count < this.o.min_instances) return false;
      this.reference = this.mean;
      this.sigma = this.count > 1 ? Math.sqrt(this.m2 / (this.count - 1)) : 0;
    }
    const k = this.o.slack * this.sigma;
    const h = this.o.threshold * this.sigma;
    const dev = x - this.reference;
    this.sumIncrease = Math.max(0, this.sumIncrease + dev - k);
    this.sumDecrease = Math.max(0, this.sumDecrease - dev - k);
    const up = this.sumIncrease > h;
    const down = this.sumDecrease > h;
    this.detected = this.o.mode === 'up' ? up : this.o.mode === 'down' ? down : up || down;
    return this.detected;
  }
}

function invalid(field: string, expected: string): ModelwatchError {
  return new ModelwatchError(ErrorCodes.configInvalid, `CUSUM ${field}: must be ${expected}`, { field });
}
