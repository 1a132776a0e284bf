import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelSchema } from '../src/config/model-schema.js';
import {
  classificationAggregates,
  computePerformance,
  finishClassification,
  finishRegression,
  regressionAggregates,
  resolvePredictionSpec,
} from '../src/drift/performance/index.js';
import type { ClassificationMetrics, RegressionMetrics } from '../src/drift/performance/index.js';
import type { ClickHouseStore, PredictionRow } from '../src/store/index.js';
import { openTestStore } from './support/store.js';

interface Case {
  name: string;
  task: 'binary' | 'multiclass' | 'regression';
  classes?: string[];
  positive?: string;
  actual: Array<string | number>;
  probabilities?: number[][];
  predicted?: string[];
  predicted_values?: number[];
  expected: Record<string, number | string[] | number[][]>;
}

const fixtures = JSON.parse(readFileSync(new URL('./fixtures/performance/fixtures.json', import.meta.url), 'utf8')) as {
  sklearn: string;
  cases: Case[];
};

const close = (actual: number | null, expected: number, name: string): void => {
  expect(actual, name).not.toBeNull();
  const tol = 1e-9 * Math.max(Math.abs(expected), 1e-300);
  expect(Math.abs((actual as number) - expected), `${name}: ${actual} vs ${expected}`).toBeLessThanOrEqual(tol);
};

function checkClassification(m: ClassificationMetrics, c: Case): void {
  const e = c.expected;
  const scalar = [
    'accuracy',
    'precision_macro',
    'recall_macro',
    'f1_macro',
    'precision_weighted',
    'recall_weighted',
    'f1_weighted',
    'precision',
    'recall',
    'f1',
    'roc_auc',
    'log_loss',
  ] as const;
  let compared = 0;
  for (const k of scalar) {
    const v = e[k];
    if (typeof v !== 'number') {
      if (k === 'roc_auc' || k === 'log_loss') expect(m[k], `${c.name}.${k}`).toBeNull();
      continue;
    }
    close(m[k], v, `${c.name}.${k}`);
    compared++;
  }
  expect(compared).toBeGreaterThanOrEqual(7);
  expect(m.confusion_matrix.labels).toEqual(e.confusion_labels);
  expect(m.confusion_matrix.matrix).toEqual(e.confusion_matrix);
}

function checkRegression(m: RegressionMetrics, c: Case): void {
  for (const k of ['mae', 'rmse', 'mape', 'r2'] as const) close(m[k], c.expected[k] as number, `${c.name}.${k}`);
}

const classificationCases = fixtures.cases.filter((c) => c.task !== 'regression');
const regressionCases = fixtures.cases.filter((c) => c.task === 'regression');

describe('performance metrics, pure-JS finish vs scikit-learn', () => {
  it('has the fixture cases', () => {
    expect(classificationCases.length).toBeGreaterThanOrEqual(8);
    expect(regressionCases.length).toBeGreaterThanOrEqual(4);
  });

  it.each(classificationCases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const agg = classificationAggregates({
      task: c.task as 'binary' | 'multiclass',
      classes: c.classes ?? [],
      positive: c.positive ?? '1',
      actual: c.actual.map(String),
      ...(c.probabilities ? { probabilities: c.probabilities } : {}),
      ...(c.predicted ? { predicted: c.predicted } : {}),
    });
    checkClassification(finishClassification(agg), c);
  });

  it.each(regressionCases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    checkRegression(finishRegression(regressionAggregates(c.actual as number[], c.predicted_values ?? [])), c);
  });
});

describe('resolvePredictionSpec defaults', () => {
  it('reads one numeric column as binary P(positive), three as multiclass, a categorical output as the label', () => {
    expect(resolvePredictionSpec(undefined, { num: ['prob_0'], cat: [] })).toMatchObject({
      task: 'binary',
      kind: 'probabilities',
      columns: ['prob_0'],
      classes: ['0', '1'],
      positive: '1',
    });
    expect(resolvePredictionSpec(undefined, { num: ['p_10', 'p_2', 'p_0', 'z_0'], cat: [] })).toMatchObject({
      task: 'multiclass',
      columns: ['p_0', 'p_2', 'p_10'],
      classes: ['0', '1', '2'],
    });
    expect(resolvePredictionSpec(undefined, { num: [], cat: ['label_0'] })).toMatchObject({
      kind: 'label',
      labelColumn: { map: 'cat', key: 'label_0' },
    });
    expect(
      resolvePredictionSpec({ features: [], categorical: [], task: 'regression' }, { num: ['y_0', 'y_1'], cat: [] }),
    ).toMatchObject({
      task: 'regression',
      kind: 'value',
      columns: ['y_0'],
    });
    expect(resolvePredictionSpec(undefined, { num: [], cat: [] })).toBeNull();
  });
});

