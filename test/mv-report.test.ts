import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { isVectorType, reportMultivariateSettings, vectorColumns } from '../src/drift/report/multivariate.js';
import { runFileReport } from '../src/drift/report/run.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { gaussian, mulberry32 } from './support/seeded-prng.js';
import { openTestStore } from './support/store.js';

const ROWS = 500;
const DIM = 16;

describe('report: multivariate and embedding sections', () => {
  let store: ClickHouseStore;
  let cleanup: () => Promise<void>;
  const dir = mkdtempSync(join(tmpdir(), 'mw-mvreport-'));
  const g = gaussian(mulberry32(11));

  /** Parquet with a, b (corr = rho), c and a 16-d vector column `emb` around (shift, …, shift). */
  async function parquet(name: string, rho: number, shift: number): Promise<string> {
    const lines: string[] = [];
    for (let i = 0; i < ROWS; i++) {
      const a = g();
      const emb = Array.from({ length: DIM }, () => shift + g());
      lines.push(JSON.stringify({ a, b: rho * a + Math.sqrt(1 - rho * rho) * g(), c: g(), emb }));
    }
    const src = join(dir, `${name}.jsonl`);
    writeFileSync(src, lines.join('\n') + '\n');
    const out = join(dir, `${name}.parquet`);
    await store.command(
      `INSERT INTO FUNCTION file({out:String}, 'Parquet') SELECT * FROM file({src:String}, 'JSONEachRow', 'a Float64, b Float64, c Float64, emb Array(Float64)')`,
      { params: { out, src }, settings: { engine_file_truncate_on_insert: 1 } },
    );
    return out;
  }

  let reference: string;
  let current: string;

  beforeAll(async () => {
    ({ store, cleanup } = await openTestStore());
    reference = await parquet('reference', 0.9, 0);
    current = await parquet('current', -0.9, 0.6);
  });

  afterAll(async () => {
    await cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('recognises vector columns by their ClickHouse type', () => {
    expect(isVectorType('Array(Nullable(Float64))')).toBe(true);
    expect(isVectorType('Nullable(Array(Float32))')).toBe(true);
    expect(isVectorType('Array(String)')).toBe(false);
    expect(isVectorType('Float64')).toBe(false);
    expect(
      vectorColumns(
        [
          { name: 'emb', type: 'Array(Nullable(Float64))' },
          { name: 'x', type: 'Float64' },
        ],
        [{ name: 'emb', type: 'Array(Float64)' }],
      ),
    ).toEqual(['emb']);
  });

  it('by default a report runs reconstruction on the numeric columns, not the classifier', () => {
    expect(reportMultivariateSettings().methods).toEqual(['reconstruction']);
    expect(reportMultivariateSettings().embeddingMethods).toBe('auto');
  });

  it('the report JSON of a Parquet pair has the multivariate section; the HTML page shows it', async () => {
    // The classifier is opt-in in a report: list it.
    const base = reportMultivariateSettings(
      loadConfig({ env: {}, overrides: { 'multivariate.methods': ['reconstruction', 'classifier'] } }),
    );
    const { report, html } = await runFileReport({
      reference,
      current,
      store,
      format: 'html',
      // A smaller forest keeps the test quick; the verdicts do not depend on it here.
      multivariate: { ...base, classifier: { ...base.classifier, maxRowsPerSide: 250, trees: 10 } },
    });
    // Univariate: the vector column is not a per-feature column; a, b, c keep their marginals.
    expect(report.features.map((f) => f.name)).toEqual(['a', 'b', 'c']);
    expect(report.dataset.drifted).toBe(false);
    const mv = report.multivariate;
    expect(mv?.error).toBeUndefined();
    expect(mv?.numeric_features).toEqual(['a', 'b', 'c']);
    expect(mv?.embeddings).toEqual([{ name: 'emb', dim: DIM }]);
    const verdict = new Map(mv?.results.map((r) => [`${r.feature_group}/${r.method}`, r.drift]));
    expect(verdict).toEqual(
      new Map([
        ['/reconstruction', true],
        ['/classifier', true],
        ['emb/mmd', true],
        ['emb/mean_distance', true],
        ['emb/component_share', true],
      ]),
    );
    const rec = mv?.results.find((r) => r.method === 'reconstruction');
    expect(rec?.n_reference).toBe(ROWS);
    expect(html).toContain('<section id="multivariate">');
    expect(html).toContain('emb (16-d)');
    // The page's embedded report data carries the section too.
    expect(html).toContain('"multivariate"');
  });
});
