import type { FeatureKind } from '../../config/model-schema.js';
import type { FeatureDistribution } from '../stats/types.js';

/** Per-bin shares of one feature in both samples, ready to draw. */
export interface FeatureHistogram {
  /** Feature name. */
  name: string;
  /** Feature kind. */
  kind: FeatureKind;
  /** One label per bin: a value range for numeric bins, the category for categorical ones. */
  labels: string[];
  /** Share of reference usable values per bin (sums to 1, or all 0 when the sample has none). */
  reference: number[];
  /** Share of current usable values per bin. */
  current: number[];
}

/** Options of {@link histogramFromDistribution}. */
export interface HistogramOptions {
  /** Categories drawn per categorical feature, most frequent first; the rest are summed into "(other)". @default 20 */
  maxCategories?: number;
}

const defaults = { maxCategories: 20 } satisfies Required<HistogramOptions>;

/** Label of the bin that sums the categories not drawn. */
export const OTHER_LABEL = '(other)';

function shares(counts: readonly number[]): number[] {
  const total = counts.reduce((a, b) => a + b, 0);
  return counts.map((c) => (total > 0 ? c / total : 0));
}

function fmt(x: number): string {
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e5 || a < 1e-3 ? x.toExponential(2) : Number(x.toPrecision(4)).toString();
}

/**
 * Turns the engine's per-bin vectors of a feature (DESIGN §3 bins: reference deciles with open tails, or
 * categories) into shares with readable labels. Categorical features keep their `maxCategories` most
 * frequent categories (reference + current) and sum the rest into one bin.
 */
export function histogramFromDistribution(
  name: string,
  kind: FeatureKind,
  dist: FeatureDistribution,
  options: HistogramOptions = {},
): FeatureHistogram {
  const { maxCategories } = { ...defaults, ...options };
  if (!Number.isInteger(maxCategories) || maxCategories < 2)
    throw new RangeError('maxCategories must be an integer ≥ 2');
  const ref = shares(dist.reference);
  const cur = shares(dist.current);
  if (dist.categories !== undefined) {
    const order = dist.categories
      .map((_, i) => i)
      .sort((a, b) => (ref[b] ?? 0) + (cur[b] ?? 0) - ((ref[a] ?? 0) + (cur[a] ?? 0)));
    if (order.length <= maxCategories) {
      return {
        name,
        kind,
        labels: order.map((i) => dist.categories![i]!),
        reference: order.map((i) => ref[i] ?? 0),
        current: order.map((i) => cur[i] ?? 0),
      };
    }
    const shown = order.slice(0, maxCategories - 1);
    const rest = order.slice(maxCategories - 1);
    const sum = (v: number[], idx: number[]): number => idx.reduce((a, i) => a + (v[i] ?? 0), 0);
    return {
      name,
      kind,
      labels: [...shown.map((i) => dist.categories![i]!), OTHER_LABEL],
      reference: [...shown.map((i) => ref[i] ?? 0), sum(ref, rest)],
      current: [...shown.map((i) => cur[i] ?? 0), sum(cur, rest)],
    };
  }
  const edges = dist.edges ?? [];
  const labels =
    edges.length === 0
      ? ['all values']
      : [
          `< ${fmt(edges[0]!)}`,
          ...edges.slice(1).map((e, i) => `[${fmt(edges[i]!)}, ${fmt(e)})`),
          `≥ ${fmt(edges[edges.length - 1]!)}`,
        ];
  return { name, kind, labels, reference: ref, current: cur };
}
