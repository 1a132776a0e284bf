// SciPy's exact two-sided ks_2samp p-value as a direct, one-lattice-row-at-a-time port of
// `_compute_prob_outside_square` and `_compute_outer_prob_inside_method`: the reference the engine's faster
// two-rows-at-a-time `ksExactPValue` (src/drift/exact/ks-exact.ts) must equal double for double.
/** `scipy.stats.ks_2samp`'s exact two-sided p-value for D = h / (n·m) (null when the computation fails). */
export function ksExactPValueReference(n1: number, n2: number, hnm: number): number | null {
  // SciPy rounds D to the lattice h / lcm(n1, n2); hnm = |R·n2 − C·n1| is a multiple of g, so h = hnm / g.
  const g = gcd(n1, n2);
  const h = Math.round(hnm / g);
  if (h === 0) return 1;
  const p = n1 === n2 ? probOutsideSquare(n1, h) : outerProbInside(n1, n2, g, h);
  if (!(p >= 0 && p <= 1)) return null;
  return p;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** SciPy's `_compute_prob_outside_square(n, h)`. */
function probOutsideSquare(n: number, h: number): number {
  let P = 0;
  let k = Math.floor(n / h);
  while (k >= 0) {
    let p1 = 1;
    for (let j = 0; j < h; j++) p1 = ((n - k * h - j) * p1) / (n + k * h + j + 1);
    P = p1 * (1 - P);
    k--;
  }
  return 2 * P;
}

/** SciPy's `_compute_outer_prob_inside_method(m, n, g, h)` (Hodges' inside method, 1 − p recursion). */
function outerProbInside(m0: number, n0: number, g: number, h: number): number {
  const m = Math.max(m0, n0);
  const n = Math.min(m0, n0);
  const mg = m / g;
  const ng = n / g;
  let minj = 0;
  let maxj = Math.min(Math.ceil(h / mg), n + 1);
  let curlen = maxj - minj;
  const lenA = Math.min(2 * maxj + 2, n + 1);
  const A = new Float64Array(lenA).fill(1);
  A.fill(0, minj, maxj);
  for (let i = 1; i <= m; i++) {
    const lastminj = minj;
    const lastlen = curlen;
    minj = Math.max(Math.floor((ng * i - h) / mg) + 1, 0);
    minj = Math.min(minj, n);
    maxj = Math.min(Math.ceil((ng * i + h) / mg), n + 1);
    if (maxj <= minj) return 1;
    let val = minj === 0 ? 0 : 1;
    for (let jj = 0; jj < maxj - minj; jj++) {
      const j = jj + minj;
      val = (A[jj + minj - lastminj]! * i + val * j) / (i + j);
      A[jj] = val;
    }
    curlen = maxj - minj;
    if (lastlen > curlen) A.fill(1, maxj - minj, maxj - minj + (lastlen - curlen));
  }
  return A[maxj - minj - 1]!;
}
