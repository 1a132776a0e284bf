// `modelwatch report`'s JavaScript reader of small Parquet pairs (no engine start-up) against the engine
// reader: Parquet files written by chdb with several codecs and column types, each pair run through both
// readers, the reports compared byte for byte; unsupported types, empty files and bad input fall back to the
// engine (or fail with the engine's own error).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStore, type ClickHouseStore } from '../src/store/index.js';
import { runFileReport, type FileReportOptions } from '../src/drift/report/run.js';
import { reportMultivariateSettings, sampleRowsAndPositions } from '../src/drift/report/multivariate.js';
import { cityHash64OfUInt64, rowPositions } from '../src/drift/small/sides.js';
import { readSmallParquet } from '../src/drift/small/parquet.js';
import { reportCommand } from '../src/cli/commands/report.js';
import { UsageError } from '../src/cli/command.js';
import { runCli } from './support/report-files.js';

let store: ClickHouseStore;
let dir: string;

beforeAll(() => {
  store = createStore({ url: 'chdb::memory:' });
  dir = mkdtempSync(join(tmpdir(), 'mw-report-small-'));
});

afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Writes `select` (a SELECT over `numbers(rows)`) to a Parquet file with `codec`; returns its path. */
async function parquet(name: string, select: string, codec = 'zstd', extra: Record<string, string | number> = {}) {
  const path = join(dir, `${name}.parquet`);
  await store.command(`INSERT INTO FUNCTION file({out:String}, 'Parquet') ${select}`, {
    params: { out: path },
    settings: { engine_file_truncate_on_insert: 1, output_format_parquet_compression_method: codec, ...extra },
  });
  return path;
}

/**
 * Every column type the reader takes, with NULL, NaN, ±Inf, empty strings, an all-NULL column, integers
 * beyond 2^53 and unsigned values beyond the signed range. `shift` moves the numeric columns (drift).
 */
function mixed(rows: number, seed: number, shift: number): string {
  const r = (k: number): string => `cityHash64(number, ${seed}, ${k})`;
  const u = (k: number): string => `(${r(k)} / 18446744073709551615.0)`;
  return `SELECT
    if(number % 97 = 0, NULL, if(number % 89 = 0, nan, if(number % 83 = 0, inf, if(number % 79 = 0, -inf,
       (${u(1)} - 0.5) * 4 + ${shift})))) :: Nullable(Float64) AS f64,
    toFloat32(${u(2)} * 10 + ${shift}) AS f32,
    toInt8(${r(3)} % 200 - 100) AS i8,
    toInt16(${r(4)} % 3000 - 1500 + ${shift} * 100) AS i16,
    if(number % 50 = 0, NULL, toInt32(${r(5)} % 100000 - 50000)) :: Nullable(Int32) AS i32,
    toInt64(${r(6)} % 1000 * 9007199254740993 - 4503599627370496000) AS i64,
    toUInt8(${r(7)} % 256) AS u8,
    toUInt16(${r(8)} % 60000) AS u16,
    toUInt32(3000000000 + ${r(9)} % 1000000000) AS u32,
    toUInt64(18446744073709551615 - ${r(10)} % 1000 * 1000000007) AS u64,
    if(number % 31 = 0, NULL, ${r(11)} % 3 = 0) :: Nullable(Bool) AS flag,
    multiIf(number % 23 = 0, NULL, number % 19 = 0, '', ['red', 'green', 'blue', 'é', '10', '2'][${r(12)} % 6 + 1])
       :: Nullable(String) AS colour,
    toLowCardinality(['a', 'b', 'c', 'd'][${r(13)} % ${shift > 0 ? 4 : 3} + 1]) AS lc,
    NULL :: Nullable(Float64) AS empty_f,
    toInt32(${r(14)} % 7) AS code
  FROM numbers(${rows})`;
}

/** The result without the page's generation time (the one thing that differs between two runs). */
function strip(result: Awaited<ReturnType<typeof runFileReport>>): unknown {
  const html = result.html?.replace(/generated \d{4}-\d\d-\d\dT[\d:.]+Z/, 'generated (time)');
  return { report: result.report, columns: result.columns, html };
}

/** Runs both readers on the same options; returns what each gave (result or error message). */
async function both(
  options: Omit<FileReportOptions, 'store' | 'reader'>,
): Promise<{ js: string; engine: string; reader: string }> {
  const run = async (reader: 'auto' | 'engine'): Promise<{ text: string; reader: string }> => {
    try {
      const r = await runFileReport({ ...options, store, reader });
      return { text: JSON.stringify(strip(r), null, 2), reader: r.reader };
    } catch (err) {
      return { text: `error: ${(err as Error).message}`, reader: 'error' };
    }
  };
  const js = await run('auto');
  const engine = await run('engine');
  expect(engine.reader === 'engine' || engine.reader === 'error').toBe(true);
  return { js: js.text, engine: engine.text, reader: js.reader };
}

