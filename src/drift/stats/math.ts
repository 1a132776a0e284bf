/**
 * Per-bin statistics computed in JS from count vectors that ClickHouse produced (DESIGN §3). Nothing here
 * touches rows: inputs are bin or category counts.
 */

/** Proportion floor of PSI (DESIGN §3). */
export const PSI_FLOOR = 1e-4;

// Lanczos approximation (g = 7, n = 9), relative error below 1e-15 for positive arguments.
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(z) for z > 0. */
export function lnGamma(z: number): number {
  if (z < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * z))) - lnGamma(1 - z);
  const x = z - 1;
  let a = LANCZOS[0] ?? 1;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += (LANCZOS[i] ?? 0) / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

const EPS = 1e-16;
const FPMIN = 1e-300;
const MAX_ITER = 100_000;

/**
 * Regularized upper incomplete gamma Q(a, x) = Γ(a, x) / Γ(a): the series for P when x < a + 1, else the
 * continued fraction with the modified Lentz method (Numerical Recipes §6.2, `gammq`).
 */
export function gammaQ(a: number, x: number): number {
  if (!(a > 0) || !(x >= 0)) return Number.NaN;
  if (x === 0) return 1;
  const logPrefix = -x + a * Math.log(x) - lnGamma(a);
  if (x < a + 1) {
    let ap = a;
    let del = 1 / a;
    let sum = del;
    for (let n = 0; n < MAX_ITER; n++) {
      ap += 1;
      del *= x / ap;
      sum += del;
      if (Math.abs(del) < Math.abs(sum) * EPS) break;
    }
    return Math.max(0, 1 - sum * Math.exp(logPrefix));
  }
  let b = x + 1 - a;
  let c = 1 / FPMIN;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < MAX_ITER; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < FPMIN) d = FPMIN;
    c = b + an / c;
    if (Math.abs(c) < FPMIN) c = FPMIN;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < EPS) break;
  }
  return Math.min(1, Math.exp(logPrefix) * h);
}

/** Survival function of the χ² distribution with `dof` degrees of freedom (`scipy.stats.chi2.sf`). */
export function chiSquareSf(x: number, dof: number): number {
  if (dof <= 0) return 1;
  return gammaQ(dof / 2, x / 2);
}

function proportions(counts: readonly number[]): number[] {
  const total = counts.reduce((s, c) => s + c, 0);
  return counts.map((c) => (total > 0 ? c / total : 0));
}

/** Population stability index: Σ (c − r) · ln(c / r) with every proportion floored at {@link PSI_FLOOR}. */
export function psi(ref: readonly number[], cur: readonly number[]): number {
  const r = proportions(ref);
  const c = proportions(cur);
  let s = 0;
  for (let i = 0; i < r.length; i++) {
    const ri = Math.max(r[i] ?? 0, PSI_FLOOR);
    const ci = Math.max(c[i] ?? 0, PSI_FLOOR);
    s += (ci - ri) * Math.log(ci / ri);
  }
  return s;
}

/** Jensen–Shannon distance, natural log, unfloored (`scipy.spatial.distance.jensenshannon(r, c)`). */
export function jensenShannon(ref: readonly number[], cur: readonly number[]): number {
  const r = proportions(ref);
  const c = proportions(cur);
  let s = 0;
  for (let i = 0; i < r.length; i++) {
    const ri = r[i] ?? 0;
    const ci = c[i] ?? 0;
    const m = (ri + ci) / 2;
    // rel_entr(p, m) = p·ln(p/m), 0 when p = 0 (SciPy's convention)
    if (ri > 0) s += ri * Math.log(ri / m);
    if (ci > 0) s += ci * Math.log(ci / m);
  }
  return Math.sqrt(Math.max(0, s / 2));
}

/** Hellinger distance sqrt(1 − Σ sqrt(r·c)) on unfloored proportions. */
export function hellinger(ref: readonly number[], cur: readonly number[]): number {
  const r = proportions(ref);
  const c = proportions(cur);
  let bc = 0;
  for (let i = 0; i < r.length; i++) bc += Math.sqrt((r[i] ?? 0) * (c[i] ?? 0));
  return Math.sqrt(Math.max(0, 1 - bc));
}

