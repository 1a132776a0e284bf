import { ErrorCodes, ModelwatchError } from '../../common/errors.js';
import type { ModelSchema } from '../../config/model-schema.js';
import { Tables } from '../../store/migrations.js';
import { toChTime, type Store } from '../../store/store.js';
import { FLOAT64_EPS, finishCbpe, finishClassification, finishRegression } from './metrics.js';
import type {
  AucSums,
  CbpeAggregates,
  ClassificationAggregates,
  ClassificationMetrics,
  EstimatedMetrics,
  PredictionSpec,
  RegressionAggregates,
  RegressionMetrics,
} from './types.js';

/** Output column names seen for a model in a window. */
export interface OutputKeys {
  num: string[];
  cat: string[];
}

const tensorOf = (key: string): string => key.replace(/_\d+$/, '');
const indexOfKey = (key: string): number => Number(/_(\d+)$/.exec(key)?.[1] ?? 0);

function columnsOf(tensor: string, keys: string[]): string[] {
  return keys
    .filter((k) => k === tensor || (k.startsWith(`${tensor}_`) && /^\d+$/.test(k.slice(tensor.length + 1))))
    .sort((a, b) => indexOfKey(a) - indexOfKey(b));
}

/**
 * Resolves how to read a model's prediction. With a schema: `prediction.tensor` names the output tensor
 * (columns `<tensor>` or `<tensor>_<j>` in j order), `prediction.kind` how to read it, `task` and `classes`
 * as given. Without one (documented defaults): the first numeric output tensor (by name) holds probabilities —
 * one or two columns → binary (one column = P(positive), decided `p > 0.5`), three or more → multiclass
 * (first argmax); with no numeric output, the first categorical output column is the predicted label.
 * `task: regression` reads the first column as the value. Classes default to `'0'…'k−1'`; the binary
 * positive class is `classes[1]`. Returns null when the model has no usable output.
 */
export function resolvePredictionSpec(schema: ModelSchema | undefined, keys: OutputKeys): PredictionSpec | null {
  const pred = schema?.prediction;
  let kind: PredictionSpec['kind'];
  let columns: string[] = [];
  let labelColumn: PredictionSpec['labelColumn'];
  if (pred) {
    kind = schema?.task === 'regression' ? 'value' : pred.kind;
    const num = columnsOf(pred.tensor, keys.num);
    const cat = columnsOf(pred.tensor, keys.cat);
    if (kind === 'label') {
      const key = cat[0] ?? num[0];
      if (key === undefined) return null;
      labelColumn = { map: cat[0] !== undefined ? 'cat' : 'num', key };
    } else {
      columns = kind === 'value' ? num.slice(0, 1) : num;
      if (columns.length === 0) return null;
    }
  } else {
    const tensors = [...new Set(keys.num.map(tensorOf))].sort();
    const first = tensors[0];
    if (first !== undefined) {
      kind = schema?.task === 'regression' ? 'value' : 'probabilities';
      columns = columnsOf(first, keys.num);
      if (kind === 'value') columns = columns.slice(0, 1);
    } else {
      const key = [...keys.cat].sort()[0];
      if (key === undefined) return null;
      kind = 'label';
      labelColumn = { map: 'cat', key };
    }
  }
  let task = schema?.task;
  if (task === undefined) {
    if (kind === 'probabilities') task = columns.length <= 2 ? 'binary' : 'multiclass';
    else task = schema?.classes?.length === 2 ? 'binary' : 'multiclass';
  }
  let classes = schema?.classes;
  if (classes === undefined) {
    if (kind === 'probabilities') classes = Array.from({ length: Math.max(2, columns.length) }, (_v, j) => String(j));
    else classes = task === 'binary' ? ['0', '1'] : [];
  }
  const spec: PredictionSpec = { task, kind, columns, classes, positive: classes[1] ?? '1' };
  if (labelColumn) spec.labelColumn = labelColumn;
  return spec;
}

