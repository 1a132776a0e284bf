// The multivariate methods that run synchronously (reconstruction, MMD, component share, mean distance),
// shared by the worker entry (mv-worker-entry.ts) and the tests. Imports only kernels and types, so a
// worker loading it does not load the store or the metrics.
import { componentDrift, fitReconstruction, meanDistanceDrift, mmdDrift, type Rows } from './multivariate/index.js';
import type { GroupRows, MultivariateResult, MultivariateSettings } from './mv-detect.js';

/** The methods {@link runSyncMethod} runs (every method but the domain classifier). */
export type SyncMethod = 'reconstruction' | 'mmd' | 'component_share' | 'mean_distance';

export const finiteOrNull = (v: number): number | null => (Number.isFinite(v) ? v : null);

/** Rows with every element finite (an embedding missing from a row, or holding NaN, is left out). */
export function completeRows(rows: number[][]): number[][] {
  return rows.filter((r) => r.every(Number.isFinite));
}

/**
 * Runs one in-thread method (all but the classifier) on one group: synchronous and CPU-bound, so the
 * detect loop calls it inside a worker ({@link runKernelsInWorker}).
 */
export function runSyncMethod(method: SyncMethod, g: GroupRows, s: MultivariateSettings): MultivariateResult {
  const base = { method, feature_group: g.group };
  const isEmbedding = g.group !== '';
  const ref: Rows = isEmbedding ? completeRows(g.reference) : g.reference;
  const cur: Rows = isEmbedding ? completeRows(g.current) : g.current;
  switch (method) {
    case 'reconstruction': {
      const chunkSize = Math.max(1, Math.floor(ref.length / s.reconstruction.chunks));
      const model = fitReconstruction(ref, {
        varianceShare: s.reconstruction.varianceShare,
        bandStd: s.reconstruction.bandStd,
        chunkSize,
      });
      const r = model.evaluate(cur);
      return {
        ...base,
        n_reference: ref.length,
        n_current: r.n,
        statistic: r.error,
        p_value: null,
        threshold: null,
        lower: r.lower,
        upper: r.upper,
        drift: r.verdict === 'drift',
        params: { ...s.reconstruction, chunk_size: chunkSize },
        details: {
          components: model.nComponents,
          explained_variance_ratio: model.explainedVarianceRatio,
          reference_error: model.referenceError,
          features: g.columns,
        },
      };
    }
    case 'mmd': {
      const m = s.mmd;
      const r = mmdDrift(ref, cur, { permutations: m.permutations, alpha: m.alpha, maxRowsPerSide: m.maxRowsPerSide });
      return {
        ...base,
        n_reference: r.nReference,
        n_current: r.nCurrent,
        statistic: r.mmd2,
        p_value: r.pValue,
        threshold: r.alpha,
        lower: null,
        upper: null,
        drift: r.verdict === 'drift',
        params: { ...m, kernel: 'rbf', bandwidth: 'median' },
        details: { bandwidth: r.bandwidth },
      };
    }
    case 'component_share': {
      const c = s.componentShare;
      const r = componentDrift(ref, cur, { alpha: c.alpha, threshold: c.threshold });
      const top = r.drifted
        .map((j) => ({ component: j, name: g.columns[j] ?? String(j), statistic: r.statistics[j] ?? 0 }))
        .sort((a, b) => b.statistic - a.statistic)
        .slice(0, 20);
      return {
        ...base,
        n_reference: ref.length,
        n_current: cur.length,
        statistic: r.share,
        p_value: null,
        threshold: r.threshold,
        lower: null,
        upper: null,
        drift: r.verdict === 'drift',
        params: { ...c, test: 'ks' },
        details: { drifted_components: r.drifted.length, components: g.columns.length, top },
      };
    }
    case 'mean_distance': {
      const c = s.meanDistance;
      const threshold = c.metric === 'cosine' ? c.cosineThreshold : c.euclideanThreshold;
      const r = meanDistanceDrift(ref, cur, { metric: c.metric, threshold });
      return {
        ...base,
        n_reference: ref.length,
        n_current: cur.length,
        statistic: r[r.metric],
        p_value: null,
        threshold,
        lower: null,
        upper: null,
        drift: r.verdict === 'drift',
        params: { metric: c.metric, threshold },
        details: { euclidean: r.euclidean, cosine: finiteOrNull(r.cosine) },
      };
    }
  }
}
