import { ErrorCodes, ModelwatchError } from '../../common/errors.js';
import { checkMode, type ChangeDetector, type DetectorMode } from './types.js';

/** Options of {@link PageHinkley}; names and defaults as River's `drift.PageHinkley`. */
export interface PageHinkleyOptions {
  /** Values seen before a change may be reported. @default 30 */
  min_instances?: number;
  /** δ, the magnitude of change tolerated, in the series' units. @default 0.005 */
  delta?: number;
  /** λ, the detection threshold, in units × samples. @default 50 */
  threshold?: number;
  /** Forgetting factor applied to the cumulative sums. @default 0.9999 */
  alpha?: number;
  /** Detect increases (`up`), decreases (`down`) or both. @default 'both' */
  mode?: DetectorMode;
}

const defaults = {
  min_instances: 30,
  delta: 0.005,
  threshold: 50,
  alpha: 1 - 0.0001,
  mode: 'both',
} satisfies Required<PageHinkleyOptions>;

/**
 * Page–Hinkley test (Page 1954; Mouss et al. 2004) in River's formulation: the deviation of each value from
 * the running mean (including the value) accumulates with forgetting factor `alpha` into an increase sum
 * (minus δ) and a decrease sum (plus δ); a change is reported when either sum departs from its extreme by
 * more than `threshold`. Not checked value-for-value against River (not installable here); tested by its
 * properties (detection delay, false-alarm rate).
 */
export class PageHinkley implements ChangeDetector {
  readonly kind = 'page_hinkley' as const;
  private readonly o: Required<PageHinkleyOptions>;
  private count = 0;
  private mean = 0;
  private sumIncrease = 0;
  private sumDecrease = 0;
  private minIncrease = Infinity;
  private maxDecrease = -Infinity;
  private detected = false;

  constructor(options: PageHinkleyOptions = {}) {
    this.o = { ...defaults, ...options };
    const { min_instances, delta, threshold, alpha } = this.o;
    if (!Number.isInteger(min_instances) || min_instances < 1) throw invalid('min_instances', 'a positive integer');
    if (!(delta >= 0)) throw invalid('delta', '≥ 0');
    if (!(threshold > 0)) throw invalid('threshold', '> 0');
    if (!(alpha > 0 && alpha <= 1)) throw invalid('alpha', 'in (0, 1]');
    this.o.mode = checkMode(this.o.mode);
  }

  get driftDetected(): boolean {
    return this.detected;
  }

  get n(): number {
    return this.count;
  }

  /**
   * The two test statistics after the last update: `increase` = S⁺ − min S⁺ (compared with `threshold` in
   * mode up), `decrease` = max S⁻ − S⁻ (mode down); 0 before the first value.
   */
  get statistics(): { increase: number; decrease: number } {
    if (this.count === 0) return { increase: 0, decrease: 0 };
    return { increase: this.sumIncrease - this.minIncrease, decrease: this.maxDecrease - this.sumDecrease };
  }

  params(): Record<string, number | string> {
    return { ...this.o };
  }

  reset(): void {
    this.count = 0;
    this.mean = 0;
    this.sumIncrease = 0;
    this.sumDecrease = 0;
    this.minIncrease = Infinity;
    this.maxDecrease = -Infinity;
    this.detected = false;
  }

  update(x: number): boolean {
    if (this.detected) this.reset();
    if (!Number.isFinite(x)) return false;
    this.count++;
    this.mean += (x - this.mean) / this.count;
    const dev = x - this.mean;
    this.sumIncrease = this.o.alpha * this.sumIncrease + dev - this.o.delta;
    this.sumDecrease = this.o.alpha * this.sumDecrease + dev + this.o.delta;
    if (this.sumIncrease < this.minIncrease) this.minIncrease = this.sumIncrease;
    if (this.sumDecrease > this.maxDecrease) this.maxDecrease = this.sumDecrease;
    if (this.count >= this.o.min_instances) {
      const up = this.sumIncrease - this.minIncrease > this.o.threshold;
      const down = this.maxDecrease - this.sumDecrease > this.o.threshold;
      this.detected = this.o.mode === 'up' ? up : this.o.mode === 'down' ? down : up || down;
    }
    return this.detected;
  }
}

function invalid(field: string, expected: string): ModelwatchError {
  return new ModelwatchError(ErrorCodes.configInvalid, `PageHinkley ${field}: must be ${expected}`, { field });
}
