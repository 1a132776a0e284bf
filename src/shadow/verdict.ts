/**
 * The promotion verdict: `promote`, `hold` or `reject`, with the reasons, from thresholds.
 */
import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import type { ClassificationPerformance, LatencySummary, PairedBootstrapResult, ScoreDifferences } from './compare.js';

/** The verdicts, as a const object and a union. */
export const Verdicts = { promote: 'promote', hold: 'hold', reject: 'reject' } as const;
/** One of {@link Verdicts}. */
export type Verdict = (typeof Verdicts)[keyof typeof Verdicts];

/** Thresholds of {@link decideVerdict} (config `shadow.verdict`). */
export interface VerdictThresholds {
  /** Fewer compared rows than this → hold (not enough evidence). @default 200 */
  minRows?: number;
  /** Classification agreement below this → reject. @default 0.98 */
  minAgreement?: number;
  /** Significance level of McNemar's test and of the bootstrap interval's test of zero. @default 0.05 */
  alpha?: number;
  /** A larger fraction of rows skipped (undecodable, expired payloads) → hold. @default 0.1 */
  maxSkippedFraction?: number;
  /** p95 of |candidate − production| scores above this → reject; undefined: not checked. @default undefined */
  maxAbsDiffP95?: number | undefined;
  /** Candidate batch latency p99 above this (ms) → reject; undefined: not checked. @default undefined */
  maxLatencyP99Ms?: number | undefined;
}

/** {@link VerdictThresholds} with every default filled in (the two optional limits may stay unset). */
export type ResolvedVerdictThresholds = Required<Omit<VerdictThresholds, 'maxAbsDiffP95' | 'maxLatencyP99Ms'>> &
  Pick<VerdictThresholds, 'maxAbsDiffP95' | 'maxLatencyP99Ms'>;

/** Defaults of {@link VerdictThresholds}, in one place. */
export const defaultVerdictThresholds: Readonly<ResolvedVerdictThresholds> = Object.freeze({
  minRows: 200,
  minAgreement: 0.98,
  alpha: 0.05,
  maxSkippedFraction: 0.1,
  maxAbsDiffP95: undefined,
  maxLatencyP99Ms: undefined,
} satisfies ResolvedVerdictThresholds);

/** What a comparison measured, as far as the verdict needs it. */
export interface VerdictEvidence {
  /** Rows compared. */
  rows: number;
  /** Rows that could not be compared. @default 0 */
  skipped?: number;
  /** Classification agreement (0–1), when the model classifies. */
  agreement?: number | undefined;
  /** Score differences, when compared. */
  differences?: ScoreDifferences | undefined;
  /** Measured classification performance on labelled rows. */
  classification?: ClassificationPerformance | undefined;
  /** Paired bootstrap of a regression metric on labelled rows. */
  regression?: PairedBootstrapResult | undefined;
  /** Candidate latency. */
  latency?: LatencySummary | undefined;
}

/** A verdict and why. */
export interface VerdictResult {
  verdict: Verdict;
  /** Every check's outcome, rejecting and holding reasons first. */
  reasons: string[];
}

/** Fills in and checks thresholds; a bad value throws `config_invalid` at start-up. */
export function resolveVerdictThresholds(t: VerdictThresholds = {}): Readonly<ResolvedVerdictThresholds> {
  const r: ResolvedVerdictThresholds = {
    minRows: t.minRows ?? defaultVerdictThresholds.minRows,
    minAgreement: t.minAgreement ?? defaultVerdictThresholds.minAgreement,
    alpha: t.alpha ?? defaultVerdictThresholds.alpha,
    maxSkippedFraction: t.maxSkippedFraction ?? defaultVerdictThresholds.maxSkippedFraction,
    maxAbsDiffP95: t.maxAbsDiffP95 ?? defaultVerdictThresholds.maxAbsDiffP95,
    maxLatencyP99Ms: t.maxLatencyP99Ms ?? defaultVerdictThresholds.maxLatencyP99Ms,
  };
  const bad = (field: string, why: string): never => {
    throw new ModelwatchError(ErrorCodes.configInvalid, `shadow.verdict.${field} ${why}`, {
      field: `shadow.verdict.${field}`,
    });
  };
  if (!(Number.isSafeInteger(r.minRows) && r.minRows >= 1))
    bad('minRows', `must be a positive integer, got ${r.minRows}`);
  if (!(r.minAgreement >= 0 && r.minAgreement <= 1)) bad('minAgreement', `must be in [0, 1], got ${r.minAgreement}`);
  if (!(r.alpha > 0 && r.alpha < 1)) bad('alpha', `must be in (0, 1), got ${r.alpha}`);
  if (!(r.maxSkippedFraction >= 0 && r.maxSkippedFraction <= 1))
    bad('maxSkippedFraction', `must be in [0, 1], got ${r.maxSkippedFraction}`);
  if (r.maxAbsDiffP95 !== undefined && !(r.maxAbsDiffP95 >= 0))
    bad('maxAbsDiffP95', `must be >= 0, got ${r.maxAbsDiffP95}`);
  if (r.maxLatencyP99Ms !== undefined && !(r.maxLatencyP99Ms > 0))
    bad('maxLatencyP99Ms', `must be > 0, got ${r.maxLatencyP99Ms}`);
  return r;
}

