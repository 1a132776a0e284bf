/**
 * Small classifiers built as ONNX `ModelProto`s in code (no downloads): a logistic regression and a
 * multilayer perceptron with known weights, plus deliberately perturbed copies. Used by the shadow
 * tests, the benchmark and `modelwatch demo`.
 *
 * Both models take one input `input` of type FP32 and shape `[N, F]` (N symbolic) and produce
 * `probabilities` (FP32 `[N, C]`, rows sum to 1) and `label` (INT64 `[N]`, the arg-max class).
 */
import onnxProto from 'onnx-proto';
import type { onnx as Onnx } from 'onnx-proto';
import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import { mulberry32 } from './random.js';

const { onnx } = onnxProto;

/** Names of the tensors of the built models. */
export const ModelTensorNames = {
  input: 'input',
  probabilities: 'probabilities',
  label: 'label',
} as const;

/** Weights of a binary logistic regression: `p(1) = sigmoid(x · weights + bias)`. */
export interface LogisticRegressionParams {
  /** One weight per feature. */
  weights: readonly number[];
  bias: number;
}

/** One fully connected layer: `y = x · weights + bias`, `weights` indexed `[in][out]`. */
export interface DenseLayer {
  weights: readonly (readonly number[])[];
  bias: readonly number[];
}

/** Weights of a multilayer perceptron: dense layers with ReLU between them and softmax at the end. */
export interface MlpParams {
  layers: readonly DenseLayer[];
}

/** Options of the model builders. */
export interface BuildModelOptions {
  /** Graph name written into the model. @default 'modelwatch-logistic-regression' or 'modelwatch-mlp' */
  graphName?: string;
}

/** Options of {@link perturb}. */
export interface PerturbOptions {
  /** Half-width of the uniform noise added to every weight and bias. @default 0.25 */
  scale?: number;
  /** Seed of the noise (mulberry32). @default 7 */
  seed?: number;
}

/** Options of {@link demoLogisticRegressionParams} and {@link demoMlpParams}. */
export interface DemoParamsOptions {
  /** Number of input features. @default 4 */
  features?: number;
  /** Hidden units (MLP only). @default 8 */
  hidden?: number;
  /** Output classes (MLP only). @default 3 */
  classes?: number;
  /** Seed of the weights (mulberry32). @default 42 for the logistic regression, 43 for the MLP */
  seed?: number;
}

const OPSET = 13;
const IR_VERSION = 7;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

function checkFinite(values: readonly number[], what: string): void {
  for (const v of values) {
    if (!Number.isFinite(v))
      throw new ModelwatchError(ErrorCodes.configInvalid, `${what} must be finite numbers, got ${v}`, { field: what });
  }
}

function initializer(name: string, dims: number[], values: readonly number[]): Onnx.ITensorProto {
  const raw = new Float32Array(values);
  return { name, dims, dataType: FLOAT, rawData: new Uint8Array(raw.buffer) };
}

function valueInfo(name: string, elemType: number, dims: (number | string)[]): Onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  };
}

function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  attribute: Onnx.IAttributeProto[] = [],
): Onnx.INodeProto {
  return { opType, input: inputs, output: outputs, name: `${opType}_${outputs[0] ?? ''}`, attribute };
}

function intAttr(name: string, i: number): Onnx.IAttributeProto {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i };
}

function encode(graph: Onnx.IGraphProto): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'modelwatch',
    producerVersion: '1',
    opsetImport: [{ domain: '', version: OPSET }],
    graph,
  });
  return onnx.ModelProto.encode(model).finish();
}

/** The output nodes shared by both models: arg-max label of the probabilities. */
function labelNode(): Onnx.INodeProto {
  return node(
    'ArgMax',
    [ModelTensorNames.probabilities],
    [ModelTensorNames.label],
    [intAttr('axis', 1), intAttr('keepdims', 0)],
  );
}

/**
 * Serialized ONNX model of a binary logistic regression over `weights.length` FP32 features.
 * Outputs `probabilities` `[N, 2]` (`[1 - p, p]`) and `label` `[N]` (1 when `p > 0.5`).
 */
export function buildLogisticRegression(params: LogisticRegressionParams, options: BuildModelOptions = {}): Uint8Array {
  const f = params.weights.length;
  if (f < 1)
    throw new ModelwatchError(ErrorCodes.configInvalid, 'logistic regression needs at least one weight', {
      field: 'weights',
    });
  checkFinite(params.weights, 'weights');
  checkFinite([params.bias], 'bias');
  const { input, probabilities, label } = ModelTensorNames;
  return encode({
    name: options.graphName ?? 'modelwatch-logistic-regression',
    initializer: [
      initializer('W', [f, 1], params.weights),
      initializer('B', [1], [params.bias]),
      initializer('one', [1], [1]),
    ],
    node: [
      node('MatMul', [input, 'W'], ['xw']),
      node('Add', ['xw', 'B'], ['logit']),
      node('Sigmoid', ['logit'], ['p1']),
      node('Sub', ['one', 'p1'], ['p0']),
      node('Concat', ['p0', 'p1'], [probabilities], [intAttr('axis', 1)]),
      labelNode(),
    ],
    input: [valueInfo(input, FLOAT, ['N', f])],
    output: [valueInfo(probabilities, FLOAT, ['N', 2]), valueInfo(label, INT64, ['N'])],
  });
}