describe('small Parquet pairs: the JavaScript reader gives the engine reader’s report', () => {
  it.each(['zstd', 'snappy', 'gzip', 'brotli', 'none'])('codec %s', async (codec) => {
    const reference = await parquet(`ref-${codec}`, mixed(1500, 1, 0), codec);
    const current = await parquet(`cur-${codec}`, mixed(1200, 2, 0.4), codec);
    const out = await both({ reference, current, categorical: ['code'] });
    expect(out.reader).toBe('js');
    expect(out.js).toBe(out.engine);
    const report = JSON.parse(out.js) as { report: { features: { name: string; kind: string }[] } };
    // The classification the engine gives: Bool and strings categorical, every integer and float numeric.
    expect(Object.fromEntries(report.report.features.map((f) => [f.name, f.kind]))).toEqual({
      f64: 'numeric',
      f32: 'numeric',
      i8: 'numeric',
      i16: 'numeric',
      i32: 'numeric',
      i64: 'numeric',
      u8: 'numeric',
      u16: 'numeric',
      u32: 'numeric',
      u64: 'numeric',
      flag: 'categorical',
      colour: 'categorical',
      lc: 'categorical',
      empty_f: 'numeric',
      code: 'categorical',
    });
  });

  it('html, more rows than the multivariate subset, several row groups, --columns', async () => {
    const reference = await parquet('ref-big', mixed(4000, 3, 0), 'zstd', {
      output_format_parquet_row_group_size: 700,
    });
    const current = await parquet('cur-big', mixed(2600, 4, 1), 'snappy', {
      output_format_parquet_row_group_size: 999,
    });
    const html = await both({ reference, current, format: 'html' });
    expect(html.reader).toBe('js');
    expect(html.js).toBe(html.engine);
    const some = await both({ reference, current, columns: ['u64', 'colour', 'i64', 'f32'] });
    expect(some.reader).toBe('js');
    expect(some.js).toBe(some.engine);
    // The multivariate section ran on the subset (numeric columns together).
    const parsed = JSON.parse(some.js) as {
      report: { multivariate: { numeric_features: string[]; results: unknown[] } };
    };
    expect(parsed.report.multivariate.numeric_features).toEqual(['u64', 'i64', 'f32']);
    expect(parsed.report.multivariate.results.length).toBeGreaterThan(0);
  });

  it.each([
    ['Arrow writer', { output_format_parquet_use_custom_encoder: 0 }],
    ['Parquet 1.0, small pages', { output_format_parquet_version: '1.0', output_format_parquet_data_page_size: 512 }],
    ['no dictionaries', { output_format_parquet_max_dictionary_size: 0 }],
  ] as const)('%s', async (name, settings) => {
    const reference = await parquet(`ref-${name}`, mixed(1100, 7, 0), 'snappy', settings);
    const current = await parquet(`cur-${name}`, mixed(900, 8, 0.3), 'zstd', settings);
    const out = await both({ reference, current, categorical: ['code'] });
    expect(out.reader).toBe('js');
    expect(out.js).toBe(out.engine);
  });

  it('a column numeric in one file and text in the other: integers compared as text', async () => {
    const reference = await parquet(
      'ref-int',
      'SELECT toInt64(number % 7) AS k, toFloat64(number) AS x FROM numbers(300)',
    );
    const current = await parquet(
      'cur-str',
      'SELECT toString(number % 5) AS k, toFloat64(number) AS x FROM numbers(200)',
    );
    const out = await both({ reference, current });
    expect(out.reader).toBe('js');
    expect(out.js).toBe(out.engine);
  });

  it('one-row files and an all-NULL column on both sides', async () => {
    const reference = await parquet('ref-one', 'SELECT 1.5 AS x, NULL :: Nullable(String) AS s FROM numbers(1)');
    const current = await parquet('cur-one', "SELECT 2.5 AS x, 'q' :: Nullable(String) AS s FROM numbers(1)");
    const out = await both({ reference, current });
    expect(out.reader).toBe('js');
    expect(out.js).toBe(out.engine);
  });
});

