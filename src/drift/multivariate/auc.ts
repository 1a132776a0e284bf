/**
 * ROC AUC from the scores of the positive and the negative rows: the share of (positive, negative)
 * pairs where the positive scores higher, ties counting one half (the Mann–Whitney U statistic over
 * nPos · nNeg). Sorts both arrays in place. NaN when a side is empty.
 */
export function aucOfSplit(pos: Float64Array, neg: Float64Array): number {
  const np = pos.length;
  const nn = neg.length;
  if (np === 0 || nn === 0) return Number.NaN;
  pos.sort();
  neg.sort();
  // For each positive: negatives strictly below (lt) and equal (eq); both pointers only move forward.
  let u = 0;
  let lt = 0;
  let le = 0;
  for (let i = 0; i < np; i++) {
    const v = pos[i] as number;
    while (lt < nn && (neg[lt] as number) < v) lt++;
    if (le < lt) le = lt;
    while (le < nn && (neg[le] as number) <= v) le++;
    u += lt + (le - lt) / 2;
  }
  return u / (np * nn);
}

/**
 * ROC AUC of `scores` for binary `labels` (1 = positive), by the Mann–Whitney U statistic with tied
 * scores counting one half: equal to `sklearn.metrics.roc_auc_score`. NaN when a class is empty.
 */
export function rocAuc(labels: ArrayLike<number>, scores: ArrayLike<number>): number {
  let np = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] === 1) np++;
  const pos = new Float64Array(np);
  const neg = new Float64Array(labels.length - np);
  let a = 0;
  let b = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] === 1) pos[a++] = scores[i] ?? 0;
    else neg[b++] = scores[i] ?? 0;
  }
  return aucOfSplit(pos, neg);
}