/** Options of {@link computePerformance}. */
export interface PerformanceOptions {
  model: string;
  /** Window start, epoch ms (inclusive). */
  fromMs: number;
  /** Window end, epoch ms (exclusive). */
  toMs: number;
  /** The model's schema (`config.models[model]`); defaults per {@link resolvePredictionSpec}. */
  schema?: ModelSchema;
}

/** Options of {@link computePerformanceBatch}: one window, many models. */
export interface PerformanceBatchOptions {
  /** The models, each with its schema (`config.models[model]`, defaults per {@link resolvePredictionSpec}). */
  models: ReadonlyArray<{ model: string; schema?: ModelSchema | undefined }>;
  /** Window start, epoch ms (inclusive). */
  fromMs: number;
  /** Window end, epoch ms (exclusive). */
  toMs: number;
}

/** Measured and estimated performance of one model over one window. */
export interface PerformanceReport {
  model: string;
  window: { from: string; to: string };
  prediction: PredictionSpec | null;
  /** Prediction rows in the window. */
  rows: number;
  /**
   * Of those, rows with a usable prediction and a label (newest label per (request_id, row) wins; for
   * regression, a label that parses as a number).
   */
  labelled_rows: number;
  /** labelled_rows / rows (null with no rows). */
  label_coverage: number | null;
  measured: ClassificationMetrics | RegressionMetrics | null;
  /** CBPE estimate over all rows (labelled or not); null for regression or label-only outputs. */
  estimated: EstimatedMetrics | null;
}

// Numeric text is compared in one canonical form so labels posted as "1", "1.0" or 1 all match class "1".
const norm = (x: string): string => `if(isNull(toFloat64OrNull(${x})), ${x}, toString(toFloat64OrZero(${x})))`;

// Every query covers a set of models (one window); results are grouped by model.
const WINDOW = `model IN {models:Array(String)} AND ts >= {from:DateTime64(3, 'UTC')} AND ts < {to:DateTime64(3, 'UTC')}`;

/** Parameters of the performance queries: the models (sharing one prediction spec) and the window. */
export type QueryParams = {
  models: string[];
  from: string;
  to: string;
  cols: string[];
  classes: string[];
  positive: string;
  label_key: string;
  eps: number;
};

/** SELECT of the window's prediction rows with `probs`/`pred_idx`/`pred` (classification) or `v` (regression). */
function baseSelect(spec: PredictionSpec): string {
  // FINAL collapses duplicate deliveries that ingest's event_id dedupe may have let through (at-least-once).
  const where = `FROM ${Tables.predictions} FINAL WHERE ${WINDOW}`;
  if (spec.kind === 'value') {
    return `SELECT model, request_id, row, outputs_num[{cols:Array(String)}[1]] AS v ${where}
      AND mapContains(outputs_num, {cols:Array(String)}[1])`;
  }
  if (spec.kind === 'label') {
    const raw =
      spec.labelColumn?.map === 'num' ? `toString(outputs_num[{label_key:String}])` : `outputs_cat[{label_key:String}]`;
    const has =
      spec.labelColumn?.map === 'num'
        ? 'mapContains(outputs_num, {label_key:String})'
        : 'mapContains(outputs_cat, {label_key:String})';
    return `SELECT model, request_id, row, ${norm(raw)} AS pred, indexOf({classes:Array(String)}, pred) - 1 AS pred_idx ${where} AND ${has}`;
  }
  const predIdx =
    spec.columns.length === 1 ? 'if(probs[1] > 0.5, 1, 0)' : 'arrayFirstIndex(x -> x = arrayMax(probs), probs) - 1';
  // `wide`: one probability per class, a single column p widened to [1 − p, p] (as scikit-learn does).
  return `SELECT model, request_id, row,
      arrayMap(k -> outputs_num[k], {cols:Array(String)}) AS probs,
      if(length(probs) = 1, [1 - probs[1], probs[1]], probs) AS wide,
      ${predIdx} AS pred_idx,
      {classes:Array(String)}[pred_idx + 1] AS pred
    ${where} AND arrayAll(k -> mapContains(outputs_num, k), {cols:Array(String)})`;
}

