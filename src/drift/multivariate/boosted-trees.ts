/**
 * Histogram-based gradient-boosted decision trees for binary classification: the model behind the
 * domain classifier. The algorithm is scikit-learn's `HistGradientBoostingClassifier` (binary log
 * loss, features pre-binned into at most `maxBins` quantile bins plus one bin for non-finite values,
 * second-order leaf values −G / (H + λ) scaled by the learning rate, split gain
 * G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ), the larger child's histogram obtained by subtracting the
 * smaller one's from its parent's), grown depth-wise to `maxDepth` with no leaf-count limit (which grows
 * the same trees as scikit-learn's best-first growth with `max_leaf_nodes=None`). Written here because
 * no maintained npm package fits a classifier this size within a detection window's budget
 * (`ml-random-forest` needed ~64 s for 500 rows per side); kept small and deterministic.
 *
 * Data are column-major: bin of row i, feature j at `bins[j * n + i]`.
 */

/** Pre-binned columns of a pooled sample. */
export interface BinnedColumns {
  /** Rows. */
  n: number;
  /** Features. */
  p: number;
  /** Column-major bin indices; the bin `missingBin` holds non-finite values. */
  bins: Uint8Array;
  /** Bins per feature including the missing bin (the same for all: `maxBins + 1`). */
  nBins: number;
  /** Index of the bin of non-finite values. */
  missingBin: number;
  /** Upper edges per feature: value v goes to the first bin b with v ≤ edges[b] (the last finite bin is unbounded). */
  edges: Float64Array[];
}

/**
 * Bins each column of the row-major `x` (n × p) into at most `maxBins` bins: when a column has at most
 * `maxBins` distinct finite values each gets its own bin (edges at the midpoints), otherwise the edges are
 * the column's quantiles k / maxBins (linear interpolation, duplicates removed), as scikit-learn's
 * `_BinMapper` does. Non-finite values go to bin `maxBins`.
 */
export function binColumns(x: Float64Array, n: number, p: number, maxBins: number): BinnedColumns {
  const bins = new Uint8Array(n * p);
  const edges: Float64Array[] = [];
  const col = new Float64Array(n);
  for (let j = 0; j < p; j++) {
    let m = 0;
    for (let i = 0; i < n; i++) {
      const v = x[i * p + j] as number;
      if (Number.isFinite(v)) col[m++] = v;
    }
    const sorted = col.subarray(0, m).sort();
    // Distinct values (at most maxBins + 1 needed to decide).
    const distinct: number[] = [];
    for (let i = 0; i < m && distinct.length <= maxBins; i++) {
      const v = sorted[i] as number;
      if (distinct.length === 0 || v !== distinct[distinct.length - 1]) distinct.push(v);
    }
    const e: number[] = [];
    if (distinct.length <= maxBins) {
      for (let k = 0; k + 1 < distinct.length; k++) e.push(((distinct[k] as number) + (distinct[k + 1] as number)) / 2);
    } else {
      for (let k = 1; k < maxBins; k++) {
        const pos = (k / maxBins) * (m - 1);
        const lo = Math.floor(pos);
        const hi = Math.min(lo + 1, m - 1);
        const q = (sorted[lo] as number) + (pos - lo) * ((sorted[hi] as number) - (sorted[lo] as number));
        if (e.length === 0 || q > (e[e.length - 1] as number)) e.push(q);
      }
    }
    const ej = Float64Array.from(e);
    edges.push(ej);
    const base = j * n;
    for (let i = 0; i < n; i++) {
      const v = x[i * p + j] as number;
      if (!Number.isFinite(v)) {
        bins[base + i] = maxBins;
        continue;
      }
      // First edge ≥ v (binary search).
      let lo = 0;
      let hi = ej.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if ((ej[mid] as number) < v) lo = mid + 1;
        else hi = mid;
      }
      bins[base + i] = lo;
    }
  }
  return { n, p, bins, nBins: maxBins + 1, missingBin: maxBins, edges };
}