describe('falls back to the engine, or fails as the engine does', () => {
  const cases: [string, string][] = [
    ['Date', 'SELECT toDate(number) AS d, toFloat64(number) AS x FROM numbers(100)'],
    ['DateTime64', 'SELECT toDateTime64(number, 3) AS d, toFloat64(number) AS x FROM numbers(100)'],
    ['Decimal', 'SELECT toDecimal64(number / 3, 4) AS d, toFloat64(number) AS x FROM numbers(100)'],
    [
      'vector column',
      'SELECT [toFloat64(number), 1.0] AS d, toFloat64(number) AS x, toFloat64(number % 9) AS y FROM numbers(100)',
    ],
    ['FixedString', "SELECT toFixedString('ab', 2) AS d, toFloat64(number) AS x FROM numbers(100)"],
    ['tuple', 'SELECT tuple(number, 1) AS d, toFloat64(number) AS x FROM numbers(100)'],
  ];
  it.each(cases)('%s', async (name, select) => {
    const reference = await parquet(`ref-${name}`, select);
    const current = await parquet(`cur-${name}`, select.replace('numbers(100)', 'numbers(120)'));
    const out = await both({ reference, current });
    expect(out.reader).toBe('engine');
    expect(out.js).toBe(out.engine);
  });

  it('a float column forced categorical (float-to-text formatting is the engine’s)', async () => {
    const reference = await parquet('ref-fc', 'SELECT number / 7 AS x, toFloat64(number) AS y FROM numbers(100)');
    const current = await parquet('cur-fc', 'SELECT number / 9 AS x, toFloat64(number) AS y FROM numbers(100)');
    const out = await both({ reference, current, categorical: ['x'] });
    expect(out.reader).toBe('engine');
    expect(out.js).toBe(out.engine);
  });

  it('LZ4_RAW pages (left to the engine)', async () => {
    const reference = await parquet('ref-lz4', mixed(300, 5, 0), 'lz4');
    const current = await parquet('cur-lz4', mixed(200, 6, 1), 'lz4');
    expect(await readSmallParquet(reference, 100)).toEqual({ reason: 'codec LZ4_RAW' });
    const out = await both({ reference, current });
    expect(out.reader).toBe('engine');
    expect(out.js).toBe(out.engine);
  });

  it('a CSV side', async () => {
    const reference = await parquet('ref-csvpair', 'SELECT toFloat64(number) AS x FROM numbers(50)');
    const current = join(dir, 'cur.csv');
    await store.command(
      `INSERT INTO FUNCTION file({out:String}, 'CSVWithNames') SELECT toFloat64(number) AS x FROM numbers(40)`,
      {
        params: { out: current },
        settings: { engine_file_truncate_on_insert: 1 },
      },
    );
    const out = await both({ reference, current });
    expect(out.reader).toBe('engine');
    expect(out.js).toBe(out.engine);
  });

  it('a 0-row file: the engine’s empty-file error', async () => {
    const reference = await parquet('ref-empty', 'SELECT toFloat64(number) AS x FROM numbers(0)');
    const current = await parquet('cur-nonempty', 'SELECT toFloat64(number) AS x FROM numbers(10)');
    expect(await readSmallParquet(reference, 1)).toEqual({ reason: 'no rows' });
    const out = await both({ reference, current });
    expect(out.js).toMatch(/^error: reference file .*: empty file \(0 rows\)$/);
    expect(out.js).toBe(out.engine);
  });

  it('mismatched and unknown columns: the same errors', async () => {
    const reference = await parquet('ref-mm', 'SELECT toFloat64(number) AS x, toInt32(number) AS a FROM numbers(30)');
    const current = await parquet('cur-mm', 'SELECT toFloat64(number) AS x, toInt32(number) AS b FROM numbers(30)');
    const mismatched = await both({ reference, current });
    expect(mismatched.js).toMatch(/^error: mismatched columns \(only in reference: a; only in current: b\)/);
    expect(mismatched.js).toBe(mismatched.engine);
    const unknown = await both({ reference, current, columns: ['x', 'nope'] });
    expect(unknown.js).toBe("error: --columns: unknown column 'nope'");
    expect(unknown.js).toBe(unknown.engine);
    const shared = await both({ reference, current, columns: ['x'] });
    expect(shared.reader).toBe('js');
    expect(shared.js).toBe(shared.engine);
  });

  it('a file that is not Parquet inside: the engine’s error', async () => {
    const reference = await parquet('ref-ok', 'SELECT toFloat64(number) AS x FROM numbers(30)');
    const current = join(dir, 'garbage.parquet');
    await store.command(`INSERT INTO FUNCTION file({out:String}, 'CSVWithNames') SELECT 1 AS x`, {
      params: { out: current },
      settings: { engine_file_truncate_on_insert: 1 },
    });
    const out = await both({ reference, current });
    expect(out.js).toMatch(/^error: current file .*garbage\.parquet: cannot read as Parquet/);
    expect(out.js).toBe(out.engine);
  });

  it('files above the size or row limit are left to the engine', async () => {
    const path = await parquet('limits', 'SELECT toFloat64(number) AS x FROM numbers(1000)');
    expect(await readSmallParquet(path, 17 * 2 ** 20)).toEqual({ reason: 'larger than 16777216 bytes' });
    expect(await readSmallParquet(path, 100, { maxRows: 999 })).toEqual({ reason: 'more than 999 rows' });
    const read = await readSmallParquet(path, 100);
    expect('rows' in read && read.rows).toBe(1000);
  });
});

