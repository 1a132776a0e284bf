import { describe, expect, it } from 'vitest';
import { isModelwatchError } from '../src/common/errors.js';
import { loadConfig } from '../src/config/index.js';
import { embeddingColumnsSkipped, embeddingFeatures, modelSchemaSchema } from '../src/config/model-schema.js';
import { multivariateSettings, MultivariateDefaults } from '../src/drift/mv-detect.js';
import { flattenTensors } from '../src/protocol/flatten.js';

function configError(overrides: Record<string, unknown>): string {
  try {
    loadConfig({ env: {}, overrides });
  } catch (err) {
    expect(isModelwatchError(err)).toBe(true);
    return (err as Error).message;
  }
  throw new Error('the config was accepted');
}

describe('multivariate config', () => {
  it('fills every default, then the top-level section, then the model section key by key', () => {
    const config = loadConfig({
      env: {},
      overrides: {
        multivariate: { classifier: { threshold: 0.6 }, mmd: { permutations: 50 } },
        models: { m: { multivariate: { classifier: { folds: 3 }, methods: ['reconstruction'] } } },
      },
    });
    const m = multivariateSettings(config, 'm');
    expect(m.classifier).toEqual({ ...MultivariateDefaults.classifier, threshold: 0.6, folds: 3 });
    expect(m.mmd.permutations).toBe(50);
    expect(m.methods).toEqual(['reconstruction']);
    expect(m.reconstruction).toEqual({ varianceShare: 0.65, bandStd: 3, chunks: 10 });
    const other = multivariateSettings(config, 'other');
    expect(other.methods).toBe('auto');
    expect(other.classifier.folds).toBe(5);
    expect(multivariateSettings(loadConfig({ env: {} }), 'x')).toEqual(MultivariateDefaults);
  });

  it('rejects bad values naming the field', () => {
    expect(configError({ multivariate: { classifier: { threshold: 0.4 } } })).toContain(
      'multivariate.classifier.threshold',
    );
    expect(configError({ models: { m: { multivariate: { reconstruction: { varianceShare: 1.5 } } } } })).toContain(
      'models.m.multivariate.reconstruction.varianceShare',
    );
    expect(configError({ models: { m: { multivariate: { methods: ['pca'] } } } })).toContain(
      'models.m.multivariate.methods',
    );
    expect(configError({ multivariate: { mmd: { permutation: 10 } } })).toContain('permutation');
  });

  it('an embedding feature needs dim; dim and univariate need kind embedding', () => {
    expect(
      configError({ models: { m: { features: [{ name: 'text', tensor: 'emb', kind: 'embedding' }] } } }),
    ).toContain('models.m.features.0.dim');
    expect(configError({ models: { m: { features: [{ name: 'a', tensor: 'x', index: 1, dim: 4 }] } } })).toContain(
      'models.m.features.0.dim',
    );
  });
});

describe('embedding features', () => {
  const schema = modelSchemaSchema.parse({
    features: [
      { name: 'text', tensor: 'emb', kind: 'embedding', index: 2, dim: 3 },
      { name: 'named', tensor: 'emb', index: 3 },
      { name: 'all', tensor: 'img', kind: 'embedding', dim: 2, univariate: true },
    ],
  });

  it('maps to the stored element columns (default names, or the names other entries give)', () => {
    expect(embeddingFeatures(schema)).toEqual([
      { name: 'text', tensor: 'emb', start: 2, dim: 3, columns: ['emb_2', 'named', 'emb_4'], univariate: false },
      { name: 'all', tensor: 'img', start: 0, dim: 2, columns: ['img_0', 'img_1'], univariate: true },
    ]);
    expect([...embeddingColumnsSkipped(schema)]).toEqual(['emb_2', 'named', 'emb_4']);
  });

  it('ingest stores the elements under those columns: the embedding entry renames nothing', () => {
    const rows = flattenTensors(
      [
        { name: 'emb', datatype: 'FP32', shape: [2, 6], values: [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15] },
        { name: 'img', datatype: 'FP32', shape: [2, 2], values: [7, 8, 9, 10] },
      ],
      undefined,
      schema,
    );
    expect(rows[1]?.features_num).toEqual({
      emb_0: 10,
      emb_1: 11,
      emb_2: 12,
      named: 13,
      emb_4: 14,
      emb_5: 15,
      img_0: 9,
      img_1: 10,
    });
    const cols = embeddingFeatures(schema)[0]?.columns ?? [];
    expect(cols.map((c) => rows[0]?.features_num[c])).toEqual([2, 3, 4]);
  });
});
