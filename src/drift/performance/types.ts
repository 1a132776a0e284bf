import type { TaskType } from '../../config/model-schema.js';

/**
 * How a model's stored outputs are read as a prediction. Resolved from the model schema
 * (`config.models[m]`) or, without one, from the output columns seen in the window
 * (see {@link resolvePredictionSpec}).
 */
export interface PredictionSpec {
  task: TaskType;
  /** `probabilities`: one numeric column per class (or one column = P(positive)); `label`: the class; `value`: regression. */
  kind: 'probabilities' | 'label' | 'value';
  /**
   * Columns of `outputs_num` holding the prediction, in class order (probabilities) or the single
   * value column (regression). Empty for `label` read from `outputs_cat`.
   */
  columns: string[];
  /** For `kind = 'label'`: the column holding the predicted class, and which map it lives in. */
  labelColumn?: { map: 'num' | 'cat'; key: string };
  /** Class names in probability-column order. */
  classes: string[];
  /** Binary positive class (`classes[1]`). */
  positive: string;
}

/** One cell of a confusion matrix as a count per (actual, predicted) pair. */
export interface ConfusionCell {
  actual: string;
  predicted: string;
  count: number;
}

/**
 * Mann–Whitney sums for one ROC AUC (one-vs-rest for class `cls`): `u` = Σ over positives of the
 * (weighted) negatives scored lower plus half of the ties; AUC = u / (pos · neg). With weights (CBPE)
 * `pos` and `neg` are sums of P(class) and 1 − P(class).
 */
export interface AucSums {
  cls: string;
  u: number;
  pos: number;
  neg: number;
}

/** Small vectors that classification metrics are finished from (computed by SQL or by JS). */
export interface ClassificationAggregates {
  /** Class names in probability-column order. */
  classes: string[];
  positive: string;
  task: 'binary' | 'multiclass';
  confusion: ConfusionCell[];
  /** Σ per-row log loss and its row count; null when predictions are labels or a label is not a known class. */
  logLoss: { sum: number; n: number } | null;
  /** One entry (binary: the positive class) or one per class (multiclass, one-vs-rest); empty without probabilities. */
  auc: AucSums[];
}

/** Sums that regression metrics are finished from. */
export interface RegressionAggregates {
  n: number;
  /** Σ |y − ŷ| */
  sumAbs: number;
  /** Σ (y − ŷ)² */
  sumSq: number;
  /** Σ |y − ŷ| / max(|y|, ε) with ε = float64 machine epsilon (scikit-learn's MAPE). */
  sumApe: number;
  /** Σ (y − ȳ)² */
  ssTot: number;
}

/** Per-class precision/recall/F1 with support (true count). */
export interface ClassMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

/** Measured classification metrics, as scikit-learn defines them. */
export interface ClassificationMetrics {
  task: 'binary' | 'multiclass';
  rows: number;
  accuracy: number | null;
  /** Binary: of the positive class. Null for multiclass (see the macro/weighted fields). */
  positive_class: string | null;
  precision: number | null;
  recall: number | null;
  f1: number | null;
  precision_macro: number | null;
  recall_macro: number | null;
  f1_macro: number | null;
  precision_weighted: number | null;
  recall_weighted: number | null;
  f1_weighted: number | null;
  /** Binary AUC, or macro one-vs-rest AUC; null when a class has no positives or no negatives, or without probabilities. */
  roc_auc: number | null;
  log_loss: number | null;
  /** Rows = actual, columns = predicted, both in `labels` order (sorted union, like scikit-learn). */
  confusion_matrix: { labels: string[]; matrix: number[][] };
  per_class: ClassMetrics[];
}

/** Measured regression metrics, as scikit-learn defines them. */
export interface RegressionMetrics {
  task: 'regression';
  rows: number;
  mae: number | null;
  rmse: number | null;
  mape: number | null;
  r2: number | null;
}

/** CBPE (confidence-based performance estimation, NannyML) from predicted probabilities only. */
export interface EstimatedMetrics {
  method: 'cbpe';
  task: 'binary' | 'multiclass';
  rows: number;
  accuracy: number | null;
  /** Binary: of the positive class; multiclass: macro averages of one-vs-rest expected confusion matrices. */
  precision: number | null;
  recall: number | null;
  f1: number | null;
  roc_auc: number | null;
  /** Expected confusion matrix (binary: `[[tn, fp], [fn, tp]]` over `[negative, positive]`). */
  expected_confusion: { labels: string[]; matrix: number[][] } | null;
}

/** Expected (probability-weighted) confusion sums for CBPE. */
export interface CbpeAggregates {
  classes: string[];
  positive: string;
  task: 'binary' | 'multiclass';
  n: number;
  /** Per class j: Σ over rows predicted j of p_j (expected TP), Σ over rows predicted j of (1 − p_j) (expected FP), Σ over rows not predicted j of p_j (expected FN). */
  perClass: Array<{ cls: string; tp: number; fp: number; fn: number }>;
  auc: AucSums[];
}
