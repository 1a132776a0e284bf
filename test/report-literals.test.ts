import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withLiterals } from '../src/drift/files.js';
import { runFileReport } from '../src/drift/report/run.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { openTestStore } from './support/store.js';

// The report reads its Parquet inputs with the file path, format and structure written into the SQL as
// string literals (bound parameters would make the two sides' reads wait for each other in the embedded
// engine). A path or column name holding quotes and backslashes must read the same file as before.

describe('report: file samples with literal parameters', () => {
  let store: ClickHouseStore;
  let cleanup: () => Promise<void>;
  const dir = mkdtempSync(join(tmpdir(), "mw-lit-it's-"));

  beforeAll(async () => {
    ({ store, cleanup } = await openTestStore());
  });

  afterAll(async () => {
    await cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes String parameters as exact literals and refuses a non-string one', () => {
    const s = withLiterals({
      sql: 'SELECT * FROM file({p_path:String}, {p_format:String}) WHERE x = {p_path:String}',
      params: { p_path: "a'b\\c", p_format: 'Parquet' },
    });
    expect(s).toEqual({
      sql: "SELECT * FROM file('a\\'b\\\\c', 'Parquet') WHERE x = 'a\\'b\\\\c'",
      params: {},
    });
    expect(() => withLiterals({ sql: 'SELECT {n:String}', params: { n: 3 } })).toThrow(/n is not a string/);
  });

  it('reads Parquet files whose path and column names hold quotes and backslashes', async () => {
    const lines = ['plain,"we\'ird\\col"'];
    for (let i = 0; i < 300; i++) lines.push(`${(i * 7) % 101},${(i * 13) % 37}`);
    const csv = join(dir, 'src.csv');
    writeFileSync(csv, lines.join('\n') + '\n');
    const reference = join(dir, "ref 'quoted' \\ back.parquet");
    await store.command(
      `INSERT INTO FUNCTION file({out:String}, 'Parquet') SELECT * FROM file({src:String}, 'CSVWithNames')`,
      { params: { out: reference, src: csv }, settings: { engine_file_truncate_on_insert: 1 } },
    );
    const current = join(dir, "cur\\'.parquet");
    copyFileSync(reference, current);
    const viaParquet = await runFileReport({ reference, current, store });
    expect(viaParquet.report.reference.rows).toBe(300);
    expect(viaParquet.report.features.map((f) => [f.name, f.kind, f.drifted])).toEqual([
      ['plain', 'numeric', false],
      ["we'ird\\col", 'numeric', false],
    ]);
    // Same statistics as the CSV read through its parsed copy.
    const viaCsv = await runFileReport({ reference: csv, current: csv, store });
    expect(viaParquet.report.features).toEqual(viaCsv.report.features);
  }, 60_000);
});
