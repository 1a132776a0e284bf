import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ShadowPool,
  buildLogisticRegression,
  buildMlp,
  compareClassification,
  compareScores,
  demoLogisticRegressionParams,
  demoMlpParams,
  perturb,
  type ShadowModel,
  type ShadowRunResult,
} from '../src/shadow/index.js';
import { inputBatch, modelsFixture } from './fixtures/shadow/load.js';

// The expected labels and disagreement counts come from NumPy (make_fixtures.py), computed from the
// same seeded weights and inputs; here the ONNX models built in TypeScript run in ONNX Runtime.
const fx = modelsFixture();
const rows = fx.inputs.rows;
const features = rows[0]?.length ?? 0;

let pool: ShadowPool;
beforeAll(() => {
  pool = new ShadowPool({ workers: 2 });
});
afterAll(async () => {
  await pool.close();
});

async function runAll(model: ShadowModel): Promise<ShadowRunResult> {
  return pool.run(model, [{ name: 'input', datatype: 'FP32', shape: [rows.length, features], data: inputBatch(rows) }]);
}

function output(r: ShadowRunResult, name: string): ShadowRunResult['outputs'][number] {
  const o = r.outputs.find((t) => t.name === name);
  if (!o) throw new Error(`no output ${name}`);
  return o;
}

function labels(r: ShadowRunResult): number[] {
  return Array.from(output(r, 'label').data as BigInt64Array, Number);
}

function probabilities(r: ShadowRunResult): Float32Array {
  return output(r, 'probabilities').data as Float32Array;
}

describe('demo weights', () => {
  it('the seeded weights and their perturbed copies are the ones the fixture script derived independently', () => {
    expect(demoLogisticRegressionParams()).toEqual(fx.params.lr);
    expect(demoMlpParams()).toEqual(fx.params.mlp);
    expect(perturb(demoLogisticRegressionParams(), fx.perturb)).toEqual(fx.params.lr_perturbed);
    expect(perturb(demoMlpParams(), fx.perturb)).toEqual(fx.params.mlp_perturbed);
  });

  it('refuses malformed weights', () => {
    expect(() => buildLogisticRegression({ weights: [], bias: 0 })).toThrow(/at least one weight/);
    expect(() => buildLogisticRegression({ weights: [1, Number.NaN], bias: 0 })).toThrow(/finite/);
    expect(() => buildMlp({ layers: [{ weights: [[1, 2]], bias: [0] }] })).toThrow(/layer 0/);
  });
});

describe.each([
  [
    'logistic regression',
    'lr',
    () => buildLogisticRegression(fx.params.lr),
    () => buildLogisticRegression(fx.params.lr_perturbed),
    2,
  ],
  ['MLP', 'mlp', () => buildMlp(fx.params.mlp), () => buildMlp(fx.params.mlp_perturbed), 3],
] as const)('%s', (_name, key, original, perturbed, classes) => {
  let production: ShadowRunResult;
  beforeAll(async () => {
    production = await runAll(await pool.load(original()));
  });

  it('predicts the labels NumPy computes for every row, and close probabilities', () => {
    const o = output(production, 'probabilities');
    expect(o.shape).toEqual([rows.length, classes]);
    expect(labels(production)).toEqual(fx.outputs[key].labels);
    const p = probabilities(production);
    fx.outputs[key].probabilities_head.forEach((row, i) =>
      row.forEach((v, j) =>
        expect(Math.abs((p[i * classes + j] as number) - v), `row ${i} class ${j}`).toBeLessThan(1e-6),
      ),
    );
  });

  it('an identical candidate agrees on every row with zero differences', async () => {
    const candidate = await runAll(await pool.load(original()));
    const cls = compareClassification(labels(production), labels(candidate));
    expect(cls.agreement).toBe(1);
    expect(cls.flips).toEqual([]);
    const diff = compareScores(probabilities(production), probabilities(candidate));
    expect(diff.absolute.count).toBe(rows.length * classes);
    expect(diff.absolute.max).toBe(0);
    expect(diff.relative.max).toBe(0);
  });

  it('the perturbed candidate disagrees at exactly the rate NumPy computes, with the same flips', async () => {
    const expected = fx.compare[key];
    const candidate = await runAll(await pool.load(perturbed()));
    expect(labels(candidate)).toEqual(fx.outputs[`${key}_perturbed`].labels);
    const cls = compareClassification(labels(production), labels(candidate));
    expect(cls.rows - cls.agreements).toBe(expected.disagreements);
    expect(cls.agreement).toBeCloseTo(expected.agreement, 12);
    expect(cls.flipMatrix).toEqual(expected.flip_matrix);
    expect(expected.disagreements).toBeGreaterThan(0);
    const diff = compareScores(probabilities(production), probabilities(candidate));
    expect(Math.abs(diff.absolute.p50 - expected.abs_diff_p50)).toBeLessThan(1e-6);
    expect(Math.abs(diff.absolute.p95 - expected.abs_diff_p95)).toBeLessThan(1e-6);
    expect(Math.abs(diff.absolute.max - expected.abs_diff_max)).toBeLessThan(1e-6);
  });
});