/** A statistic with its p-value. */
export interface TestResult {
  statistic: number;
  p_value: number;
}

/**
 * Pearson χ² test of homogeneity on the 2×k table (ref counts, cur counts), no continuity correction
 * (`scipy.stats.chi2_contingency(table, correction=False)`). Columns empty on both sides are dropped;
 * with fewer than two columns left the test is degenerate and yields statistic 0, p-value 1.
 */
export function chiSquareTest(ref: readonly number[], cur: readonly number[]): TestResult {
  const cols: Array<[number, number]> = [];
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i] ?? 0;
    const c = cur[i] ?? 0;
    if (r + c > 0) cols.push([r, c]);
  }
  const nr = cols.reduce((s, [r]) => s + r, 0);
  const nc = cols.reduce((s, [, c]) => s + c, 0);
  const n = nr + nc;
  if (cols.length < 2 || nr === 0 || nc === 0) return { statistic: 0, p_value: 1 };
  let stat = 0;
  for (const [r, c] of cols) {
    const col = r + c;
    const er = (nr * col) / n;
    const ec = (nc * col) / n;
    stat += ((r - er) * (r - er)) / er + ((c - ec) * (c - ec)) / ec;
  }
  return { statistic: stat, p_value: chiSquareSf(stat, cols.length - 1) };
}

/**
 * Benjamini–Hochberg adjusted p-values (step-up; `scipy.stats.false_discovery_control(p, method='bh')`),
 * in the order given. A feature is then drifted when its adjusted p-value is below its threshold.
 */
export function benjaminiHochberg(pValues: readonly number[]): number[] {
  const m = pValues.length;
  const order = pValues.map((p, i) => [p, i] as const).sort((a, b) => a[0] - b[0]);
  const out = new Array<number>(m).fill(1);
  let min = 1;
  for (let k = m - 1; k >= 0; k--) {
    const entry = order[k];
    if (entry === undefined) continue;
    min = Math.min(min, (entry[0] * m) / (k + 1));
    out[entry[1]] = min;
  }
  return out;
}

const PI2 = Math.PI * Math.PI;
const PI4 = PI2 * PI2;
const PI6 = PI4 * PI2;
const SQRT2PI = Math.sqrt(2 * Math.PI);

/**
 * Pelz–Good (1976) approximation of P(D_n ≤ x) for the two-sided one-sample Kolmogorov statistic: the
 * Li-Chien/Korolyuk expansion K0 + K1/√n + K2/n + K3/n^1.5 with z = x√n, each term rewritten with Jacobi
 * theta functions so the sums converge for small z (the form SciPy's `kstwo` uses for large n).
 */
export function kolmogorovCdfPelzGood(n: number, x: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const z = Math.sqrt(n) * x;
  const z2 = z * z;
  const z4 = z2 * z2;
  const z6 = z4 * z2;
  const qlog = -PI2 / 8 / z2;
  if (qlog < -708) return 0;
  let q = Math.exp(qlog);
  const k1a = -z2;
  const k1b = PI2 / 4;
  const k2a = 6 * z6 + 2 * z4;
  const k2b = ((2 * z4 - 5 * z2) * PI2) / 4;
  const k2c = (PI4 * (1 - 2 * z2)) / 16;
  const k3d = (PI6 * (5 - 30 * z2)) / 64;
  const k3c = (PI4 * (-60 * z2 + 212 * z4)) / 16;
  const k3b = (PI2 * (135 * z4 - 96 * z6)) / 4;
  const k3a = -30 * z6 - 90 * z4 * z4;
  const K = [0, 0, 0, 0];
  const maxk = Math.ceil((16 * z) / Math.PI);
  // Horner over Σ c_k q^((2k−1)²), odd terms only.
  for (let k = maxk; k >= 1; k--) {
    const m = 2 * k - 1;
    const m2 = m * m;
    const m4 = m2 * m2;
    const m6 = m4 * m2;
    const qp = Math.pow(q, 8 * k);
    const coeffs = [1, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4, k3a + k3b * m2 + k3c * m4 + k3d * m6];
    for (let j = 0; j < 4; j++) K[j] = (K[j] ?? 0) * qp + (coeffs[j] ?? 0);
  }
  const div = [z, 6 * z4, 72 * z4 * z2 * z, 6480 * z4 * z6];
  for (let j = 0; j < 4; j++) K[j] = ((K[j] ?? 0) * q * SQRT2PI) / (div[j] ?? 1);
  // Sums over all integers k for the extra K2 and K3 terms.
  q = Math.exp(-PI2 / 2 / z2);
  let s2 = 0;
  let s3 = 0;
  const sqrt3z = Math.sqrt(3) * z;
  for (let k = maxk; k >= 1; k--) {
    const k2 = k * k;
    const qp = Math.pow(q, k2);
    s2 += k2 * qp;
    const kpi = Math.PI * k;
    s3 += (sqrt3z + kpi) * (sqrt3z - kpi) * k2 * qp;
  }
  K[2] = (K[2] ?? 0) + (s2 * PI2 * SQRT2PI) / (-36 * z2 * z);
  K[3] = (K[3] ?? 0) + (s3 * PI2 * SQRT2PI) / (216 * z6);
  let sum = 0;
  for (let j = 0; j < 4; j++) sum += (K[j] ?? 0) / Math.pow(n, j / 2);
  return sum;
}