describe('the multivariate row subset', () => {
  it('cityHash64 of an integer is ClickHouse’s', async () => {
    const out = await store.query<{ n: string; h: string }>(
      'SELECT toString(number * 7919) AS n, toString(cityHash64(number * 7919)) AS h FROM numbers(200)',
    );
    for (const r of out) expect(cityHash64OfUInt64(BigInt(r.n)).toString(), r.n).toBe(r.h);
  });

  it.each([
    [1, 2000],
    [7, 3],
    [2500, 2000],
    [300, 0],
  ])('%i rows, at most %i: the positions sampleRowsAndPositions reads', async (rows, maxRows) => {
    const sample = { sql: `SELECT number FROM numbers(${rows})`, params: {} };
    const engine = await sampleRowsAndPositions(store, sample, maxRows);
    expect(engine.rows).toBe(rows);
    expect(Array.from(rowPositions(rows, maxRows))).toEqual(Array.from(engine.positions));
  });

  it('the default subset size is what the positions are cut to', () => {
    expect(reportMultivariateSettings().maxRows).toBe(2000);
  });
});

describe('choosing the reader on the command line', () => {
  it('JS reader by default; --reader engine and MODELWATCH_REPORT_READER=engine start the engine; same output', async () => {
    const reference = await parquet('cli-ref', mixed(500, 9, 0));
    const current = await parquet('cli-cur', mixed(400, 10, 0.5));
    const args = ['report', '--reference', reference, '--current', current];
    const saved = { profile: process.env.MODELWATCH_PROFILE, reader: process.env.MODELWATCH_REPORT_READER };
    process.env.MODELWATCH_PROFILE = '1';
    delete process.env.MODELWATCH_REPORT_READER;
    try {
      const auto = await runCli(args);
      const flag = await runCli([...args, '--reader', 'engine']);
      process.env.MODELWATCH_REPORT_READER = 'engine';
      const env = await runCli(args);
      const overridden = await runCli([...args, '--reader', 'auto']);
      process.env.MODELWATCH_REPORT_READER = 'fastest';
      const bad = await runCli(args);
      for (const r of [auto, flag, env, overridden]) expect(r.code, r.stderr).toBe(0);
      expect(auto.stderr).toContain('js read reference');
      expect(auto.stderr).not.toContain('open store');
      expect(overridden.stderr).not.toContain('open store');
      expect(flag.stderr).toContain('open store');
      expect(env.stderr).toContain('open store');
      expect(auto.stdout).toBe(flag.stdout);
      expect(env.stdout).toBe(auto.stdout);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain("MODELWATCH_REPORT_READER must be auto or engine, got 'fastest'");
    } finally {
      for (const [key, value] of [
        ['MODELWATCH_PROFILE', saved.profile],
        ['MODELWATCH_REPORT_READER', saved.reader],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });

  it('rejects a bad --reader and a bad MODELWATCH_REPORT_READER with a message naming it', async () => {
    const bad = reportCommand.run(['--reference', 'a.parquet', '--current', 'b.parquet', '--reader', 'fast']);
    await expect(bad).rejects.toBeInstanceOf(UsageError);
    await expect(bad).rejects.toThrow("--reader must be auto or engine, got 'fast'");
    const before = process.env.MODELWATCH_REPORT_READER;
    process.env.MODELWATCH_REPORT_READER = 'quick';
    try {
      await expect(reportCommand.run(['--reference', 'a.parquet', '--current', 'b.parquet'])).rejects.toThrow(
        "MODELWATCH_REPORT_READER must be auto or engine, got 'quick'",
      );
    } finally {
      if (before === undefined) delete process.env.MODELWATCH_REPORT_READER;
      else process.env.MODELWATCH_REPORT_READER = before;
    }
  });

  it('rejects an unknown reader in the library options', async () => {
    await expect(
      runFileReport({ reference: 'a.parquet', current: 'b.parquet', reader: 'fast' as 'auto' }),
    ).rejects.toThrow('reader must be one of auto, engine');
  });
});