describe('performance through ClickHouse (chdb) vs scikit-learn', () => {
  let store: ClickHouseStore;
  let cleanup: () => Promise<void>;
  const t0 = Date.parse('2026-11-01T10:00:00Z');
  const from = t0 - 1000;
  const to = t0 + 3_600_000;

  const schemaFor = (c: Case): ModelSchema | undefined => {
    if (c.task === 'regression')
      return { features: [], categorical: [], task: 'regression', prediction: { tensor: 'y', kind: 'value' } };
    if (c.predicted)
      return {
        features: [],
        categorical: [],
        task: c.task,
        prediction: { tensor: 'label', kind: 'label' },
        ...(c.classes ? { classes: c.classes } : {}),
      };
    // Odd-numbered cases go without a schema to exercise the defaults.
    if (fixtures.cases.indexOf(c) % 2 === 1) return undefined;
    return {
      features: [],
      categorical: [],
      task: c.task,
      prediction: { tensor: 'p', kind: 'probabilities' },
      ...(c.classes ? { classes: c.classes } : {}),
    };
  };

  beforeAll(async () => {
    ({ store, cleanup } = await openTestStore());
    const predictions: PredictionRow[] = [];
    const labels: Array<{ request_id: string; row: number; label: string; received_at: string }> = [];
    fixtures.cases.forEach((c, ci) => {
      const n = c.actual.length;
      for (let i = 0; i < n; i++) {
        const outputs_num: Record<string, number> = {};
        const outputs_cat: Record<string, string> = {};
        if (c.probabilities) c.probabilities[i]?.forEach((p, j) => (outputs_num[`p_${j}`] = p));
        else if (c.predicted) outputs_cat.label_0 = c.predicted[i] ?? '';
        else outputs_num.y_0 = c.predicted_values?.[i] ?? 0;
        // Rows 2 per request, to exercise the (request_id, row) join.
        const request_id = `${c.name}-${Math.floor(i / 2)}`;
        const row = i % 2;
        predictions.push({
          model: c.name,
          version: '1',
          ts: t0 + i * 1000,
          event_id: `${c.name}-e${i}`,
          request_id,
          row,
          features_num: { x_0: i },
          features_cat: {},
          outputs_num,
          outputs_cat,
        });
        const actual = String(c.actual[i]);
        // Numeric class labels sometimes posted as "1.0": they must still match class "1".
        const posted = c.task === 'binary' && ci % 2 === 1 && /^\d+$/.test(actual) ? `${actual}.0` : actual;
        // A stale wrong label first; the newest label wins.
        labels.push({ request_id, row, label: 'stale', received_at: '2026-11-01 09:00:00.000' });
        labels.push({ request_id, row, label: posted, received_at: '2026-11-01 12:00:00.000' });
      }
      // Unlabelled rows lower the label coverage but not the measured metrics.
      for (let i = 0; i < 5; i++) {
        predictions.push({
          model: c.name,
          version: '1',
          ts: t0 + (n + i) * 1000,
          event_id: `${c.name}-u${i}`,
          request_id: `${c.name}-unlabelled-${i}`,
          row: 0,
          features_num: {},
          features_cat: {},
          outputs_num: c.probabilities
            ? Object.fromEntries((c.probabilities[0] ?? []).map((p, j) => [`p_${j}`, p]))
            : c.predicted
              ? {}
              : { y_0: 1 },
          outputs_cat: c.predicted ? { label_0: c.predicted[0] ?? '' } : {},
        });
      }
      // A row outside the window with a label must not count.
      predictions.push({
        model: c.name,
        version: '1',
        ts: from - 10_000,
        event_id: `${c.name}-old`,
        request_id: `${c.name}-old`,
        row: 0,
        features_num: {},
        features_cat: {},
        outputs_num: predictions[predictions.length - 1]?.outputs_num ?? {},
        outputs_cat: predictions[predictions.length - 1]?.outputs_cat ?? {},
      });
      labels.push({ request_id: `${c.name}-old`, row: 0, label: 'stale', received_at: '2026-11-01 12:00:00.000' });
    });
    await store.insertPredictions(predictions);
    await store.insert('mw_labels', labels);
  });

  afterAll(async () => {
    await cleanup();
  });

  it.each(fixtures.cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const schema = schemaFor(c);
    const report = await computePerformance(store, {
      model: c.name,
      fromMs: from,
      toMs: to,
      ...(schema ? { schema } : {}),
    });
    const n = c.actual.length;
    expect(report.rows).toBe(n + 5);
    expect(report.labelled_rows).toBe(n);
    close(report.label_coverage, n / (n + 5), 'label_coverage');
    expect(report.measured).not.toBeNull();
    if (c.task === 'regression') {
      checkRegression(report.measured as RegressionMetrics, c);
      expect(report.estimated).toBeNull();
    } else {
      checkClassification(report.measured as ClassificationMetrics, c);
      if (c.probabilities) expect(report.estimated?.rows).toBe(n + 5);
      else expect(report.estimated).toBeNull();
    }
  });

  it('reads a numeric label output and numeric label text in canonical form', async () => {
    const actual = ['0', '1', '2', '2', '1', '0', '2', '1'];
    const predicted = [0, 1, 1, 2, 1, 2, 2, 0];
    await store.insertPredictions(
      predicted.map((p, i) => ({
        model: 'numlabel',
        version: '',
        ts: t0 + i,
        event_id: `nl-${i}`,
        request_id: `nl-${i}`,
        row: 0,
        features_num: {},
        features_cat: {},
        outputs_num: { cls_0: p },
        outputs_cat: {},
      })),
    );
    await store.insertLabels(
      actual.map((a, i) => ({ request_id: `nl-${i}`, row: 0, label: i % 2 === 0 ? `${a}.0` : a })),
    );
    const schema: ModelSchema = {
      features: [],
      categorical: [],
      task: 'multiclass',
      prediction: { tensor: 'cls', kind: 'label' },
      classes: ['0', '1', '2'],
    };
    const report = await computePerformance(store, { model: 'numlabel', fromMs: from, toMs: to, schema });
    const expected = finishClassification(
      classificationAggregates({
        task: 'multiclass',
        classes: ['0', '1', '2'],
        positive: '1',
        actual,
        predicted: predicted.map(String),
      }),
    );
    expect(report.measured).toEqual(expected);
    expect((report.measured as ClassificationMetrics).accuracy).toBe(5 / 8);
    expect(report.estimated).toBeNull();
  });

  it('reports an unknown model as zero rows, no metrics', async () => {
    const report = await computePerformance(store, { model: 'nope', fromMs: from, toMs: to });
    expect(report).toMatchObject({ rows: 0, labelled_rows: 0, label_coverage: null, measured: null, estimated: null });
  });
});