/**
 * P(D_n > x) for the two-sided one-sample Kolmogorov statistic with large n (n > 140), as SciPy's
 * `kstwo.sf` computes it there: exact Ruben–Gambino tails near x = 1/n and x = 1, 0 beyond n·x² ≥ 370, and
 * the Pelz–Good expansion in between. `ks_2samp`'s asymptotic p-value is `kstwo.sf(D, round(n·m/(n+m)))`.
 */
export function kolmogorovSf(n: number, x: number): number {
  if (!(n > 0) || Number.isNaN(x)) return Number.NaN;
  if (x >= 1) return 0;
  if (x <= 0) return 1;
  const t = n * x;
  if (t <= 1) {
    if (t <= 0.5) return 1;
    // log(n!/n^n) via lnGamma
    return clip01(1 - Math.exp(lnGamma(n + 1) - n * Math.log(n) + n * Math.log(2 * t - 1)));
  }
  if (t >= n - 1) return clip01(2 * Math.pow(1 - x, n));
  const nx2 = t * x;
  if (nx2 >= 370) return 0;
  // In the upper tail the two-sided sf is twice the exact one-sided Smirnov sf (SciPy's cut-off 2.2),
  // which keeps tiny p-values relatively accurate where 1 − cdf would cancel to 0.
  if (nx2 >= 2.2) return clip01(2 * smirnovSf(n, x));
  return clip01(1 - kolmogorovCdfPelzGood(n, x));
}

/**
 * Exact one-sided Smirnov survival P(D⁺_n ≥ x) by the Birnbaum–Tingey (1951) sum
 * x · Σ_{j=0}^{⌊n(1−x)⌋} C(n, j) (1 − x − j/n)^{n−j} (x + j/n)^{j−1}, evaluated term by term in log space.
 */
export function smirnovSf(n: number, x: number): number {
  if (x <= 0) return 1;
  if (x >= 1) return 0;
  const jmax = Math.floor(n * (1 - x));
  let lnBinom = 0;
  let sum = 0;
  for (let j = 0; j <= jmax; j++) {
    if (j > 0) lnBinom += Math.log(n - j + 1) - Math.log(j);
    const a = 1 - x - j / n;
    if (a <= 0) break;
    sum += Math.exp(lnBinom + (n - j) * Math.log(a) + (j - 1) * Math.log(x + j / n));
  }
  return x * sum;
}

function clip01(p: number): number {
  return Math.min(1, Math.max(0, p));
}

/** `scipy.stats.ks_2samp`'s asymptotic two-sided p-value for statistic `d` and sample sizes n1, n2. */
export function ks2sampAsympPValue(d: number, n1: number, n2: number): number {
  const en = Math.round((n1 * n2) / (n1 + n2));
  return kolmogorovSf(Math.max(1, en), d);
}