/** Hyper-parameters of {@link fitBoostedTrees}. */
export interface BoostingParams {
  /** Boosting iterations (trees). */
  iterations: number;
  learningRate: number;
  /** Edges from the root to the deepest leaf. */
  maxDepth: number;
  /** Smallest number of training rows in a leaf. */
  minSamplesLeaf: number;
  /** Smallest node (training rows) that is still split. */
  minSamplesSplit: number;
  /** L2 regularisation λ of the leaf values. */
  l2: number;
  /** Stop adding trees once this many milliseconds have passed (`Infinity`: never). */
  deadlineMs: number;
}

/** One fitted tree, flat: node k splits on `feature[k]` (−1: leaf) at `split[k]` (bin ≤ split goes left). */
export interface Tree {
  feature: Int32Array;
  split: Int32Array;
  left: Int32Array;
  right: Int32Array;
  value: Float64Array;
}

/** A fitted ensemble: raw score of a row = `init` + Σ leaf values. */
export interface BoostedTrees {
  init: number;
  trees: Tree[];
  /** Trees fitted (fewer than asked when the deadline passed). */
  iterations: number;
  /** Features each tree splits on. */
  featuresOfTree: Int32Array[];
}

const MIN_HESSIAN = 1e-3;

/** Scores one row of the binned data: leaf value of `tree`. */
export function treeValue(tree: Tree, bins: Uint8Array, n: number, row: number): number {
  let k = 0;
  let f = tree.feature[0] as number;
  while (f >= 0) {
    k =
      (bins[f * n + row] as number) <= (tree.split[k] as number) ? (tree.left[k] as number) : (tree.right[k] as number);
    f = tree.feature[k] as number;
  }
  return tree.value[k] as number;
}

/** Leaf value of `tree` for `row` with feature `j`'s bin replaced by `bin`. */
export function treeValueWith(tree: Tree, bins: Uint8Array, n: number, row: number, j: number, bin: number): number {
  let k = 0;
  let f = tree.feature[0] as number;
  while (f >= 0) {
    const b = f === j ? bin : (bins[f * n + row] as number);
    k = b <= (tree.split[k] as number) ? (tree.left[k] as number) : (tree.right[k] as number);
    f = tree.feature[k] as number;
  }
  return tree.value[k] as number;
}

/**
 * Fits gradient-boosted trees on the rows `train` of `data` with binary labels `y` (indexed by row of
 * `data`). Deterministic: no sampling inside.
 */
