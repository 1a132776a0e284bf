/**
 * Reading the prediction of a flattened output row (production's stored one or the candidate's) the way
 * the performance module does, so production and candidate are read with one rule.
 */
import type { ModelSchema } from '../config/model-schema.js';
import { predictedIndex } from '../drift/performance/metrics.js';
import { resolvePredictionSpec } from '../drift/performance/query.js';
import type { PredictionSpec } from '../drift/performance/types.js';
import { flattenTensors, type FlatRow } from '../protocol/index.js';
import { toDecoded } from './inputs.js';
import type { ShadowTensor } from './tensors.js';

export type { PredictionSpec } from '../drift/performance/types.js';

const tensorOf = (key: string): string => key.replace(/_\d+$/, '');

/**
 * The prediction spec of a model from its output columns. With `schema.prediction` the performance
 * module's rule applies; without it, the numeric output tensor with the most columns (≥ 2) is read as
 * class probabilities (e.g. `probabilities` over an arg-max `label`), else the performance default.
 */
export function predictionSpecOf(
  schema: ModelSchema | undefined,
  keys: { num: string[]; cat: string[] },
): PredictionSpec | null {
  if (schema?.prediction !== undefined || schema?.task === 'regression') return resolvePredictionSpec(schema, keys);
  const width = new Map<string, number>();
  for (const k of keys.num) width.set(tensorOf(k), (width.get(tensorOf(k)) ?? 0) + 1);
  const best = [...width].filter(([, w]) => w >= 2).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0];
  if (best === undefined) return resolvePredictionSpec(schema, keys);
  return resolvePredictionSpec(
    { features: [], categorical: [], ...schema, prediction: { tensor: best[0], kind: 'probabilities' } },
    keys,
  );
}

/** The prediction columns' values of a row (NaN where missing). */
export function scoresOf(spec: PredictionSpec, row: Pick<FlatRow, 'outputs_num'>): number[] {
  return spec.columns.map((c) => row.outputs_num[c] ?? NaN);
}

/** The predicted class of a row, or undefined (regression, or the columns are missing). */
export function labelOf(spec: PredictionSpec, row: Pick<FlatRow, 'outputs_num' | 'outputs_cat'>): string | undefined {
  if (spec.task === 'regression' || spec.kind === 'value') return undefined;
  if (spec.kind === 'label') {
    const lc = spec.labelColumn;
    if (lc === undefined) return undefined;
    const v = lc.map === 'cat' ? row.outputs_cat[lc.key] : row.outputs_num[lc.key];
    return v === undefined ? undefined : String(v);
  }
  const p = scoresOf(spec, row);
  if (p.length === 0 || p.some((x) => !Number.isFinite(x))) return undefined;
  if (p.length === 1) return (p[0] as number) > 0.5 ? spec.positive : (spec.classes[0] ?? '0');
  return spec.classes[predictedIndex(p)] ?? String(predictedIndex(p));
}

/** Class probabilities of a row as CBPE reads them, or undefined. */
export function probabilitiesOf(spec: PredictionSpec, row: Pick<FlatRow, 'outputs_num'>): number[] | undefined {
  if (spec.kind !== 'probabilities' || spec.task === 'regression') return undefined;
  const p = scoresOf(spec, row);
  return p.every(Number.isFinite) ? p : undefined;
}

/** Flattens candidate outputs into per-row columns named like ingest names production's. */
export function flattenOutputs(outputs: readonly ShadowTensor[], rows: number, schema: ModelSchema): FlatRow[] {
  const batch = { name: '__rows', datatype: 'FP32' as const, shape: [rows], values: new Float64Array(rows) };
  return flattenTensors([batch], outputs.map(toDecoded), schema);
}