/** The newest label per (request_id, row) of the window's requests. */
const LABELS = `SELECT request_id, row, argMax(label, received_at) AS label FROM ${Tables.labels}
      WHERE request_id IN (SELECT request_id FROM ${Tables.predictions} WHERE ${WINDOW})
      GROUP BY request_id, row`;

function labelledSelect(spec: PredictionSpec): string {
  return `SELECT p.*, ${norm('l.label')} AS y, indexOf({classes:Array(String)}, y) - 1 AS y_idx
    FROM (${baseSelect(spec)}) AS p
    INNER JOIN (${LABELS}) AS l ON p.request_id = l.request_id AND p.row = l.row`;
}

/**
 * Mann–Whitney sums per model and class from rows with `scores`, `pws` (positive weights) and `nws` (negative
 * weights): grouped by distinct score, negatives below each score counted by a running window sum (ties count half).
 */
function aucSelect(rows: string, scores: string, pws: string, nws: string): string {
  return `SELECT model, c, sum(pos * (cum_neg - neg) + 0.5 * pos * neg) AS u, sum(pos) AS tot_pos, sum(neg) AS tot_neg FROM (
      SELECT model, c, s, pos, neg,
        sum(neg) OVER (PARTITION BY model, c ORDER BY s ASC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum_neg
      FROM (
        SELECT model, t.1 AS c, t.2 AS s, sum(t.3) AS pos, sum(t.4) AS neg FROM (
          SELECT model, arrayJoin(arrayZip(arrayEnumerate(sc), sc, pw, nw)) AS t FROM (
            SELECT model, ${scores} AS sc, ${pws} AS pw, ${nws} AS nw FROM (${rows})
          )
        ) GROUP BY model, c, s
      )
    ) GROUP BY model, c ORDER BY model, c`;
}

/** {@link aucSelect} for one score column (binary): no array expansion (3× faster at 1M rows). */
function aucSelectScalar(rows: string, score: string, pw: string, nw: string): string {
  return `SELECT model, 1 AS c, sum(pos * (cum_neg - neg) + 0.5 * pos * neg) AS u, sum(pos) AS tot_pos, sum(neg) AS tot_neg FROM (
      SELECT model, s, pos, neg, sum(neg) OVER (PARTITION BY model ORDER BY s ASC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cum_neg
      FROM (SELECT model, s, sum(w1) AS pos, sum(w0) AS neg FROM (SELECT model, ${score} AS s, ${pw} AS w1, ${nw} AS w0 FROM (${rows})) GROUP BY model, s)
    ) GROUP BY model`;
}

const posIndexExpr = 'indexOf({classes:Array(String)}, {positive:String})';

async function rowsOf<T>(store: Store, query: string, params: QueryParams): Promise<T[]> {
  return store.query<T>(query, {
    label: 'performance query',
    params,
    // The labelled join builds a hash table of labels; the parallel variant uses every core (~25% faster here).
    settings: { join_algorithm: 'parallel_hash' },
  });
}

/** Rows grouped by their `model` column. */
function byModel<T extends { model: string }>(rows: readonly T[]): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const r of rows) {
    let list = out.get(r.model);
    if (!list) out.set(r.model, (list = []));
    list.push(r);
  }
  return out;
}

interface AucRow {
  model: string;
  c: number | string;
  u: number;
  tot_pos: number;
  tot_neg: number;
}

function aucRows(rows: readonly AucRow[], names: string[]): AucSums[] {
  return rows.map((r) => ({
    cls: names[Number(r.c) - 1] ?? String(r.c),
    u: Number(r.u),
    pos: Number(r.tot_pos),
    neg: Number(r.tot_neg),
  }));
}

