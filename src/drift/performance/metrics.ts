import type {
  AucSums,
  CbpeAggregates,
  ClassMetrics,
  ClassificationAggregates,
  ClassificationMetrics,
  ConfusionCell,
  EstimatedMetrics,
  RegressionAggregates,
  RegressionMetrics,
} from './types.js';

/** float64 machine epsilon: scikit-learn's clip for log loss (`np.finfo(float64).eps`) and MAPE's floor. */
export const FLOAT64_EPS = 2.220446049250313e-16;

const div = (a: number, b: number): number => (b === 0 ? 0 : a / b);

/**
 * Sorts class labels the way `np.unique` orders scikit-learn's labels: numerically when every label
 * is a number, else by code point.
 */
export function sortLabels(labels: Iterable<string>): string[] {
  const list = [...new Set(labels)];
  const numeric = list.every((l) => l.trim() !== '' && Number.isFinite(Number(l)));
  return numeric ? list.sort((a, b) => Number(a) - Number(b)) : list.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** ROC AUC from Mann–Whitney sums; null when a side is empty. */
export function aucFromSums(s: AucSums): number | null {
  return s.pos > 0 && s.neg > 0 ? s.u / (s.pos * s.neg) : null;
}

/**
 * Finishes classification metrics from their aggregates with scikit-learn's definitions: labels are the
 * sorted union of actual and predicted classes; precision/recall/F1 with `zero_division=0`; macro = unweighted
 * mean over labels, weighted = mean weighted by support; binary values are of the positive class.
 */
export function finishClassification(agg: ClassificationAggregates): ClassificationMetrics {
  const cells = agg.confusion.filter((c) => c.count > 0);
  const labels = sortLabels(cells.flatMap((c) => [c.actual, c.predicted]));
  const index = new Map(labels.map((l, i) => [l, i]));
  const matrix = labels.map(() => labels.map(() => 0));
  let n = 0;
  for (const c of cells) {
    const row = matrix[index.get(c.actual) ?? 0];
    if (row) row[index.get(c.predicted) ?? 0] = (row[index.get(c.predicted) ?? 0] ?? 0) + c.count;
    n += c.count;
  }
  const perClass: ClassMetrics[] = labels.map((label, i) => {
    let tp = 0;
    let predicted = 0;
    let support = 0;
    for (let j = 0; j < labels.length; j++) {
      predicted += matrix[j]?.[i] ?? 0;
      support += matrix[i]?.[j] ?? 0;
    }
    tp = matrix[i]?.[i] ?? 0;
    const fp = predicted - tp;
    const fn = support - tp;
    return { label, precision: div(tp, tp + fp), recall: div(tp, tp + fn), f1: div(2 * tp, 2 * tp + fp + fn), support };
  });
  const correct = labels.reduce((s, _l, i) => s + (matrix[i]?.[i] ?? 0), 0);
  const mean = (f: (c: ClassMetrics) => number): number | null =>
    perClass.length === 0 ? null : perClass.reduce((s, c) => s + f(c), 0) / perClass.length;
  const weighted = (f: (c: ClassMetrics) => number): number | null =>
    n === 0 ? null : perClass.reduce((s, c) => s + f(c) * c.support, 0) / n;
  const binary = agg.task === 'binary';
  // scikit-learn's binary average needs the positive class among the labels only to name it; a positive class
  // that never occurs has precision = recall = F1 = 0.
  const pos = binary ? (perClass.find((c) => c.label === agg.positive) ?? null) : null;
  let rocAuc: number | null = null;
  if (agg.auc.length > 0) {
    const aucs = agg.auc.map(aucFromSums);
    rocAuc = aucs.some((a) => a === null) ? null : (aucs as number[]).reduce((s, a) => s + a, 0) / aucs.length;
  }
  return {
    task: agg.task,
    rows: n,
    accuracy: n === 0 ? null : correct / n,
    positive_class: binary ? agg.positive : null,
    precision: binary && n > 0 ? (pos?.precision ?? 0) : null,
    recall: binary && n > 0 ? (pos?.recall ?? 0) : null,
    f1: binary && n > 0 ? (pos?.f1 ?? 0) : null,
    precision_macro: mean((c) => c.precision),
    recall_macro: mean((c) => c.recall),
    f1_macro: mean((c) => c.f1),
    precision_weighted: weighted((c) => c.precision),
    recall_weighted: weighted((c) => c.recall),
    f1_weighted: weighted((c) => c.f1),
    roc_auc: rocAuc,
    log_loss: agg.logLoss && agg.logLoss.n > 0 ? agg.logLoss.sum / agg.logLoss.n : null,
    confusion_matrix: { labels, matrix },
    per_class: perClass,
  };
}

/** Finishes regression metrics: MAE, RMSE, MAPE (ε-floored denominator) and R² (`force_finite`: 1 if perfect, else 0 on constant y). */
export function finishRegression(agg: RegressionAggregates): RegressionMetrics {
  const { n } = agg;
  if (n === 0) return { task: 'regression', rows: 0, mae: null, rmse: null, mape: null, r2: null };
  let r2: number;
  if (agg.ssTot === 0) r2 = agg.sumSq === 0 ? 1 : 0;
  else r2 = 1 - agg.sumSq / agg.ssTot;
  return { task: 'regression', rows: n, mae: agg.sumAbs / n, rmse: Math.sqrt(agg.sumSq / n), mape: agg.sumApe / n, r2 };
}

/**
 * Finishes the CBPE estimate (NannyML): expected accuracy = Σ_j E[TP_j] / n; binary precision/recall/F1 from the
 * positive class's expected confusion matrix; multiclass ones as macro averages over classes; ROC AUC from
 * probability-weighted Mann–Whitney sums (NannyML's expected ROC curve, integrated by trapezoids).
 */
export function finishCbpe(agg: CbpeAggregates): EstimatedMetrics {
  const { n } = agg;
  const empty: EstimatedMetrics = {
    method: 'cbpe',
    task: agg.task,
    rows: n,
    accuracy: null,
    precision: null,
    recall: null,
    f1: null,
    roc_auc: null,
    expected_confusion: null,
  };
  if (n === 0) return empty;
  const expCorrect = agg.perClass.reduce((s, c) => s + c.tp, 0);
  const scores = agg.perClass.map((c) => ({
    precision: div(c.tp, c.tp + c.fp),
    recall: div(c.tp, c.tp + c.fn),
    f1: div(2 * c.tp, 2 * c.tp + c.fp + c.fn),
  }));
  const aucs = agg.auc.map(aucFromSums);
  const rocAuc =
    aucs.length === 0 || aucs.some((a) => a === null)
      ? null
      : (aucs as number[]).reduce((s, a) => s + a, 0) / aucs.length;
  if (agg.task === 'binary') {
    const i = agg.perClass.findIndex((c) => c.cls === agg.positive);
    const p = agg.perClass[i];
    const s = scores[i];
    if (!p || !s) return { ...empty, accuracy: expCorrect / n, roc_auc: rocAuc };
    const tn = n - p.tp - p.fp - p.fn;
    const negative = agg.classes.find((c) => c !== agg.positive) ?? 'negative';
    return {
      ...empty,
      accuracy: expCorrect / n,
      precision: s.precision,
      recall: s.recall,
      f1: s.f1,
      roc_auc: rocAuc,
      expected_confusion: {
        labels: [negative, agg.positive],
        matrix: [
          [tn, p.fp],
          [p.fn, p.tp],
        ],
      },
    };
  }
  const avg = (f: (s: { precision: number; recall: number; f1: number }) => number): number =>
    scores.reduce((t, s) => t + f(s), 0) / scores.length;
  return {
    ...empty,
    accuracy: expCorrect / n,
    precision: avg((s) => s.precision),
    recall: avg((s) => s.recall),
    f1: avg((s) => s.f1),
    roc_auc: rocAuc,
  };
}

/** Mann–Whitney sums over (score, positive weight, negative weight) points, ties counted half. */
export function aucSums(cls: string, points: Array<{ score: number; pos: number; neg: number }>): AucSums {
  const byScore = new Map<number, { pos: number; neg: number }>();
  for (const p of points) {
    const e = byScore.get(p.score);
    if (e) {
      e.pos += p.pos;
      e.neg += p.neg;
    } else byScore.set(p.score, { pos: p.pos, neg: p.neg });
  }
  const sorted = [...byScore.entries()].sort((a, b) => a[0] - b[0]);
  let below = 0;
  let u = 0;
  let pos = 0;
  let neg = 0;
  for (const [, e] of sorted) {
    u += e.pos * below + 0.5 * e.pos * e.neg;
    below += e.neg;
    pos += e.pos;
    neg += e.neg;
  }
  return { cls, u, pos, neg };
}

/** The predicted class index of one probability row: binary single column `p > 0.5`, else the first argmax. */
export function predictedIndex(probs: readonly number[]): number {
  if (probs.length === 1) return (probs[0] ?? 0) > 0.5 ? 1 : 0;
  let best = 0;
  for (let j = 1; j < probs.length; j++) if ((probs[j] ?? -Infinity) > (probs[best] ?? -Infinity)) best = j;
  return best;
}

/** Probability rows widened to one column per class (a single column p becomes `[1 − p, p]`). */
function classProbs(probs: readonly number[]): number[] {
  return probs.length === 1 ? [1 - (probs[0] ?? 0), probs[0] ?? 0] : [...probs];
}

/** Input of {@link classificationAggregates}: actual labels and either probabilities or predicted labels. */
export interface ClassificationInput {
  task: 'binary' | 'multiclass';
  classes: string[];
  positive: string;
  actual: string[];
  /** One row of probabilities per actual (class order = `classes`; binary may have one column = P(positive)). */
  probabilities?: number[][];
  /** Predicted class labels, when the model outputs labels. */
  predicted?: string[];
}

/** Aggregates for {@link finishClassification} computed in JS from row vectors (the SQL path computes the same). */
export function classificationAggregates(input: ClassificationInput): ClassificationAggregates {
  const { classes, positive, actual, task } = input;
  const counts = new Map<string, ConfusionCell>();
  const predicted =
    input.predicted ?? (input.probabilities ?? []).map((p) => classes[predictedIndex(p)] ?? String(predictedIndex(p)));
  actual.forEach((a, i) => {
    const p = predicted[i] ?? '';
    const key = JSON.stringify([a, p]);
    const cell = counts.get(key);
    if (cell) cell.count++;
    else counts.set(key, { actual: a, predicted: p, count: 1 });
  });
  let logLoss: ClassificationAggregates['logLoss'] = null;
  const auc: AucSums[] = [];
  const probs = input.probabilities;
  if (probs) {
    const yIdx = actual.map((a) => classes.indexOf(a));
    if (yIdx.every((j) => j >= 0)) {
      let sum = 0;
      probs.forEach((row, i) => {
        const clipped = classProbs(row).map((v) => Math.min(Math.max(v, FLOAT64_EPS), 1 - FLOAT64_EPS));
        const total = clipped.reduce((s, v) => s + v, 0);
        sum += -Math.log((clipped[yIdx[i] ?? 0] ?? 0) / total);
      });
      logLoss = { sum, n: probs.length };
    }
    if (task === 'binary') {
      const posIdx = classes.indexOf(positive);
      auc.push(
        aucSums(
          positive,
          probs.map((row, i) => {
            const isPos = actual[i] === positive ? 1 : 0;
            return { score: classProbs(row)[posIdx] ?? 0, pos: isPos, neg: 1 - isPos };
          }),
        ),
      );
    } else {
      classes.forEach((cls, j) => {
        auc.push(
          aucSums(
            cls,
            probs.map((row, i) => {
              const isPos = actual[i] === cls ? 1 : 0;
              return { score: row[j] ?? 0, pos: isPos, neg: 1 - isPos };
            }),
          ),
        );
      });
    }
  }
  return { classes, positive, task, confusion: [...counts.values()], logLoss, auc };
}

/** Aggregates for {@link finishRegression} computed in JS (two-pass total sum of squares, like NumPy). */
export function regressionAggregates(actual: readonly number[], predicted: readonly number[]): RegressionAggregates {
  const n = actual.length;
  let sumAbs = 0;
  let sumSq = 0;
  let sumApe = 0;
  let mean = 0;
  for (let i = 0; i < n; i++) {
    const y = actual[i] ?? 0;
    const e = y - (predicted[i] ?? 0);
    sumAbs += Math.abs(e);
    sumSq += e * e;
    sumApe += Math.abs(e) / Math.max(Math.abs(y), FLOAT64_EPS);
    mean += y;
  }
  mean = n === 0 ? 0 : mean / n;
  let ssTot = 0;
  for (const y of actual) ssTot += (y - mean) ** 2;
  return { n, sumAbs, sumSq, sumApe, ssTot };
}

/** CBPE aggregates computed in JS from probability rows (assumed calibrated; NannyML calibrates on a labelled reference first). */
export function cbpeAggregates(input: {
  task: 'binary' | 'multiclass';
  classes: string[];
  positive: string;
  probabilities: number[][];
}): CbpeAggregates {
  const { classes, positive, task, probabilities } = input;
  const k = task === 'binary' ? 2 : classes.length;
  const perClass = Array.from({ length: k }, (_v, j) => ({ cls: classes[j] ?? String(j), tp: 0, fp: 0, fn: 0 }));
  for (const row of probabilities) {
    const wide = classProbs(row);
    const pred = predictedIndex(row);
    for (let j = 0; j < k; j++) {
      const p = wide[j] ?? 0;
      const c = perClass[j];
      if (!c) continue;
      if (j === pred) {
        c.tp += p;
        c.fp += 1 - p;
      } else c.fn += p;
    }
  }
  const auc: AucSums[] = [];
  const aucClasses = task === 'binary' ? [classes.indexOf(positive)] : classes.map((_c, j) => j);
  for (const j of aucClasses) {
    auc.push(
      aucSums(
        classes[j] ?? String(j),
        probabilities.map((row) => {
          const p = classProbs(row)[j] ?? 0;
          return { score: p, pos: p, neg: 1 - p };
        }),
      ),
    );
  }
  return { classes, positive, task, n: probabilities.length, perClass, auc };
}
