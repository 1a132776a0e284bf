import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  componentDrift,
  componentShareMethod,
  computeMultivariateDrift,
  domainClassifierDrift,
  domainClassifierMethod,
  fitReconstruction,
  meanDistanceMethod,
  mmdDrift,
  mmdMethod,
  reconstructionDrift,
  runMultivariateDrift,
  seededRng,
  type Rng,
} from '../src/drift/multivariate/index.js';

// Detection cases of the multivariate and embedding methods: a flipped correlation (unchanged
// marginals), a rotated cluster of 384-dimensional embeddings, and unchanged controls whose false-alarm
// count over repeated seeds must stay within a binomial bound of each method's stated rate.

const dir = new URL('./fixtures/multivariate/', import.meta.url);
function csv(name: string): number[][] {
  const lines = readFileSync(new URL(name, dir), 'utf8').trim().split('\n').slice(1);
  return lines.map((l) => l.split(',').map(Number));
}

function normal(rng: Rng): number {
  const u = 1 - rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng());
}

/** n rows of 5 features: (x0, x1) correlated with `rho`, x2..x4 independent. */
function tabular(n: number, rho: number, rng: Rng): number[][] {
  return Array.from({ length: n }, () => {
    const a = normal(rng);
    const b = rho * a + Math.sqrt(1 - rho * rho) * normal(rng);
    return [a, b, normal(rng), 2 + normal(rng), -normal(rng)];
  });
}

const DIM = 384;
/**
 * Unit-norm 384-d "sentence embeddings": one cluster around a fixed centre, elongated along `axis`
 * (spread 0.5) with isotropic noise (0.02 per component), then normalised.
 */
function embeddings(n: number, axis: Float64Array, rng: Rng): number[][] {
  const centre = seededRng(99);
  const mu = Array.from({ length: DIM }, () => normal(centre) / Math.sqrt(DIM));
  return Array.from({ length: n }, () => {
    const s = 0.5 * normal(rng);
    const v = mu.map((m, j) => m + s * (axis[j] ?? 0) + 0.02 * normal(rng));
    const norm = Math.sqrt(v.reduce((t, x) => t + x * x, 0));
    return v.map((x) => x / norm);
  });
}
/** Unit vector spread over `dims` (each ±1/√k): the cluster's long axis before and after a 90° rotation. */
function axisOver(dims: readonly number[]): Float64Array {
  const a = new Float64Array(DIM);
  for (const j of dims) a[j] = 1 / Math.sqrt(dims.length);
  return a;
}
const before = axisOver([0, 1, 2, 3, 4, 5, 6, 7]);
const after = axisOver([8, 9, 10, 11, 12, 13, 14, 15]); // orthogonal to `before`: a 90° rotation

/** Largest false-alarm count k with P(Bin(n, rate) ≥ k + 1) ≥ 0.001: more than this fails the rate. */
function binomialBound(n: number, rate: number): number {
  let k = n;
  let tail = 0;
  // P(X ≥ k) summed from the top until it reaches 0.001.
  const lnC = (m: number): number => {
    let s = 0;
    for (let i = 1; i <= m; i++) s += Math.log((n - m + i) / i);
    return s;
  };
  while (k > 0) {
    tail += Math.exp(lnC(k) + k * Math.log(rate) + (n - k) * Math.log(1 - rate));
    if (tail >= 0.001) return k;
    k--;
  }
  return 0;
}

