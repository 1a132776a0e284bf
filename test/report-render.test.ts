// Pure parts of the HTML report: per-bin shares and labels from the engine's distributions, severity order,
// escaping. (The page itself is tested in a browser in report-html.test.ts.)
import { describe, expect, it } from 'vitest';
import { OTHER_LABEL, histogramFromDistribution } from '../src/drift/report/histograms.js';
import { driftSeverity, escapeHtml, histogramSvg } from '../src/drift/report/html.js';

describe('histogramFromDistribution', () => {
  it('labels numeric decile bins with open tails and turns counts into shares', () => {
    const h = histogramFromDistribution('x', 'numeric', {
      edges: [1, 2, 3],
      reference: [10, 20, 30, 40],
      current: [0, 0, 5, 5],
    });
    expect(h.labels).toEqual(['< 1', '[1, 2)', '[2, 3)', '≥ 3']);
    expect(h.reference).toEqual([0.1, 0.2, 0.3, 0.4]);
    expect(h.current).toEqual([0, 0, 0.5, 0.5]);
  });

  it('keeps the most frequent categories and sums the rest into one bin', () => {
    const categories = Array.from({ length: 30 }, (_, i) => `k${i}`);
    const reference = categories.map((_, i) => 30 - i);
    const current = categories.map((_, i) => (i === 29 ? 1000 : 1));
    const h = histogramFromDistribution('c', 'categorical', { categories, reference, current }, { maxCategories: 5 });
    expect(h.labels).toHaveLength(5);
    expect(h.labels[0]).toBe('k29'); // the current-heavy category is the most frequent overall
    expect(h.labels.at(-1)).toBe(OTHER_LABEL);
    const sum = (v: number[]): number => v.reduce((a, b) => a + b, 0);
    expect(sum(h.reference)).toBeCloseTo(1, 12);
    expect(sum(h.current)).toBeCloseTo(1, 12);
  });

  it('gives all-zero shares for an empty side instead of NaN', () => {
    const h = histogramFromDistribution('c', 'categorical', { categories: ['a'], reference: [3], current: [0] });
    expect(h.current).toEqual([0]);
  });
});

describe('driftSeverity', () => {
  it('orders p-value and distance methods relative to their thresholds', () => {
    const strongP = driftSeverity({ method: 'ks', score: 1e-10, threshold: 0.05 });
    const weakP = driftSeverity({ method: 'chi_square', score: 0.2, threshold: 0.05 });
    const dist = driftSeverity({ method: 'wasserstein_norm', score: 0.5, threshold: 0.1 });
    expect(strongP).toBeGreaterThan(1);
    expect(weakP).toBeLessThan(1);
    expect(dist).toBeCloseTo(5, 12);
    expect(driftSeverity({ method: 'psi', score: null, threshold: 0.2 })).toBe(-Infinity);
  });
});

describe('escaping', () => {
  it('escapes the five HTML-special characters', () => {
    expect(escapeHtml(`<a href="x" onclick='y'>&</a>`)).toBe(
      '&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;',
    );
  });

  it('draws one bar pair per bin with escaped labels', () => {
    const svg = histogramSvg({
      name: '"><script>',
      kind: 'categorical',
      labels: ['<b>', 'ok'],
      reference: [0.5, 0.5],
      current: [1, 0],
    });
    expect(svg.match(/<rect class="ref"/g)).toHaveLength(2);
    expect(svg.match(/<rect class="cur"/g)).toHaveLength(2);
    expect(svg).not.toContain('<script>');
    expect(svg).not.toContain('<b>');
    expect(svg).toContain('&lt;b&gt;');
  });
});
