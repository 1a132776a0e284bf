/**
 * ROC AUC of `scores` for binary `labels` (1 = positive), by the Mann–Whitney U statistic with tied
 * scores given their average rank: equal to `sklearn.metrics.roc_auc_score`. NaN when a class is empty.
 */
export function rocAuc(labels: readonly number[], scores: readonly number[]): number {
  const n = labels.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (scores[a] ?? 0) - (scores[b] ?? 0));
  let rankSumPos = 0;
  let nPos = 0;
  let i = 0;
  while (i < n) {
    let j = i;
    const s = scores[order[i] ?? 0];
    while (j + 1 < n && scores[order[j + 1] ?? 0] === s) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (labels[order[k] ?? 0] === 1) {
        rankSumPos += avgRank;
        nPos++;
      }
    }
    i = j + 1;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return Number.NaN;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}
