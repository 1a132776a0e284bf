// `modelwatch report` end to end as a child process (node bin/modelwatch.js report ...): output shapes,
// column kinds, --columns/--categorical, --out, exit codes and one-line errors.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFileReport } from '../src/drift/report/run.js';
import { createStore, type ClickHouseStore } from '../src/store/index.js';
import {
  convertFixture,
  driftFixtureDir,
  expectAbs,
  expectRel,
  loadOracleCases,
  runCli,
} from './support/report-files.js';

let dir: string;
let client: ClickHouseStore;
const fx = (name: string): string => join(driftFixtureDir, name);

/** A small mixed table: ints, floats, strings, booleans, and integer codes that are really categories. */
function mixedCsv(rows: number, shift: number, extra = ''): string {
  const lines = [`n_int,n_float,country,flag,code${extra ? ',' + extra : ''}`];
  for (let i = 0; i < rows; i++) {
    const country = ['de', 'fr', 'us', 'jp'][(i * 7 + shift) % 4]!;
    lines.push(
      `${(i % 50) + shift},${((i * 37) % 101) / 10 + shift * 0.5},${country},${i % 3 === 0 ? 'true' : 'false'},${100 + (i % 4)}${extra ? ',1' : ''}`,
    );
  }
  return lines.join('\n') + '\n';
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mw-report-cli-'));
  writeFileSync(join(dir, 'ref.csv'), mixedCsv(400, 0));
  writeFileSync(join(dir, 'cur.csv'), mixedCsv(300, 1));
  writeFileSync(join(dir, 'cur_extra.csv'), mixedCsv(300, 1, 'new_col'));
  writeFileSync(join(dir, 'empty.csv'), '');
  writeFileSync(join(dir, 'header_only.csv'), 'n_int,n_float,country,flag,code\n');
  writeFileSync(join(dir, 'data.txt'), 'a,b\n1,2\n');
  writeFileSync(join(dir, 'broken.parquet'), 'this is not parquet');
  client = createStore({ url: 'chdb::memory:' });
  await convertFixture(
    client,
    fx('categorical_unseen_reference.csv'),
    'categorical',
    join(dir, 'cat_ref.parquet'),
    'Parquet',
  );
  await convertFixture(
    client,
    fx('categorical_unseen_current.csv'),
    'categorical',
    join(dir, 'cat_cur.jsonl'),
    'JSONEachRow',
  );
});

