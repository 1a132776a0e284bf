/**
 * What the demo serves and sends: a binary credit-risk classifier over four standardized features (an
 * ONNX logistic regression built in code), the traffic it sees before and during the drift, and the
 * ground truth behind it.
 */
import type { ConfigInput } from '../config/schema.js';
import {
  ModelTensorNames,
  buildLogisticRegression,
  demoLogisticRegressionParams,
  mulberry32,
  perturb,
  type LogisticRegressionParams,
  type Random,
} from '../shadow/index.js';

/** Name of the demo model (the V2 model name and the name modelwatch stores it under). */
export const DEMO_MODEL = 'credit-risk';
/** Version the demo model server reports. */
export const DEMO_VERSION = '1';
/** The four input features, in tensor column order (z-scores). */
export const DEMO_FEATURES = ['income', 'debt_ratio', 'age', 'utilization'] as const;
/** File name of the candidate model written to the shadow candidates folder. */
export const CANDIDATE_FILE = 'candidate.onnx';

/** How the drift changes each feature (mean shift and spread factor, in standard deviations). */
export const DRIFT_SHIFT: Readonly<Record<(typeof DEMO_FEATURES)[number], { shift: number; scale: number }>> = {
  income: { shift: 1.5, scale: 1 },
  debt_ratio: { shift: 0, scale: 2 },
  age: { shift: 0, scale: 1 },
  utilization: { shift: -1, scale: 1 },
};

/** One line saying what the drift does, for the progress display. */
export function driftDescription(): string {
  const parts: string[] = [];
  for (const [name, d] of Object.entries(DRIFT_SHIFT)) {
    if (d.shift !== 0) parts.push(`${name} ${d.shift > 0 ? '+' : '−'}${Math.abs(d.shift)}σ`);
    if (d.scale !== 1) parts.push(`${name} spread ×${d.scale}`);
  }
  return `${parts.join(', ')}; the label relation flips (concept drift)`;
}

/** The production model's weights (seeded, so every run of the demo serves the same model). */
export function demoModelParams(): LogisticRegressionParams {
  return demoLogisticRegressionParams({ features: DEMO_FEATURES.length, seed: 42 });
}

/** The production model as a serialized ONNX model. */
export function demoModelBytes(): Uint8Array {
  return buildLogisticRegression(demoModelParams(), { graphName: DEMO_MODEL });
}

/** The candidate for the shadow replay: the production model with its weights perturbed. */
export function candidateModelBytes(): Uint8Array {
  return buildLogisticRegression(perturb(demoModelParams(), { scale: 0.6, seed: 7 }), {
    graphName: `${DEMO_MODEL}-candidate`,
  });
}

/**
 * The model schema the demo configures: named features over the `input` tensor's columns, a binary task
 * read from the `probabilities` tensor with classes `0` and `1`, and one drift method for every feature
 * (normalized Wasserstein distance, whose score keeps one meaning whatever the row count).
 */
export function demoModelSchema(): DemoModelConfig {
  return {
    task: 'binary',
    features: DEMO_FEATURES.map((name, index) => ({
      name,
      tensor: ModelTensorNames.input,
      index,
      kind: 'numeric' as const,
    })),
    categorical: [],
    prediction: { tensor: ModelTensorNames.probabilities, kind: 'probabilities' },
    classes: ['0', '1'],
    // The demo's windows hold ~500 rows: two samples of that size from one distribution are ~0.07 apart in
    // normed Wasserstein distance (permutation mean; its 95th percentile ~0.12), so the default threshold 0.1
    // would flag unchanged features about one run in five. 0.2 stays clear of that noise, far below the
    // injected shifts (0.8–1.5).
    drift: { default: { method: 'wasserstein_norm', threshold: 0.2 }, features: {} },
  };
}

/** One entry of the config's `models` map. */
export type DemoModelConfig = NonNullable<ConfigInput['models']>[string];

/** A batch of rows and the ground truth of each. */
export interface DemoBatch {
  /** Row-major `[rows, features]`. */
  values: number[];
  /** Ground-truth class of each row (0 or 1). */
  labels: number[];
}

/** Draws the demo's rows and their ground truth from a seeded generator. */
export class DemoData {
  private readonly rng: Random;
  private spare: number | undefined;

  constructor(
    private readonly params: LogisticRegressionParams = demoModelParams(),
    seed = 2024,
  ) {
    this.rng = mulberry32(seed);
  }

  /** A standard normal draw (Box–Muller, both values used). */
  private normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    const u = Math.max(this.rng(), Number.MIN_VALUE);
    const v = this.rng();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /**
   * `rows` rows. Before the drift every feature is N(0, 1) and the truth follows the model
   * (P(1) = sigmoid(w·x + b)), so the model is right about as often as it is confident. With `drifted`,
   * features move as {@link DRIFT_SHIFT} says and the truth is flipped, so accuracy falls although the
   * model's confidence (what a label-free estimate sees) does not.
   */
  batch(rows: number, drifted: boolean): DemoBatch {
    const values: number[] = [];
    const labels: number[] = [];
    for (let i = 0; i < rows; i++) {
      let z = this.params.bias;
      DEMO_FEATURES.forEach((name, j) => {
        const d = drifted ? DRIFT_SHIFT[name] : { shift: 0, scale: 1 };
        const x = d.shift + d.scale * this.normal();
        values.push(x);
        z += (this.params.weights[j] ?? 0) * x;
      });
      const p = 1 / (1 + Math.exp(-z));
      const y = this.rng() < p ? 1 : 0;
      labels.push(drifted ? 1 - y : y);
    }
    return { values, labels };
  }

  /** A uniform draw in [0, 1). */
  uniform(): number {
    return this.rng();
  }
}