/** Classification aggregates over the labelled join, per model, computed in ClickHouse. */
export async function queryClassificationAggregates(
  store: Store,
  spec: PredictionSpec,
  params: QueryParams,
): Promise<Map<string, ClassificationAggregates>> {
  const task = spec.task === 'multiclass' ? 'multiclass' : 'binary';
  const joined = labelledSelect(spec);
  // Confusion counts and log-loss sums in one pass over the labelled join (the join is the expensive part).
  const probs = spec.kind === 'probabilities';
  type Cell = { model: string; actual: string; predicted: string; count: string; unknown: string; ll: number };
  const confusion = byModel(
    await rowsOf<Cell>(
      store,
      probs
        ? `SELECT model, y AS actual, pred AS predicted, count() AS count, countIf(y_idx < 0) AS unknown,
             sumIf(-log(cp[y_idx + 1] / arraySum(cp)), y_idx >= 0) AS ll
           FROM (SELECT model, y, pred, y_idx, arrayMap(v -> least(greatest(v, {eps:Float64}), 1 - {eps:Float64}), wide) AS cp
                 FROM (${joined}))
           GROUP BY model, actual, predicted`
        : `SELECT model, y AS actual, pred AS predicted, count() AS count, 0 AS unknown, 0 AS ll FROM (${joined}) GROUP BY model, actual, predicted`,
      params,
    ),
  );
  let aucByModel = new Map<string, AucRow[]>();
  if (probs && confusion.size > 0) {
    aucByModel = byModel(
      task === 'binary'
        ? await rowsOf<AucRow>(
            store,
            aucSelectScalar(
              joined,
              `wide[${posIndexExpr}]`,
              `toFloat64(y = {positive:String})`,
              `toFloat64(y != {positive:String})`,
            ),
            params,
          )
        : await rowsOf<AucRow>(
            store,
            aucSelect(
              joined,
              'probs',
              'arrayMap(j -> toFloat64(y_idx = j - 1), arrayEnumerate(probs))',
              'arrayMap(j -> toFloat64(y_idx != j - 1), arrayEnumerate(probs))',
            ),
            params,
          ),
    );
  }
  const out = new Map<string, ClassificationAggregates>();
  for (const model of params.models) {
    const cells = confusion.get(model) ?? [];
    let logLoss: ClassificationAggregates['logLoss'] = null;
    let auc: AucSums[] = [];
    if (probs && cells.length > 0) {
      const n = cells.reduce((t, c) => t + Number(c.count), 0);
      const unknown = cells.reduce((t, c) => t + Number(c.unknown), 0);
      if (unknown === 0 && n > 0) logLoss = { sum: cells.reduce((t, c) => t + Number(c.ll), 0), n };
      const r = aucByModel.get(model) ?? [];
      auc = aucRows(r, task === 'binary' ? [spec.positive] : spec.classes);
      // A class with no rows at all has no score group; it still counts (as undefined) in the macro average.
      if (task === 'multiclass' && r.length > 0) {
        auc = spec.classes.map((cls) => auc.find((a) => a.cls === cls) ?? { cls, u: 0, pos: 0, neg: 0 });
      }
    }
    out.set(model, {
      classes: spec.classes,
      positive: spec.positive,
      task,
      confusion: cells.map((c) => ({ actual: c.actual, predicted: c.predicted, count: Number(c.count) })),
      logLoss,
      auc,
    });
  }
  return out;
}

