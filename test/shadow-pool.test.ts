import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isModelwatchError, type ModelwatchError } from '../src/common/index.js';
import {
  ShadowPool,
  buildLogisticRegression,
  buildMlp,
  demoLogisticRegressionParams,
  demoMlpParams,
  type ExecutionProviderName,
  type ShadowModel,
  type ShadowTensor,
} from '../src/shadow/index.js';

const { onnx } = onnxProto;
const lrBytes = buildLogisticRegression(demoLogisticRegressionParams());
const mlpBytes = buildMlp(demoMlpParams());

/** A one-node Identity model over one input of the given ONNX element type and shape. */
function identityModel(elemType: number, dims: (number | string)[]): Uint8Array {
  const vi = (name: string) => ({
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  });
  const model = onnx.ModelProto.create({
    irVersion: 7,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'identity',
      node: [{ opType: 'Identity', input: ['x'], output: ['y'] }],
      input: [vi('x')],
      output: [vi('y')],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

async function rejection(p: Promise<unknown>): Promise<ModelwatchError> {
  try {
    await p;
  } catch (err) {
    if (isModelwatchError(err)) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

function fp32(name: string, shape: number[], fill = 0.5): ShadowTensor {
  return { name, datatype: 'FP32', shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(fill) };
}

let pool: ShadowPool;
let lr: ShadowModel;
beforeAll(async () => {
  pool = new ShadowPool({ workers: 2 });
  lr = await pool.load(lrBytes);
});
afterAll(async () => {
  await pool.close();
});

describe('input mapping', () => {
  it('reads the model inputs from the session metadata', () => {
    expect(lr.inputs).toEqual([{ name: 'input', ortType: 'float32', datatype: 'FP32', shape: ['N', 4] }]);
    expect(lr.outputs.map((o) => `${o.name}:${o.datatype}`)).toEqual(['probabilities:FP32', 'label:INT64']);
  });

  it('a missing input names the model input, what it expects and what was received', async () => {
    const err = await rejection(pool.run(lr, [fp32('features', [2, 4])]));
    expect(err.code).toBe('bad_request');
    expect(err.field).toBe('inputs.input');
    expect(err.message).toContain("input 'input'");
    expect(err.message).toContain('expects FP32 [N,4]');
    expect(err.message).toContain('features (FP32 [2,4])');
  });

  it('a datatype mismatch names the tensor, the expected and the received datatype', async () => {
    const err = await rejection(
      pool.run(lr, [{ name: 'input', datatype: 'FP64', shape: [1, 4], data: new Float64Array(4) }]),
    );
    expect(err.code).toBe('bad_request');
    expect(err.message).toMatch(/input 'input': datatype mismatch: the model expects FP32, received FP64/);
  });

  it('a shape mismatch names the tensor, the expected and the received shape', async () => {
    const wrongWidth = await rejection(pool.run(lr, [fp32('input', [2, 5])]));
    expect(wrongWidth.message).toMatch(/input 'input': shape mismatch: the model expects \[N,4\], received \[2,5\]/);
    const wrongRank = await rejection(pool.run(lr, [fp32('input', [8])]));
    expect(wrongRank.message).toMatch(/expects \[N,4\], received \[8\]/);
  });

  it('data that does not fill the shape, or of the wrong array type, is refused', async () => {
    const short = await rejection(
      pool.run(lr, [{ name: 'input', datatype: 'FP32', shape: [2, 4], data: new Float32Array(7) }]),
    );
    expect(short.message).toMatch(/shape \[2,4\] holds 8 elements, received 7/);
    const wrongArray = await rejection(
      pool.run(lr, [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: new Float64Array(4) }]),
    );
    expect(wrongArray.message).toMatch(/FP32 data must be a Float32Array, received a Float64Array/);
  });

  it('an explicit input map feeds a differently named tensor, and a bad map is refused at load', async () => {
    const mapped = await pool.load(lrBytes, { inputMap: { features: 'input' } });
    const r = await pool.run(mapped, [fp32('features', [3, 4]), fp32('ignored', [1])]);
    expect(r.outputs.find((o) => o.name === 'label')?.shape).toEqual([3]);
    const err = await rejection(
      pool.run(mapped, [{ name: 'features', datatype: 'INT32', shape: [1, 4], data: new Int32Array(4) }]),
    );
    expect(err.message).toMatch(
      /tensor 'features' \(mapped to model input 'input'\): datatype mismatch: the model expects FP32, received INT32/,
    );
    const bad = await rejection(pool.load(lrBytes, { inputMap: { features: 'nope' } }));
    expect(bad.code).toBe('config_invalid');
    expect(bad.message).toMatch(/'nope', which is not an input of the model/);
  });

  it('INT64 beyond 2^53 and FP16 bits pass through a model bit for bit', async () => {
    const big = [2n ** 62n + 1n, -(2n ** 60n) - 3n, 9007199254740993n];
    const i64 = await pool.load(identityModel(onnx.TensorProto.DataType.INT64, ['N']));
    const r = await pool.run(i64, [{ name: 'x', datatype: 'INT64', shape: [3], data: BigInt64Array.from(big) }]);
    expect(r.outputs[0]?.datatype).toBe('INT64');
    expect(Array.from(r.outputs[0]?.data as BigInt64Array)).toEqual(big);
    const f16 = await pool.load(identityModel(onnx.TensorProto.DataType.FLOAT16, ['N', 2]));
    const bits = Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0001]);
    const h = await pool.run(f16, [{ name: 'x', datatype: 'FP16', shape: [2, 2], data: bits.slice() }]);
    expect(h.outputs[0]?.datatype).toBe('FP16');
    expect(Array.from(h.outputs[0]?.data as Uint16Array)).toEqual(Array.from(bits));
  });
});

describe('transfer', () => {
  it('moves an input that owns its buffer (detached after run) and copies a view or when told to', async () => {
    const owned = fp32('input', [4, 4]);
    await pool.run(lr, [owned]);
    expect((owned.data as Float32Array).byteLength).toBe(0);

    const big = new Float32Array(64).fill(1);
    const view = big.subarray(8, 24);
    await pool.run(lr, [{ name: 'input', datatype: 'FP32', shape: [4, 4], data: view }]);
    expect(big.byteLength).toBe(256);

    const copying = new ShadowPool({ workers: 1, transferInputs: false });
    try {
      const m = await copying.load(lrBytes);
      const kept = fp32('input', [2, 4]);
      await copying.run(m, [kept]);
      expect((kept.data as Float32Array).length).toBe(8);
    } finally {
      await copying.close();
    }
  });
});

describe('bad models', () => {
  it('corrupt, truncated and empty ONNX files are rejected cleanly and the workers keep serving', async () => {
    const threads = pool.threadIds;
    const garbage = await rejection(pool.load(new Uint8Array([0x08, 0x07, 0xff, 0xff, 0xff, 0x00, 0x42])));
    expect(garbage.code).toBe('input_invalid');
    expect(garbage.message).toMatch(/candidate model could not be loaded: .*protobuf parsing failed/);
    const truncated = await rejection(pool.load(mlpBytes.subarray(0, Math.floor(mlpBytes.length / 2))));
    expect(truncated.code).toBe('input_invalid');
    const empty = await rejection(pool.load(new Uint8Array(0)));
    expect(empty.message).toMatch(/empty/);
    const missing = await rejection(pool.load({ path: join(tmpdir(), 'modelwatch-no-such-model.onnx') }));
    expect(missing.code).toBe('input_invalid');
    expect(missing.message).toMatch(/ENOENT/);
    // Same worker threads, still answering.
    expect(pool.threadIds).toEqual(threads);
    const r = await pool.run(lr, [fp32('input', [2, 4])]);
    expect(r.outputs).toHaveLength(2);
  });

  it('loads a model from a file path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mw-shadow-'));
    try {
      const file = join(dir, 'mlp.onnx');
      writeFileSync(file, mlpBytes);
      const m = await pool.load({ path: file });
      const r = await pool.run(m, [fp32('input', [5, 4])]);
      expect(r.outputs.find((o) => o.name === 'probabilities')?.shape).toEqual([5, 3]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('execution providers', () => {
  const require = createRequire(import.meta.url);
  const bindingDir = join(
    dirname(require.resolve('onnxruntime-node/package.json')),
    'bin',
    'napi-v6',
    process.platform,
    process.arch,
  );
  const cudaInstalled = existsSync(join(bindingDir, 'libonnxruntime_providers_cuda.so'));

  it('cuda then cpu requested: on a host without CUDA it falls back to CPU and says why', async () => {
    const p = new ShadowPool({ workers: 1, executionProviders: ['cuda', 'cpu'] });
    try {
      const m = await p.load(lrBytes);
      expect(m.requestedProviders).toEqual(['cuda', 'cpu']);
      if (cudaInstalled && m.fallbacks.length === 0) {
        expect(m.executionProvider).toBe('cuda');
      } else {
        expect(m.executionProvider).toBe('cpu');
        expect(m.fallbacks[0]?.provider).toBe('cuda');
        expect(m.fallbacks[0]?.reason).toMatch(/Cuda/i);
        if (!cudaInstalled)
          expect(m.fallbacks[0]?.reason).toContain('libonnxruntime_providers_cuda.so is not installed');
      }
      const r = await p.run(m, [fp32('input', [1, 4])]);
      expect(r.outputs).toHaveLength(2);
    } finally {
      await p.close();
    }
  });

  it('auto asks for CUDA only when its provider library is installed, and reports the choice', async () => {
    const p = new ShadowPool({ workers: 1 });
    try {
      const m = await p.load(lrBytes);
      if (cudaInstalled) {
        expect(p.providers).toEqual(['cuda', 'cpu']);
      } else {
        expect(p.providers).toEqual(['cpu']);
        expect(m.executionProvider).toBe('cpu');
        expect(m.fallbacks).toHaveLength(1);
        expect(m.fallbacks[0]?.provider).toBe('cuda');
        expect(m.fallbacks[0]?.reason).toContain('CUDA provider not installed');
      }
    } finally {
      await p.close();
    }
  });

  it('cuda alone on a host without it is a configuration error, not a bad model', async () => {
    const p = new ShadowPool({ workers: 1, executionProviders: ['cuda'] });
    try {
      const loaded = await p.load(lrBytes).then(
        (m) => m,
        (err: unknown) => err,
      );
      if (cudaInstalled && !isModelwatchError(loaded)) {
        expect((loaded as ShadowModel).executionProvider).toBe('cuda');
      } else {
        expect(isModelwatchError(loaded, 'config_invalid'), String(loaded)).toBe(true);
        expect((loaded as ModelwatchError).message).toMatch(/execution provider unavailable: .*Cuda/);
      }
    } finally {
      await p.close();
    }
  });

  it('refuses unknown providers and bad numbers at construction', () => {
    expect(() => new ShadowPool({ executionProviders: ['gpu'] as unknown as ExecutionProviderName[] })).toThrow(
      /executionProviders/,
    );
    expect(() => new ShadowPool({ workers: 0 })).toThrow(/workers/);
    expect(() => new ShadowPool({ intraOpNumThreads: 1.5 })).toThrow(/intraOpNumThreads/);
  });
});

describe('main thread', () => {
  it('keeps a low event-loop lag while the pool is saturated', async () => {
    const mlp = await pool.load(mlpBytes);
    const batch = 1024;
    const histogram = monitorEventLoopDelay({ resolution: 1 });
    histogram.enable();
    const t0 = performance.now();
    let runs = 0;
    let rows = 0;
    let workerMs = 0;
    const used = new Set<number>();
    const lane = async (): Promise<void> => {
      while (performance.now() - t0 < 2_000) {
        const r = await pool.run(mlp, [fp32('input', [batch, 4], Math.random())]);
        runs++;
        rows += batch;
        workerMs += r.runMs;
        used.add(r.worker);
      }
    };
    await Promise.all(Array.from({ length: 2 * pool.size }, lane));
    histogram.disable();
    const p99 = histogram.percentile(99) / 1e6;
    const max = histogram.max / 1e6;
    // Both workers ran batches, and the session time was spent off this thread.
    expect(used.size).toBe(pool.size);
    expect(runs).toBeGreaterThan(10);
    expect(workerMs).toBeGreaterThan(0);
    expect(
      p99,
      `event-loop delay p99 ${p99.toFixed(2)} ms (max ${max.toFixed(2)} ms) over ${runs} batches, ${rows} rows`,
    ).toBeLessThan(100);
  });
});