afterAll(async () => {
  await client.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('modelwatch report (child process)', () => {
  it('prints the DESIGN §2 JSON on stdout, exits 0 on drift, and is silent on stderr for small files', async () => {
    const c = loadOracleCases().find((x) => x.name === 'normal_shift')!;
    const res = await runCli([
      'report',
      '--reference',
      fx('normal_shift_reference.csv'),
      '--current',
      fx('normal_shift_current.csv'),
    ]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const report = JSON.parse(res.stdout) as {
      reference: { rows: number };
      current: { rows: number };
      features: {
        name: string;
        kind: string;
        method: string;
        score: number;
        threshold: number;
        drifted: boolean;
        stats: { ks: { statistic: number; p_value: number }; wasserstein: number };
      }[];
      dataset: { features: number; drifted_features: number; share: number; drifted: boolean };
    };
    expect(report.reference.rows).toBe(800);
    expect(report.current.rows).toBe(600);
    const f = report.features[0]!;
    expect(f).toMatchObject({ name: 'x', kind: 'numeric', method: 'ks', threshold: 0.05, drifted: true });
    expectAbs(f.stats.ks.statistic, c.ks!.statistic, 1e-9, 'ks.statistic');
    expectAbs(f.stats.ks.p_value, c.ks!.p_value, 1e-3, 'ks.p_value');
    expectRel(f.stats.wasserstein, c.wasserstein!, 1e-6, 'wasserstein');
    expect(report.dataset).toMatchObject({ features: 1, drifted_features: 1, share: 1, drifted: true });
  });

  it('reads Parquet against JSONL, reports unseen categories, and writes --out', async () => {
    const out = join(dir, 'cat-report.json');
    const res = await runCli([
      'report',
      '--reference',
      join(dir, 'cat_ref.parquet'),
      '--current',
      join(dir, 'cat_cur.jsonl'),
      '--out',
      out,
    ]);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe('');
    expect(res.stderr).toBe('');
    const report = JSON.parse(readFileSync(out, 'utf8')) as {
      features: { kind: string; method: string; quality: { unseen_categories: string[] } }[];
    };
    expect(report.features[0]).toMatchObject({ kind: 'categorical', method: 'chi_square' });
    expect(report.features[0]!.quality.unseen_categories).toEqual(['f', 'g']);
  });

  it('infers kinds from ClickHouse types, honours --categorical and --columns', async () => {
    const all = await runCli(['report', '--reference', join(dir, 'ref.csv'), '--current', join(dir, 'cur.csv')]);
    expect(all.code).toBe(0);
    const kinds = Object.fromEntries(
      (JSON.parse(all.stdout) as { features: { name: string; kind: string }[] }).features.map((f) => [f.name, f.kind]),
    );
    expect(kinds).toEqual({
      n_int: 'numeric',
      n_float: 'numeric',
      country: 'categorical',
      flag: 'categorical',
      code: 'numeric',
    });

    const some = await runCli([
      'report',
      '--reference',
      join(dir, 'ref.csv'),
      '--current',
      join(dir, 'cur_extra.csv'),
      '--columns',
      'code,country',
      '--categorical',
      'code',
    ]);
    expect(some.stderr).toBe('');
    expect(some.code).toBe(0);
    const features = (JSON.parse(some.stdout) as { features: { name: string; kind: string }[] }).features;
    expect(features.map((f) => [f.name, f.kind])).toEqual([
      ['code', 'categorical'],
      ['country', 'categorical'],
    ]);
  });

  const errorCases: [string, () => string[], RegExp][] = [
    [
      'missing file',
      () => ['--reference', join(dir, 'nope.csv'), '--current', join(dir, 'cur.csv')],
      /reference file .*nope\.csv: no such file/,
    ],
    [
      'empty file',
      () => ['--reference', join(dir, 'ref.csv'), '--current', join(dir, 'empty.csv')],
      /current file .*empty\.csv: empty file \(0 rows\)/,
    ],
    [
      'header-only file',
      () => ['--reference', join(dir, 'header_only.csv'), '--current', join(dir, 'cur.csv')],
      /reference file .*header_only\.csv: empty file \(0 rows\)/,
    ],
    [
      'mismatched columns',
      () => ['--reference', join(dir, 'ref.csv'), '--current', join(dir, 'cur_extra.csv')],
      /mismatched columns \(only in current: new_col\)/,
    ],
    [
      'unsupported format',
      () => ['--reference', join(dir, 'data.txt'), '--current', join(dir, 'cur.csv')],
      /reference file .*data\.txt: unsupported format '\.txt'/,
    ],
    [
      'unreadable file',
      () => ['--reference', join(dir, 'ref.csv'), '--current', join(dir, 'broken.parquet')],
      /current file .*broken\.parquet: cannot read as Parquet/,
    ],
    [
      'unknown --columns entry',
      () => ['--reference', join(dir, 'ref.csv'), '--current', join(dir, 'cur.csv'), '--columns', 'country,age'],
      /--columns: unknown column 'age'/,
    ],
    [
      'bad --format',
      () => ['--reference', join(dir, 'ref.csv'), '--current', join(dir, 'cur.csv'), '--format', 'xml'],
      /--format must be json or html/,
    ],
  ];

  it.each(errorCases)(
    '%s: exit 2 with a clear message on stderr and nothing on stdout',
    async (_name, args, message) => {
      const res = await runCli(['report', ...args()]);
      expect(res.code).toBe(2);
      expect(res.stdout).toBe('');
      expect(res.stderr).toMatch(message);
      // One line, unless the CLI adds the usage text for a flag error.
      if (!/--format/.test(message.source)) expect(res.stderr.trim().split('\n')).toHaveLength(1);
    },
  );
});

describe('runFileReport column names', () => {
  it('gives the same statistics in a multi-column file as column by column, whatever the names (side, c0, rows)', async () => {
    // Regression: column names equal to aliases of the statistics queries (c0, side, rows) once read the wrong column.
    const header = ['c1', 'side', 'c0', 'rows'];
    const make = (n: number, shift: number): string =>
      [
        header.join(','),
        ...Array.from({ length: n }, (_, i) =>
          [((i * 13) % 17) / 3 + shift, (i * 7) % 23, ['x', 'y', 'z'][(i + shift) % 3], (i % 11) * shift].join(','),
        ),
      ].join('\n') + '\n';
    writeFileSync(join(dir, 'names_ref.csv'), make(300, 0));
    writeFileSync(join(dir, 'names_cur.csv'), make(250, 1));
    const opts = { reference: join(dir, 'names_ref.csv'), current: join(dir, 'names_cur.csv'), store: client };
    const all = await runFileReport(opts);
    expect(all.report.features.map((f) => [f.name, f.kind])).toEqual([
      ['c1', 'numeric'],
      ['side', 'numeric'],
      ['c0', 'categorical'],
      ['rows', 'numeric'],
    ]);
    for (const name of header) {
      const one = await runFileReport({ ...opts, columns: [name] });
      expect(one.report.features).toHaveLength(1);
      expect(all.report.features.find((f) => f.name === name)).toEqual(one.report.features[0]);
    }
  });
});

describe('runFileReport progress', () => {
  it('reports stages when the inputs are over progressMinBytes, and nothing below it', async () => {
    const lines: string[] = [];
    const opts = {
      reference: join(dir, 'ref.csv'),
      current: join(dir, 'cur.csv'),
      store: client,
      progress: (l: string) => lines.push(l),
    };
    await runFileReport(opts);
    expect(lines).toEqual([]);
    await runFileReport({ ...opts, progressMinBytes: 1, format: 'html' });
    expect(lines.length).toBeGreaterThanOrEqual(4);
    expect(lines.join('\n')).toMatch(/400 reference rows, 300 current rows, 5 columns/);
    expect(lines.at(-1)).toMatch(/^html rendered/);
  });
});