/** Regression sums over the labelled join per model (labels that are not numbers are left out), in ClickHouse. */
export async function queryRegressionAggregates(
  store: Store,
  spec: PredictionSpec,
  params: QueryParams,
): Promise<Map<string, RegressionAggregates>> {
  const rows = await rowsOf<{ model: string; n: string; sa: number; ss: number; sape: number; sst: number }>(
    store,
    `SELECT model, count() AS n, sum(abs(y - v)) AS sa, sum((y - v) * (y - v)) AS ss,
       sum(abs(y - v) / greatest(abs(y), {eps:Float64})) AS sape,
       -- varPopStable is Welford's algorithm: no cancellation in Σy² − (Σy)²/n
       if(n = 0, 0, varPopStable(y) * n) AS sst
     FROM (SELECT p.model AS model, v, toFloat64OrNull(l.label) AS y FROM (${baseSelect(spec)}) AS p
       INNER JOIN (${LABELS}) AS l ON p.request_id = l.request_id AND p.row = l.row)
     WHERE isNotNull(y)
     GROUP BY model`,
    params,
  );
  const found = new Map(rows.map((r) => [r.model, r]));
  const out = new Map<string, RegressionAggregates>();
  for (const model of params.models) {
    const r = found.get(model);
    out.set(model, {
      n: Number(r?.n ?? 0),
      sumAbs: Number(r?.sa ?? 0),
      sumSq: Number(r?.ss ?? 0),
      sumApe: Number(r?.sape ?? 0),
      ssTot: Number(r?.sst ?? 0),
    });
  }
  return out;
}

/** CBPE aggregates per model over every row of the window with probabilities, computed in ClickHouse. */
export async function queryCbpeAggregates(
  store: Store,
  spec: PredictionSpec,
  params: QueryParams,
): Promise<Map<string, CbpeAggregates>> {
  const task = spec.task === 'multiclass' ? 'multiclass' : 'binary';
  const base = baseSelect(spec);
  const per = byModel(
    await rowsOf<{ model: string; c: number; tp: number; fp: number; fn: number; n: string }>(
      store,
      `SELECT model, c, sum(if(pred_idx = c - 1, p, 0)) AS tp, sum(if(pred_idx = c - 1, 1 - p, 0)) AS fp,
         sum(if(pred_idx != c - 1, p, 0)) AS fn, count() AS n
       FROM (SELECT model, arrayJoin(arrayEnumerate(wide)) AS c, wide[c] AS p, pred_idx FROM (${base}))
       GROUP BY model, c ORDER BY model, c`,
      params,
    ),
  );
  const auc = byModel(
    task === 'binary'
      ? await rowsOf<AucRow>(
          store,
          aucSelectScalar(base, `wide[${posIndexExpr}]`, `wide[${posIndexExpr}]`, `1 - wide[${posIndexExpr}]`),
          params,
        )
      : await rowsOf<AucRow>(store, aucSelect(base, 'probs', 'probs', 'arrayMap(x -> 1 - x, probs)'), params),
  );
  const out = new Map<string, CbpeAggregates>();
  for (const model of params.models) {
    const rows = per.get(model) ?? [];
    out.set(model, {
      classes: spec.classes,
      positive: spec.positive,
      task,
      n: Number(rows[0]?.n ?? 0),
      perClass: rows.map((r) => ({
        cls: spec.classes[Number(r.c) - 1] ?? String(r.c),
        tp: Number(r.tp),
        fp: Number(r.fp),
        fn: Number(r.fn),
      })),
      auc: aucRows(auc.get(model) ?? [], task === 'binary' ? [spec.positive] : spec.classes),
    });
  }
  return out;
}

/** Output column names of each model in a window, and its row count (models without rows are absent). */
export async function queryOutputKeys(
  store: Store,
  models: readonly string[],
  fromMs: number,
  toMs: number,
): Promise<Map<string, OutputKeys & { rows: number }>> {
  const rows = await rowsOf<{ model: string; num: string[]; cat: string[]; rows: string }>(
    store,
    `SELECT model, groupUniqArrayArray(mapKeys(outputs_num)) AS num, groupUniqArrayArray(mapKeys(outputs_cat)) AS cat, count() AS rows
     FROM ${Tables.predictions} FINAL WHERE ${WINDOW} GROUP BY model`,
    windowParams(models, fromMs, toMs),
  );
  return new Map(rows.map((r) => [r.model, { num: r.num, cat: r.cat, rows: Number(r.rows) }]));
}