const fmt = (v: number, digits = 4): string => Number(v.toPrecision(digits)).toString();

/**
 * Decides whether a candidate is safe to promote. Reject: agreement below `minAgreement`; a
 * significantly lower accuracy (McNemar exact p < `alpha`); a regression metric significantly worse
 * (the bootstrap interval lies above 0); score differences or latency above their limits. Hold: too
 * few rows or too many skipped. Otherwise promote. Every check that ran contributes a reason.
 */
export function decideVerdict(evidence: VerdictEvidence, thresholds: VerdictThresholds = {}): VerdictResult {
  const t = resolveVerdictThresholds(thresholds);
  const reject: string[] = [];
  const hold: string[] = [];
  const pass: string[] = [];
  const skipped = evidence.skipped ?? 0;
  const total = evidence.rows + skipped;

  if (evidence.rows < t.minRows) hold.push(`only ${evidence.rows} rows compared (minimum ${t.minRows})`);
  else pass.push(`${evidence.rows} rows compared`);
  if (total > 0 && skipped / total > t.maxSkippedFraction) {
    hold.push(
      `${skipped} of ${total} rows skipped (${fmt((100 * skipped) / total, 3)}% > ${fmt(100 * t.maxSkippedFraction, 3)}%)`,
    );
  }

  if (evidence.agreement !== undefined) {
    if (evidence.agreement < t.minAgreement)
      reject.push(`agreement ${fmt(evidence.agreement)} below ${t.minAgreement}`);
    else pass.push(`agreement ${fmt(evidence.agreement)} at or above ${t.minAgreement}`);
  }

  const cls = evidence.classification;
  if (cls && cls.rows > 0) {
    const { production, candidate, mcnemar } = cls;
    const acc = `accuracy ${fmt(production.accuracy)} → ${fmt(candidate.accuracy)} on ${cls.rows} labelled rows, McNemar exact p = ${fmt(mcnemar.pValue, 3)}`;
    if (mcnemar.pValue < t.alpha && candidate.accuracy < production.accuracy)
      reject.push(`significant accuracy drop: ${acc}`);
    else if (mcnemar.pValue < t.alpha) pass.push(`significant accuracy gain: ${acc}`);
    else pass.push(`no significant accuracy change: ${acc}`);
  }

  const reg = evidence.regression;
  if (reg && reg.rows > 0) {
    const ci = `${reg.metric.toUpperCase()} ${fmt(reg.production)} → ${fmt(reg.candidate)}, difference ${fmt(reg.difference)} (${fmt(100 * reg.confidence, 3)}% CI ${fmt(reg.low)} to ${fmt(reg.high)})`;
    // The interval is at level `confidence`; it is a test at alpha = 1 − confidence.
    if (reg.low > 0) reject.push(`significantly worse ${ci}`);
    else if (reg.high < 0) pass.push(`significantly better ${ci}`);
    else pass.push(`no significant ${reg.metric.toUpperCase()} change: ${ci}`);
  }

  const diff = evidence.differences;
  if (diff && t.maxAbsDiffP95 !== undefined) {
    if (diff.absolute.p95 > t.maxAbsDiffP95)
      reject.push(`p95 absolute score difference ${fmt(diff.absolute.p95)} above ${t.maxAbsDiffP95}`);
    else pass.push(`p95 absolute score difference ${fmt(diff.absolute.p95)} within ${t.maxAbsDiffP95}`);
  }

  const lat = evidence.latency;
  if (lat && t.maxLatencyP99Ms !== undefined && lat.batches > 0) {
    if (lat.p99Ms > t.maxLatencyP99Ms)
      reject.push(`candidate latency p99 ${fmt(lat.p99Ms)} ms above ${t.maxLatencyP99Ms} ms`);
    else pass.push(`candidate latency p99 ${fmt(lat.p99Ms)} ms within ${t.maxLatencyP99Ms} ms`);
  }

  const verdict: Verdict = reject.length > 0 ? Verdicts.reject : hold.length > 0 ? Verdicts.hold : Verdicts.promote;
  return { verdict, reasons: [...reject, ...hold, ...pass] };
}