describe('detection cases', () => {
  it('a flipped correlation with unchanged marginals: no KS test fires, reconstruction and the classifier do (in workers)', async () => {
    const reference = csv('reference.csv');
    const flip = csv('current_flip.csv');
    const ks = componentDrift(reference, flip, { alpha: 0.05, threshold: 0 });
    expect(ks.drifted).toEqual([]);
    const recon = await reconstructionDrift(reference, flip, { chunkSize: 100 });
    expect(recon).toMatchObject({
      method: 'reconstruction',
      drift: true,
      p_value: null,
      n_reference: 600,
      n_current: 200,
    });
    expect(recon.statistic).toBeGreaterThan(recon.details.upper);
    expect(recon.threshold).toBe(recon.details.upper);
    expect(recon.details.componentsKept).toBe(fitReconstruction(reference, { chunkSize: 100 }).nComponents);
    const clf = await domainClassifierMethod(reference, flip, { features: ['x1', 'x2', 'x3', 'x4', 'x5'], workers: 1 });
    expect(clf).toMatchObject({ method: 'domain_classifier', drift: true, threshold: 0.55, p_value: null });
    expect(clf.statistic).toBeGreaterThan(0.7);
    expect(clf.details.ciLow).toBeGreaterThan(0.5);
    expect(new Set(clf.details.importance.slice(0, 2).map((f) => f.feature))).toEqual(new Set(['x1', 'x2']));
    const same = await reconstructionDrift(reference, csv('current_same.csv'), { chunkSize: 100 });
    expect(same.drift).toBe(false);
  });

  it('a rotated cluster of 384-d embeddings: MMD and the classifier fire, not on a second draw of the same cluster', () => {
    // In the calling thread (computeMultivariateDrift); the worker path is compared with it below.
    const rng = seededRng(2026);
    const reference = embeddings(300, before, rng);
    const rotated = embeddings(300, after, rng);
    const control = embeddings(300, before, rng);
    const mmd = computeMultivariateDrift('mmd', reference, rotated, { permutations: 200 });
    expect(mmd).toMatchObject({ method: 'mmd', drift: true, threshold: 0.05, n_reference: 300, n_current: 300 });
    expect(mmd.p_value).toBeLessThan(0.01);
    const clf = computeMultivariateDrift('domain_classifier', reference, rotated, {});
    expect(clf.drift).toBe(true);
    // The rotation moves the spread from components 0..7 to 8..15: those lead the importance ranking.
    const top = clf.details.importance.slice(0, 4).map((f) => Number(f.feature.slice(1)));
    expect(top.every((j) => j < 16)).toBe(true);
    expect(computeMultivariateDrift('mmd', reference, control, { permutations: 200 }).drift).toBe(false);
    expect(computeMultivariateDrift('domain_classifier', reference, control, {}).drift).toBe(false);
    const share = computeMultivariateDrift('component_share', reference, rotated, {});
    expect(share.details.drifted.filter((j) => Number(j) < 16).length).toBeGreaterThanOrEqual(12);
  });

  it('one shifted feature of twenty is the classifier’s top-ranked one', () => {
    const rng = seededRng(31);
    const row = (shift: number): number[] => Array.from({ length: 20 }, (_, j) => normal(rng) + (j === 13 ? shift : 0));
    const ref = Array.from({ length: 600 }, () => row(0));
    const cur = Array.from({ length: 600 }, () => row(0.4));
    const r = domainClassifierDrift(ref, cur, { seed: 3 });
    expect(r.verdict).toBe('drift');
    expect(r.importance[0]?.feature).toBe('f13');
    expect(r.importance[0]?.importance ?? 0).toBeGreaterThan(3 * (r.importance[1]?.importance ?? 0));
  });

  it('unchanged controls: each method’s false alarms over 40 seeds stay within a binomial bound of its stated rate', () => {
    const seeds = 40;
    const alarms = { reconstruction: 0, classifier: 0, mmd: 0, componentShare: 0 };
    for (let s = 0; s < seeds; s++) {
      const rng = seededRng(7000 + s);
      const ref = tabular(1000, 0.8, rng);
      const cur = tabular(100, 0.8, rng);
      if (fitReconstruction(ref, { chunkSize: 100 }).evaluate(cur).verdict === 'drift') alarms.reconstruction++;
      if (domainClassifierDrift(ref.slice(0, 150), tabular(150, 0.8, rng), { seed: s }).verdict === 'drift')
        alarms.classifier++;
      const embRef = embeddings(60, before, rng);
      const embCur = embeddings(60, before, rng);
      if (mmdDrift(embRef, embCur, { permutations: 100, seed: s }).verdict === 'drift') alarms.mmd++;
      if (componentDrift(embRef, embCur).verdict === 'drift') alarms.componentShare++;
    }
    // Stated rates: reconstruction ≤ 5 % (band of 10 chunks, see fitReconstruction), the classifier
    // ≤ 5 %, MMD alpha = 5 %, component share ≤ alpha = 5 % (far less: 20 % of 384 components must reject).
    expect(alarms.reconstruction, JSON.stringify(alarms)).toBeLessThanOrEqual(binomialBound(seeds, 0.05));
    expect(alarms.classifier, JSON.stringify(alarms)).toBeLessThanOrEqual(binomialBound(seeds, 0.05));
    expect(alarms.mmd, JSON.stringify(alarms)).toBeLessThanOrEqual(binomialBound(seeds, 0.05));
    expect(alarms.componentShare, JSON.stringify(alarms)).toBeLessThanOrEqual(binomialBound(seeds, 0.05));
    // The bound is not vacuous: it fails a method alarming on a quarter of the seeds.
    expect(binomialBound(seeds, 0.05)).toBeLessThan(seeds / 4);
  });

  it('every method through a worker returns what the in-thread computation does, in the stored shape', async () => {
    const rng = seededRng(5);
    const ref = tabular(400, 0.8, rng);
    const cur = tabular(200, -0.8, rng);
    for (const method of ['reconstruction', 'mmd', 'component_share', 'mean_distance'] as const) {
      const inWorker = await runMultivariateDrift(method, ref, cur);
      const inThread = computeMultivariateDrift(method, ref, cur);
      const { duration_ms: _a, ...w } = inWorker;
      const { duration_ms: _b, ...t } = inThread;
      expect(w, method).toEqual(t);
      expect(Object.keys(w).sort()).toEqual(
        [
          'details',
          'drift',
          'method',
          'n_current',
          'n_reference',
          'p_value',
          'params',
          'statistic',
          'threshold',
        ].sort(),
      );
    }
    const clf = await runMultivariateDrift('domain_classifier', ref, cur, { workers: 2 });
    const { duration_ms: _c, ...w } = clf;
    const { duration_ms: _d, ...t } = computeMultivariateDrift('domain_classifier', ref, cur);
    expect(w).toEqual(t);
    expect(clf.params).toMatchObject({ folds: 5, threshold: 0.55, nEstimators: 50, maxDepth: 3, maxRowsPerSide: 5000 });
  });

  it('bad input rejects with bad_request naming the field', async () => {
    const rng = seededRng(6);
    const ref = tabular(100, 0.8, rng);
    await expect(runMultivariateDrift('mmd', ref, [[1, 2]])).rejects.toMatchObject({
      code: 'bad_request',
      field: 'current',
    });
    await expect(runMultivariateDrift('mmd', ref, ref, { alpha: 2 })).rejects.toMatchObject({
      code: 'bad_request',
      field: 'alpha',
    });
    await expect(runMultivariateDrift('nope' as 'mmd', ref, ref)).rejects.toMatchObject({
      code: 'bad_request',
      field: 'method',
    });
    await expect(reconstructionDrift(ref, ref, { varianceShare: 0 })).rejects.toMatchObject({ field: 'varianceShare' });
    await expect(componentShareMethod(ref, ref, { features: ['a'] })).rejects.toMatchObject({ field: 'features' });
    await expect(mmdMethod(ref, ref, { timeoutMs: 0 })).rejects.toMatchObject({ field: 'timeoutMs' });
    await expect(meanDistanceMethod(ref, ref, { metric: 'manhattan' as 'cosine' })).rejects.toMatchObject({
      code: 'bad_request',
      field: 'metric',
    });
  });
});
