import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeMultivariate, type MultivariateResult } from '../src/drift/mv-detect.js';
import { reportMultivariateSettings, sampleRowsAndPositions } from '../src/drift/report/multivariate.js';
import { runFileReport } from '../src/drift/report/run.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { gaussian, mulberry32 } from './support/seeded-prng.js';
import { openTestStore } from './support/store.js';

// The multivariate section of `modelwatch report` takes its numeric rows from the statistics' own reads:
// the rows at the positions p (file order) with the smallest cityHash64(p). These tests check that the
// section equals the methods run on exactly those rows, for a file read in groups (over 50,000 rows,
// Parquet with many row groups) and for a small one read at once, and that Parquet and CSV agree.

const COLUMNS = ['a', 'b', 'c', 'd'];
const settings = reportMultivariateSettings();

/** Rows of a correlated 4-column table; `rho` the correlation of a and b. */
function table(rows: number, rho: number, seed: number): number[][] {
  const g = gaussian(mulberry32(seed));
  return Array.from({ length: rows }, () => {
    const a = g();
    return [a, rho * a + Math.sqrt(1 - rho * rho) * g(), g() * 2 + 1, g()];
  });
}

/** The documented subset: positions by ascending cityHash64(position), at most maxRows of them. */
async function expectedRows(store: ClickHouseStore, data: number[][]): Promise<number[][]> {
  const out = await store.query<{ p: number }>(
    'SELECT toUInt32(number) AS p FROM numbers({n:UInt64}) ORDER BY cityHash64(number) LIMIT {k:UInt32}',
    { params: { n: data.length, k: settings.maxRows } },
  );
  return out.map((r) => data[Number(r.p)]!);
}

describe('report: the multivariate rows come from the statistics reads', () => {
  let store: ClickHouseStore;
  let cleanup: () => Promise<void>;
  const dir = mkdtempSync(join(tmpdir(), 'mw-mvsubset-'));

  /** Writes `data` as CSV and as Parquet (row groups of `rowGroup` rows, file order kept). */
  async function files(name: string, data: number[][], rowGroup: number): Promise<{ csv: string; parquet: string }> {
    const csv = join(dir, `${name}.csv`);
    // Full precision (shortest round-trip form), so CSV and Parquet hold the same doubles.
    writeFileSync(csv, [COLUMNS.join(','), ...data.map((r) => r.map((x) => String(x)).join(','))].join('\n') + '\n');
    const parquet = join(dir, `${name}.parquet`);
    await store.command(
      `INSERT INTO FUNCTION file({out:String}, 'Parquet') SELECT * FROM file({src:String}, 'CSVWithNames', 'a Float64, b Float64, c Float64, d Float64')`,
      {
        params: { out: parquet, src: csv },
        settings: {
          engine_file_truncate_on_insert: 1,
          output_format_parquet_row_group_size: rowGroup,
          max_threads: 1,
          max_insert_threads: 1,
        },
      },
    );
    return { csv, parquet };
  }

  beforeAll(async () => {
    ({ store, cleanup } = await openTestStore());
  });

  afterAll(async () => {
    await cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  async function check(rows: number, rowGroup: number): Promise<void> {
    const refData = table(rows, 0.8, 1);
    const curData = table(rows, 0.2, 2);
    const ref = await files(`ref${rows}`, refData, rowGroup);
    const cur = await files(`cur${rows}`, curData, rowGroup);
    const expected: MultivariateResult[] = await computeMultivariate(
      [
        {
          group: '',
          columns: COLUMNS,
          reference: await expectedRows(store, refData),
          current: await expectedRows(store, curData),
        },
      ],
      { settings, inline: true },
    );
    expect(expected.map((r) => r.method)).toEqual(['reconstruction']);
    expect(expected[0]?.n_reference).toBe(Math.min(rows, settings.maxRows));

    const parquet = await runFileReport({ reference: ref.parquet, current: cur.parquet, store });
    expect(parquet.report.multivariate?.error).toBeUndefined();
    expect(parquet.report.multivariate?.numeric_features).toEqual(COLUMNS);
    expect(parquet.report.multivariate?.results).toEqual(expected);
    // Same rows, same section on every run (row groups decoded in parallel are not reordered).
    const again = await runFileReport({ reference: ref.parquet, current: cur.parquet, store });
    expect(again.report.multivariate).toEqual(parquet.report.multivariate);
    // The same table as CSV (parsed into a Memory copy) gives the same section.
    const csv = await runFileReport({ reference: ref.csv, current: cur.csv, store });
    expect(csv.report.multivariate).toEqual(parquet.report.multivariate);
  }

  it('over 50,000 rows (read in groups; Parquet in 14 row groups, CSV in several blocks): the methods on the documented subset', async () => {
    await check(140_000, 10_000);
  }, 180_000);

  it('a small file (read at once, fewer rows than maxRows): every row, in hash order', async () => {
    await check(1_500, 400);
  }, 60_000);

  // The documented subset of a file of `rows` rows, computed on its own: positions by cityHash64, smallest first.
  const subsetPositions = async (rows: number, maxRows: number): Promise<number[]> =>
    (
      await store.query<{ p: number | string }>(
        `SELECT toUInt32(number) AS p FROM numbers(${rows}) ORDER BY cityHash64(number) LIMIT ${maxRows}`,
      )
    ).map((r) => Number(r.p));

  it('one statement gives the row count and the same positions as a separate count, below and above maxRows', async () => {
    for (const rows of [37, settings.maxRows + 513]) {
      const { parquet } = await files(`count${rows}`, table(rows, 0.5, 3), 1000);
      const sample = { sql: `SELECT a FROM file('${parquet}', 'Parquet')`, params: {} };
      for (const maxRows of [settings.maxRows, 10, 1]) {
        const got = await sampleRowsAndPositions(store, sample, maxRows);
        expect(got.rows).toBe(rows);
        expect([...got.positions]).toEqual(await subsetPositions(rows, maxRows));
        expect(got.positions.length).toBe(Math.min(rows, maxRows));
      }
      // maxRows 0: no positions, the count still.
      expect(await sampleRowsAndPositions(store, sample, 0)).toEqual({ rows, positions: new Uint32Array(0) });
    }
    // An empty sample: 0 rows, no positions (the report then reports the empty file).
    const empty = { sql: 'SELECT toFloat64(number) AS a FROM numbers(0)', params: {} };
    expect(await sampleRowsAndPositions(store, empty, 10)).toEqual({ rows: 0, positions: new Uint32Array(0) });
  });
});