/**
 * Serialized ONNX model of a multilayer perceptron: dense layers with ReLU between them and a softmax
 * over the last layer's outputs. Outputs `probabilities` `[N, C]` and `label` `[N]`.
 */
export function buildMlp(params: MlpParams, options: BuildModelOptions = {}): Uint8Array {
  const { layers } = params;
  if (layers.length < 1)
    throw new ModelwatchError(ErrorCodes.configInvalid, 'an MLP needs at least one layer', { field: 'layers' });
  const { input, probabilities } = ModelTensorNames;
  const initializers: Onnx.ITensorProto[] = [];
  const nodes: Onnx.INodeProto[] = [];
  let prev: string = input;
  let width = layers[0]?.weights.length ?? 0;
  const features = width;
  layers.forEach((layer, i) => {
    const rows = layer.weights.length;
    const cols = layer.bias.length;
    if (rows !== width || rows < 1 || cols < 1 || layer.weights.some((r) => r.length !== cols)) {
      throw new ModelwatchError(
        ErrorCodes.configInvalid,
        `MLP layer ${i}: weights must be [${width}][${cols}] to match the previous layer and the bias`,
        { field: `layers.${i}` },
      );
    }
    const flat = layer.weights.flat();
    checkFinite(flat, `layers.${i}.weights`);
    checkFinite(layer.bias, `layers.${i}.bias`);
    initializers.push(initializer(`W${i}`, [rows, cols], flat), initializer(`B${i}`, [cols], layer.bias));
    nodes.push(node('MatMul', [prev, `W${i}`], [`mm${i}`]), node('Add', [`mm${i}`, `B${i}`], [`z${i}`]));
    prev = `z${i}`;
    if (i < layers.length - 1) {
      nodes.push(node('Relu', [prev], [`h${i}`]));
      prev = `h${i}`;
    }
    width = cols;
  });
  nodes.push(node('Softmax', [prev], [probabilities], [intAttr('axis', 1)]), labelNode());
  return encode({
    name: options.graphName ?? 'modelwatch-mlp',
    initializer: initializers,
    node: nodes,
    input: [valueInfo(input, FLOAT, ['N', features])],
    output: [valueInfo(probabilities, FLOAT, ['N', width]), valueInfo(ModelTensorNames.label, INT64, ['N'])],
  });
}

function isMlp(p: LogisticRegressionParams | MlpParams): p is MlpParams {
  return 'layers' in p;
}

/**
 * A copy of `params` with uniform noise in `[-scale, scale)` added to every parameter, drawn from
 * mulberry32(`seed`) in a fixed order: logistic regression weights then bias; MLP layer by layer,
 * weights row-major (`[in][out]`) then bias. Deterministic, so the disagreement it causes can be
 * computed independently.
 */
export function perturb<P extends LogisticRegressionParams | MlpParams>(params: P, options: PerturbOptions = {}): P {
  const scale = options.scale ?? 0.25;
  const seed = options.seed ?? 7;
  if (!(Number.isFinite(scale) && scale >= 0)) {
    throw new ModelwatchError(ErrorCodes.configInvalid, `perturb scale must be a finite number >= 0, got ${scale}`, {
      field: 'scale',
    });
  }
  const rng = mulberry32(seed);
  const noise = (v: number): number => v + scale * (2 * rng() - 1);
  if (isMlp(params)) {
    const layers = params.layers.map((l) => ({
      weights: l.weights.map((row) => row.map(noise)),
      bias: l.bias.map(noise),
    }));
    return { ...params, layers };
  }
  const weights = params.weights.map(noise);
  return { ...params, weights, bias: noise(params.bias) };
}

function uniform(rng: () => number, lo: number, hi: number): number {
  return lo + (hi - lo) * rng();
}

/**
 * Known, seeded weights of the demo logistic regression: weights uniform in [-2, 2) and bias in
 * [-0.5, 0.5), drawn from mulberry32(`seed`) in that order.
 */
export function demoLogisticRegressionParams(options: DemoParamsOptions = {}): LogisticRegressionParams {
  const features = options.features ?? 4;
  const rng = mulberry32(options.seed ?? 42);
  const weights = Array.from({ length: features }, () => uniform(rng, -2, 2));
  return { weights, bias: uniform(rng, -0.5, 0.5) };
}

/**
 * Known, seeded weights of the demo MLP (`features → hidden → classes`): every weight and bias uniform
 * in [-1, 1), drawn from mulberry32(`seed`) layer by layer, weights row-major then bias.
 */
export function demoMlpParams(options: DemoParamsOptions = {}): MlpParams {
  const features = options.features ?? 4;
  const hidden = options.hidden ?? 8;
  const classes = options.classes ?? 3;
  const rng = mulberry32(options.seed ?? 43);
  const layer = (rows: number, cols: number): DenseLayer => ({
    weights: Array.from({ length: rows }, () => Array.from({ length: cols }, () => uniform(rng, -1, 1))),
    bias: Array.from({ length: cols }, () => uniform(rng, -1, 1)),
  });
  return { layers: [layer(features, hidden), layer(hidden, classes)] };
}