export function fitBoostedTrees(
  data: BinnedColumns,
  y: Uint8Array,
  train: Uint32Array,
  params: BoostingParams,
): BoostedTrees {
  const { n, p, bins, nBins } = data;
  const m = train.length;
  const stride = nBins * 3;
  const histSize = p * stride;
  let pos = 0;
  for (let k = 0; k < m; k++) pos += y[train[k] as number] as number;
  const prior = Math.min(Math.max(pos / m, 1e-12), 1 - 1e-12);
  const init = Math.log(prior / (1 - prior));
  const raw = new Float64Array(m).fill(init); // by position in `train`
  const g = new Float64Array(m);
  const h = new Float64Array(m);
  const rows = new Uint32Array(m); // positions into train, partitioned per node
  const scratch = new Uint32Array(m);
  const gOrd = new Float64Array(m);
  const hOrd = new Float64Array(m);
  const rOrd = new Uint32Array(m);
  const free: Float64Array[] = [];
  const take = (): Float64Array => free.pop() ?? new Float64Array(histSize);
  const { l2, minSamplesLeaf, maxDepth, learningRate } = params;
  const minSplit = Math.max(2 * minSamplesLeaf, params.minSamplesSplit);
  const trees: Tree[] = [];
  const featuresOfTree: Int32Array[] = [];

  const build = (hist: Float64Array, start: number, end: number): void => {
    hist.fill(0);
    for (let k = start; k < end; k++) {
      const r = rows[k] as number;
      gOrd[k] = g[r] as number;
      hOrd[k] = h[r] as number;
      rOrd[k] = train[r] as number;
    }
    for (let j = 0; j < p; j++) {
      const col = j * n;
      const hb = j * stride;
      for (let k = start; k < end; k++) {
        const at = hb + (bins[col + (rOrd[k] as number)] as number) * 3;
        hist[at] = (hist[at] as number) + (gOrd[k] as number);
        hist[at + 1] = (hist[at + 1] as number) + (hOrd[k] as number);
        hist[at + 2] = (hist[at + 2] as number) + 1;
      }
    }
  };

  for (let it = 0; it < params.iterations; it++) {
    if (it > 0 && performance.now() > params.deadlineMs) break;
    for (let k = 0; k < m; k++) {
      const pr = 1 / (1 + Math.exp(-(raw[k] as number)));
      g[k] = pr - (y[train[k] as number] as number);
      h[k] = pr * (1 - pr);
      rows[k] = k;
    }
    const feature: number[] = [];
    const split: number[] = [];
    const left: number[] = [];
    const right: number[] = [];
    const value: number[] = [];
    const used = new Set<number>();

    const grow = (start: number, end: number, hist: Float64Array, depth: number): number => {
      const id = feature.length;
      feature.push(-1);
      split.push(0);
      left.push(-1);
      right.push(-1);
      value.push(0);
      // Node sums from feature 0's histogram.
      let G = 0;
      let H = 0;
      for (let b = 0; b < nBins; b++) {
        G += hist[b * 3] as number;
        H += hist[b * 3 + 1] as number;
      }
      const count = end - start;
      let bestGain = 1e-12;
      let bestF = -1;
      let bestB = -1;
      if (depth < maxDepth && count >= minSplit) {
        const parentScore = (G * G) / (H + l2);
        for (let j = 0; j < p; j++) {
          const hb = j * stride;
          let gl = 0;
          let hl = 0;
          let cl = 0;
          for (let b = 0; b < nBins - 1; b++) {
            const at = hb + b * 3;
            gl += hist[at] as number;
            hl += hist[at + 1] as number;
            cl += hist[at + 2] as number;
            if (cl < minSamplesLeaf) continue;
            const cr = count - cl;
            if (cr < minSamplesLeaf) break;
            const hr = H - hl;
            if (hl < MIN_HESSIAN || hr < MIN_HESSIAN) continue;
            const gr = G - gl;
            const gain = (gl * gl) / (hl + l2) + (gr * gr) / (hr + l2) - parentScore;
            if (gain > bestGain) {
              bestGain = gain;
              bestF = j;
              bestB = b;
            }
          }
        }
      }
      if (bestF < 0) {
        const v = (-learningRate * G) / (H + l2);
        value[id] = v;
        for (let k = start; k < end; k++) {
          const r = rows[k] as number;
          raw[r] = (raw[r] as number) + v;
        }
        free.push(hist);
        return id;
      }
      feature[id] = bestF;
      split[id] = bestB;
      used.add(bestF);
      // Stable partition of rows[start, end): bin ≤ bestB first.
      const col = bestF * n;
      let a = start;
      let c = 0;
      for (let k = start; k < end; k++) {
        const r = rows[k] as number;
        if ((bins[col + (train[r] as number)] as number) <= bestB) rows[a++] = r;
        else scratch[c++] = r;
      }
      rows.set(scratch.subarray(0, c), a);
      const mid = a;
      const leftSmaller = mid - start <= end - mid;
      const small = take();
      if (leftSmaller) build(small, start, mid);
      else build(small, mid, end);
      // The parent's buffer becomes the larger child's histogram.
      for (let q = 0; q < histSize; q++) hist[q] = (hist[q] as number) - (small[q] as number);
      const lh = leftSmaller ? small : hist;
      const rh = leftSmaller ? hist : small;
      left[id] = grow(start, mid, lh, depth + 1);
      right[id] = grow(mid, end, rh, depth + 1);
      return id;
    };

    const rootHist = take();
    build(rootHist, 0, m);
    grow(0, m, rootHist, 0);
    trees.push({
      feature: Int32Array.from(feature),
      split: Int32Array.from(split),
      left: Int32Array.from(left),
      right: Int32Array.from(right),
      value: Float64Array.from(value),
    });
    featuresOfTree.push(Int32Array.from(used));
  }
  return { init, trees, iterations: trees.length, featuresOfTree };
}