function windowParams(models: readonly string[], fromMs: number, toMs: number, spec?: PredictionSpec): QueryParams {
  return {
    models: [...models],
    from: toChTime(fromMs),
    to: toChTime(toMs),
    cols: spec?.columns ?? [],
    classes: spec?.classes ?? [],
    positive: spec?.positive ?? '1',
    label_key: spec?.labelColumn?.key ?? '',
    eps: FLOAT64_EPS,
  };
}

/**
 * Measured metrics over the window's labelled rows, label coverage and the CBPE estimate, for many models at
 * once: one query for every model's output columns, then per distinct prediction spec (models sharing one run
 * together) the aggregation queries, each grouped by model. Every aggregation (confusion counts, log-loss sums,
 * AUC rank sums, regression sums) runs in ClickHouse; JS only finishes from the small result vectors. The
 * number of statements depends on the number of distinct specs, not of models.
 */
export async function computePerformanceBatch(
  store: Store,
  options: PerformanceBatchOptions,
): Promise<Map<string, PerformanceReport>> {
  const { fromMs, toMs } = options;
  const out = new Map<string, PerformanceReport>();
  if (options.models.length === 0) return out;
  const keys = await queryOutputKeys(
    store,
    options.models.map((m) => m.model),
    fromMs,
    toMs,
  );
  const window = { from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() };
  const groups = new Map<string, { spec: PredictionSpec; models: string[] }>();
  for (const { model, schema } of options.models) {
    const k = keys.get(model) ?? { num: [], cat: [], rows: 0 };
    const spec = resolvePredictionSpec(schema, k);
    out.set(model, {
      model,
      window,
      prediction: spec,
      rows: k.rows,
      labelled_rows: 0,
      label_coverage: null,
      measured: null,
      estimated: null,
    });
    if (!spec || k.rows === 0) continue;
    const id = JSON.stringify(spec);
    let g = groups.get(id);
    if (!g) groups.set(id, (g = { spec, models: [] }));
    g.models.push(model);
  }
  for (const { spec, models } of groups.values()) {
    const params = windowParams(models, fromMs, toMs, spec);
    if (spec.kind === 'value') {
      const aggs = await queryRegressionAggregates(store, spec, params);
      for (const model of models) {
        const report = out.get(model);
        const agg = aggs.get(model);
        if (!report || !agg) continue;
        report.labelled_rows = agg.n;
        report.label_coverage = agg.n / report.rows;
        report.measured = agg.n > 0 ? finishRegression(agg) : null;
      }
      continue;
    }
    const aggs = await queryClassificationAggregates(store, spec, params);
    const cbpe = spec.kind === 'probabilities' ? await queryCbpeAggregates(store, spec, params) : null;
    for (const model of models) {
      const report = out.get(model);
      const agg = aggs.get(model);
      if (!report || !agg) continue;
      report.labelled_rows = agg.confusion.reduce((t, c) => t + c.count, 0);
      report.label_coverage = report.labelled_rows / report.rows;
      if (report.labelled_rows > 0) report.measured = finishClassification(agg);
      const c = cbpe?.get(model);
      if (c) report.estimated = finishCbpe(c);
    }
  }
  return out;
}

/** {@link computePerformanceBatch} for one model. */
export async function computePerformance(store: Store, options: PerformanceOptions): Promise<PerformanceReport> {
  const { model, fromMs, toMs, schema } = options;
  const out = await computePerformanceBatch(store, { models: [{ model, schema }], fromMs, toMs });
  const report = out.get(model);
  if (!report) throw new ModelwatchError(ErrorCodes.internal, `performance of ${model} missing from its own batch`);
  return report;
}
