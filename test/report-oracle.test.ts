// The drift oracle fixtures (test/fixtures/drift, NumPy/SciPy values) through `modelwatch report`'s file
// path: CSV as committed, and TSV / Parquet / JSONL copies written by chdb at test time. Every statistic is
// compared with the oracle's tolerances (KS D 1e-9, p-values 1e-3 absolute, others 1e-6 relative).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStore, type ClickHouseStore } from '../src/store/index.js';
import { runFileReport } from '../src/drift/report/run.js';
import {
  convertFixture,
  driftFixtureDir,
  expectAbs,
  expectRel,
  loadOracleCases,
  type OracleCase,
} from './support/report-files.js';

const cases = loadOracleCases();
const formats = ['csv', 'tsv', 'parquet', 'jsonl'] as const;
let client: ClickHouseStore;
let dir: string;

beforeAll(() => {
  client = createStore({ url: 'chdb::memory:' });
  dir = mkdtempSync(join(tmpdir(), 'mw-report-oracle-'));
});

afterAll(async () => {
  await client.close();
  rmSync(dir, { recursive: true, force: true });
});

async function fixtureFile(
  c: OracleCase,
  side: 'reference' | 'current',
  format: (typeof formats)[number],
): Promise<string> {
  const csv = join(driftFixtureDir, `${c.name}_${side}.csv`);
  if (format === 'csv') return csv;
  const out = join(dir, `${c.name}_${side}.${format}`);
  await convertFixture(
    client,
    csv,
    c.kind,
    out,
    format === 'parquet' ? 'Parquet' : format === 'tsv' ? 'TSVWithNames' : 'JSONEachRow',
  );
  return out;
}

function hasInfinity(c: OracleCase): boolean {
  return Number(c.quality.non_finite_reference ?? 0) + Number(c.quality.non_finite_current ?? 0) > 0;
}

describe.each(formats)('modelwatch report on %s files matches the NumPy/SciPy oracle', (format) => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const { report, columns } = await runFileReport({
      reference: await fixtureFile(c, 'reference', format),
      current: await fixtureFile(c, 'current', format),
      // A categorical fixture column is text in every format; numeric ones are inferred numeric.
      store: client,
    });
    expect(columns).toEqual([{ name: 'x', kind: c.kind }]);
    expect(report.reference.rows).toBe(c.reference_rows);
    expect(report.current.rows).toBe(c.current_rows);
    expect(report.features).toHaveLength(1);
    const f = report.features[0]!;
    expect(f.name).toBe('x');
    expect(f.kind).toBe(c.kind);
    expect(f.method).toBe(c.method);
    expect(f.threshold).toBe(c.threshold);
    expect(f.drifted).toBe(c.drifted);
    if (c.method === 'ks' || c.method === 'chi_square') expectAbs(f.score, c.score, 1e-3, 'score (p-value)');
    else expectRel(f.score, c.score, 1e-6, 'score');
    if (c.ks !== undefined) {
      expectAbs(f.stats.ks?.statistic, c.ks.statistic, 1e-9, 'ks.statistic');
      expectAbs(f.stats.ks?.p_value, c.ks.p_value, 1e-3, 'ks.p_value');
    }
    if (c.chi_square !== undefined) {
      expectRel(f.stats.chi_square?.statistic, c.chi_square.statistic, 1e-6, 'chi_square.statistic');
      expectAbs(f.stats.chi_square?.p_value, c.chi_square.p_value, 1e-3, 'chi_square.p_value');
    }
    if (c.wasserstein !== undefined) expectRel(f.stats.wasserstein, c.wasserstein, 1e-6, 'wasserstein');
    if (c.wasserstein_norm !== undefined)
      expectRel(f.stats.wasserstein_norm, c.wasserstein_norm, 1e-6, 'wasserstein_norm');
    expectRel(f.stats.psi, c.psi, 1e-6, 'psi');
    expectRel(f.stats.jensen_shannon, c.jensen_shannon, 1e-6, 'jensen_shannon');
    expectRel(f.stats.hellinger, c.hellinger, 1e-6, 'hellinger');

    const q = f.quality as unknown as Record<string, unknown>;
    if (format === 'jsonl' && hasInfinity(c)) {
      // JSON has no infinities: ClickHouse writes ±Inf as null, so in JSONL they arrive as missing values.
      const nf = Number(c.quality.non_finite_current ?? 0) + Number(c.quality.non_finite_reference ?? 0);
      expect(Number(q.missing_reference) + Number(q.missing_current)).toBe(
        Number(c.quality.missing_reference) + Number(c.quality.missing_current) + nf,
      );
      expect(q.non_finite_current).toBe(0);
    } else {
      for (const [k, v] of Object.entries(c.quality)) expect(q[k], `quality.${k}`).toEqual(v);
    }
    expect(report.dataset).toMatchObject({
      features: 1,
      drifted_features: c.drifted ? 1 : 0,
      share: c.drifted ? 1 : 0,
    });
  });
});
