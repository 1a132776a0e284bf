import { basename } from 'node:path';
import type { RoleLimits, SqlPort } from '../../store/port.js';
import { createStore } from '../../store/open.js';
import { resolveColumns, type ReportColumn } from './columns.js';
import { randomBytes } from 'node:crypto';
import type { Sample } from '../stats/types.js';
import {
  emptyFileError,
  describeFile,
  fileReadError,
  fileSample,
  inputFile,
  withLiterals,
  refineTextColumns,
  sampleColumn,
  type InputFile,
} from '../files.js';
import { histogramFromDistribution, type FeatureHistogram } from './histograms.js';
import { renderHtmlReport } from './html.js';
import {
  FILE_ORDER_SETTINGS,
  NumericSubset,
  fileMultivariate,
  multivariateFailed,
  renderMultivariateHtml,
  reportMultivariateSettings,
  sampleRowsAndPositions,
  vectorColumns,
  type MultivariateSection,
} from './multivariate.js';
import { ErrorCodes, ModelwatchError } from '../../common/errors.js';
import type { MultivariateSettings } from '../mv-detect.js';
import { computeDrift } from '../stats/engine.js';
import type { DriftReport } from '../stats/types.js';
import { mark, stage, stageSync } from '../exact/profile.js';
import { compareSideReads } from '../exact/compare.js';
import { SMALL_PARQUET_MAX_BYTES, readSmallParquet } from '../small/parquet.js';
import { ReportReaders, Unsupported, rowPositions, sideRead, type ReportReader } from '../small/sides.js';

/** Options of {@link runFileReport}. */
export interface FileReportOptions {
  /** Path of the reference file (`.csv`, `.tsv`, `.parquet`, `.jsonl`, `.ndjson`). */
  reference: string;
  /** Path of the current file. */
  current: string;
  /** `json` returns the report only; `html` also renders the page. @default 'json' */
  format?: 'json' | 'html';
  /** Columns forced categorical. @default [] */
  categorical?: readonly string[];
  /** Only these columns. @default all columns */
  columns?: readonly string[] | undefined;
  /** Receives one line per stage when the inputs are large (see `progressMinBytes`). @default no output */
  progress?: (line: string) => void;
  /** Combined input size from which `progress` is called. @default 67108864 (64 MiB) */
  progressMinBytes?: number;
  /**
   * Store to run on; when absent an in-memory chdb engine is opened and closed. chdb allows one engine per
   * process, so pass the process's store when one is already open. Statements run with the `report`
   * role's deadline and memory cap.
   * @default an in-memory chdb store
   */
  store?: SqlPort | undefined;
  /** Deadline and memory cap of each statement. @default `DefaultRoleLimits.report` (1 h, 8 GiB) */
  limits?: RoleLimits | undefined;
  /** Settings of the multivariate section (`multivariate` of the config). @default the documented defaults */
  multivariate?: MultivariateSettings | undefined;
  /**
   * `auto`: two small Parquet files whose columns all have plain types (see `docs/drift-engine.md`) are read
   * in JavaScript, without the engine, giving the same report; anything else goes through the engine.
   * `engine`: always the engine. @default 'auto'
   */
  reader?: ReportReader | undefined;
}

/** What {@link runFileReport} returns. */
export interface FileReportResult {
  /** The drift report (DESIGN §2 shape), with its `multivariate` section when it could be computed. */
  report: DriftReport & { multivariate?: MultivariateSection };
  /** The columns compared, with their kinds. */
  columns: ReportColumn[];
  /** The HTML page, when `format` is `html`. */
  html?: string;
  /** Display histograms, when `format` is `html`. */
  histograms?: FeatureHistogram[];
  /** Which reader read the files: `js` (small Parquet files, no engine) or `engine`. */
  reader: 'js' | 'engine';
}

const defaults = {
  format: 'json',
  categorical: [],
  columns: undefined,
  progress: () => {},
  progressMinBytes: 64 * 2 ** 20,
  store: undefined,
  limits: undefined,
  multivariate: undefined,
  reader: 'auto',
} satisfies { [K in Exclude<keyof FileReportOptions, 'reference' | 'current'>]-?: FileReportOptions[K] };

function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MB`;
}

/**
 * `modelwatch report` without the command line: reads two files through ClickHouse file formats (schema
 * by ClickHouse inference, kinds per {@link resolveColumns}), runs the drift engine over them and, for
 * `html`, renders the page with the engine's per-bin distributions. Input problems (missing, empty or
 * unreadable file, mismatched or unknown columns) throw `ModelwatchError` `input_invalid` with a one-line
 * message.
 */
export async function runFileReport(options: FileReportOptions): Promise<FileReportResult> {
  const o = { ...defaults, ...options };
  if (o.format !== 'json' && o.format !== 'html') throw new RangeError(`format must be json or html`);
  if (!(o.progressMinBytes >= 0)) throw new RangeError('progressMinBytes must be ≥ 0');
  if (!(ReportReaders as readonly string[]).includes(o.reader)) {
    throw new ModelwatchError(ErrorCodes.inputInvalid, `reader must be one of ${ReportReaders.join(', ')}`, {
      field: 'reader',
    });
  }
  const reference = inputFile(o.reference, 'reference');
  const current = inputFile(o.current, 'current');
  if (o.reader === 'auto') {
    const small = await smallFileReport(o, reference, current);
    if (small !== undefined) return small;
  }
  const started = performance.now();
  const loud = reference.bytes + current.bytes >= o.progressMinBytes;
  const progress = (line: string): void => {
    if (loud) o.progress(`${line} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
  };
  progress(`reading ${reference.path} (${mb(reference.bytes)}) and ${current.path} (${mb(current.bytes)})`);
  mark('report start', 0);
  const owned =
    o.store === undefined ? stageSync('open store', () => createStore({ url: 'chdb::memory:' })) : undefined;
  const store = (o.store ?? owned!).with({
    role: 'report',
    ...(o.limits !== undefined ? { timeoutMs: o.limits.timeoutMs, maxMemoryBytes: o.limits.maxMemoryBytes } : {}),
  });
  const temps: string[] = [];
  // Work still running on the store when a step fails: awaited before the store closes.
  const pending: Promise<unknown>[] = [];
  try {
    // Both sides at once (statements without bound parameters run concurrently in the embedded engine); a
    // reference error is reported before a current one.
    const [refCols, curCols] = await both(
      stage('describe reference', async () =>
        refineTextColumns(store, reference, await describeFile(store, reference, 'reference'), 'reference'),
      ),
      stage('describe current', async () =>
        refineTextColumns(store, current, await describeFile(store, current, 'current'), 'current'),
      ),
    );
    // Vector columns (e.g. Parquet lists of floats) are compared as embeddings in the multivariate section.
    const vectors = vectorColumns(refCols, curCols);
    const isVector = (c: { name: string }): boolean => vectors.includes(c.name);
    const columns = resolveColumns(
      refCols.filter((c) => !isVector(c)),
      curCols.filter((c) => !isVector(c)),
      { categorical: o.categorical, columns: o.columns },
    );
    const features = columns.map((c, i) => ({ name: c.name, kind: c.kind, column: sampleColumn(i) }));
    const ref = await withFiles([reference, current], () =>
      parsedOnce(store, reference, fileSample(reference, refCols, columns, 'mw_ref'), temps),
    );
    const cur = await withFiles([reference, current], () =>
      parsedOnce(store, current, fileSample(current, curCols, columns, 'mw_cur'), temps),
    );
    const mvSettings = o.multivariate ?? reportMultivariateSettings();
    const numeric = columns.filter((c) => c.kind === 'numeric').map((c) => c.name);
    // The multivariate section's numeric rows are taken from the statistics' own reads (a subset of row
    // positions, copied as each group is read): no second read of the files. Its vector columns, its reads
    // and its methods run alongside the statistics. One statement per side gives its row count (cheap:
    // Parquet metadata, Memory tables; empty files fail here, and the counts size the reads) and the
    // section's row positions.
    const side = async (
      file: InputFile,
      sample: Sample,
      role: string,
    ): Promise<{ rows: number; positions: Uint32Array }> => {
      let out: { rows: number; positions: Uint32Array };
      try {
        out = await sampleRowsAndPositions(store, sample, mvSettings.maxRows);
      } catch (err) {
        throw fileReadError(file, role, err);
      }
      if (out.rows === 0) throw emptyFileError(file, role);
      return out;
    };
    const [refSide, curSide] = await both(
      stage('count reference', () => side(reference, ref, 'reference')),
      stage('count current', () => side(current, cur, 'current')),
    );
    const refRows = refSide.rows;
    const curRows = curSide.rows;
    progress(`${refRows} reference rows, ${curRows} current rows, ${columns.length} columns; computing statistics`);
    const subset = ((): NumericSubset => {
      try {
        const byName = new Map(columns.map((c, i) => [c.name, sampleColumn(i)]));
        const mvColumns = new Map(
          mvSettings.enabled && numeric.length >= 2 ? numeric.map((n) => [n, byName.get(n)!]) : [],
        );
        return new NumericSubset(mvColumns, { reference: refSide.positions, current: curSide.positions });
      } catch (err) {
        return NumericSubset.failed(err);
      }
    })();
    const small = Math.max(refRows, curRows) <= INLINE_MULTIVARIATE_MAX_ROWS;
    const multivariatePending = stage('multivariate', () =>
      fileMultivariate(store, {
        reference: { file: reference, columns: refCols },
        current: { file: current, columns: curCols },
        numeric,
        numericRows: subset.rows,
        vectors,
        settings: mvSettings,
        inline: small,
      }).catch((err: unknown) => multivariateFailed(err)),
    );
    pending.push(multivariatePending);
    let report: DriftReport;
    try {
      report = await stage('statistics', () =>
        withFiles([reference, current], () =>
          computeDrift(store, {
            reference: ref,
            current: cur,
            features,
            expectedRows: Math.max(refRows, curRows),
            // Every read sees the rows in file order: the subset's positions name the same rows in each.
            settings: readSettings(reference, current),
            onNumericRead: subset.onNumericRead,
          }),
        ),
      );
    } finally {
      subset.fail(
        new ModelwatchError(ErrorCodes.internal, 'the statistics ended before the multivariate rows were read'),
      );
    }
    progress(`statistics done: ${report.dataset.drifted_features} of ${report.dataset.features} columns drifted`);
    const multivariate = await multivariatePending;
    progress(`multivariate done: ${multivariate.results.filter((r) => r.drift).length} drifted results`);
    const out = finishReport(report, multivariate, columns, o.format, reference, current, 'engine');
    if (o.format === 'html') progress('html rendered');
    return out;
  } finally {
    await Promise.allSettled(pending);
    for (const t of temps) await store.command(`DROP TABLE IF EXISTS ${t}`).catch(() => undefined);
    if (owned !== undefined) await stage('close store', () => owned.close());
  }
}

/**
 * The result of a report: the JSON report (without the per-bin vectors) and, for `html`, the page with its
 * histograms. The same for either reader.
 */
function finishReport(
  report: DriftReport,
  multivariate: MultivariateSection,
  columns: ReportColumn[],
  format: 'json' | 'html',
  reference: InputFile,
  current: InputFile,
  reader: FileReportResult['reader'],
): FileReportResult {
  if (format === 'json') {
    return { report: { ...withoutDistributions(report), multivariate }, columns, reader };
  }
  const histograms = report.features.flatMap((f) =>
    f.distribution === undefined ? [] : [histogramFromDistribution(f.name, f.kind, f.distribution)],
  );
  const html = renderHtmlReport(withoutDistributions(report), histograms, {
    referenceLabel: basename(reference.path),
    currentLabel: basename(current.path),
    extraSections: renderMultivariateHtml(multivariate),
  });
  return { report: { ...withoutDistributions(report), multivariate }, columns, html, histograms, reader };
}

/**
 * The report of two small Parquet files read in JavaScript (no engine start-up), or undefined when either
 * file is not one (not Parquet, too large, empty, a type or codec not mirrored, a column's cast not mirrored):
 * the engine then reads them. The same steps as the engine path, in the same order (columns resolved with the
 * same errors, the same values per column, the same multivariate rows), so the same report.
 */
async function smallFileReport(
  o: Required<Pick<FileReportOptions, 'format' | 'categorical'>> & Pick<FileReportOptions, 'columns' | 'multivariate'>,
  reference: InputFile,
  current: InputFile,
): Promise<FileReportResult | undefined> {
  if (reference.format !== 'Parquet' || current.format !== 'Parquet') return undefined;
  // Sizes first, then one file after the other (the reads are CPU work on this thread either way): a file
  // that is not small sends the report to the engine before the other is read.
  const tooLarge = [reference, current].find((f) => f.bytes > SMALL_PARQUET_MAX_BYTES);
  if (tooLarge !== undefined) {
    mark(`engine reader: ${basename(tooLarge.path)} larger than ${SMALL_PARQUET_MAX_BYTES} bytes`, 0);
    return undefined;
  }
  const refFile = await stage('js read reference', () => readSmallParquet(reference.path, reference.bytes));
  if ('reason' in refFile) {
    mark(`engine reader: reference ${refFile.reason}`, 0);
    return undefined;
  }
  const curFile = await stage('js read current', () => readSmallParquet(current.path, current.bytes));
  if ('reason' in curFile) {
    mark(`engine reader: current ${curFile.reason}`, 0);
    return undefined;
  }
  // No vector columns here (lists fall back above), so every column is a report column candidate.
  const columns = resolveColumns(refFile.columns, curFile.columns, { categorical: o.categorical, columns: o.columns });
  const ref = sideRead(refFile, columns);
  const cur = sideRead(curFile, columns);
  if (ref instanceof Unsupported || cur instanceof Unsupported) {
    mark(`engine reader: ${ref instanceof Unsupported ? ref.reason : (cur as Unsupported).reason}`, 0);
    return undefined;
  }
  const features = columns.map((c, i) => ({ name: c.name, kind: c.kind, column: sampleColumn(i) }));
  const mvSettings = o.multivariate ?? reportMultivariateSettings();
  const numeric = columns.filter((c) => c.kind === 'numeric').map((c) => c.name);
  const byName = new Map(columns.map((c, i) => [c.name, sampleColumn(i)]));
  const subset = new NumericSubset(
    new Map(mvSettings.enabled && numeric.length >= 2 ? numeric.map((n) => [n, byName.get(n)!]) : []),
    {
      reference: rowPositions(ref.rows, mvSettings.maxRows),
      current: rowPositions(cur.rows, mvSettings.maxRows),
    },
  );
  const multivariatePending = stage('multivariate', () =>
    fileMultivariate(undefined, {
      reference: { file: reference, columns: refFile.columns },
      current: { file: current, columns: curFile.columns },
      numeric,
      numericRows: subset.rows,
      vectors: [],
      settings: mvSettings,
      inline: Math.max(ref.rows, cur.rows) <= INLINE_MULTIVARIATE_MAX_ROWS,
    }).catch((err: unknown) => multivariateFailed(err)),
  );
  let report: DriftReport;
  try {
    report = await stage('statistics', () =>
      compareSideReads(ref, cur, { features, onNumericRead: subset.onNumericRead }),
    );
  } finally {
    subset.fail(
      new ModelwatchError(ErrorCodes.internal, 'the statistics ended before the multivariate rows were read'),
    );
    // Settles before an error leaves: nothing runs on after the report.
    await Promise.allSettled([multivariatePending]);
  }
  const multivariate = await multivariatePending;
  return finishReport(report, multivariate, columns, o.format, reference, current, 'js');
}

/** Text formats are parsed once into a `Memory` table: the engine reads each side several times (per group). */
const textFormats: ReadonlySet<string> = new Set([
  'CSVWithNames',
  'TSVWithNames',
  'CSV',
  'TSV',
  'JSONEachRow',
  'JSONLines',
  'NDJSON',
]);

/**
 * Inputs with at most this many rows per side run the multivariate methods in this thread: a worker's
 * start-up (~0.1–0.2 s) costs more than the methods on the capped rows. Larger reports keep the worker,
 * so the methods overlap the statistics.
 */
const INLINE_MULTIVARIATE_MAX_ROWS = 50_000;

/**
 * Settings of the statistics' reads: rows in file order in every read (Parquet row groups not reordered;
 * a parsed text file's `Memory` copy read by one stream, in insertion order).
 */
function readSettings(...files: InputFile[]): Record<string, number> {
  return files.some((f) => textFormats.has(f.format))
    ? { ...FILE_ORDER_SETTINGS, max_threads: 1 }
    : { ...FILE_ORDER_SETTINGS };
}

/**
 * The sample of one input file as the engine reads it: Parquet as it is (a columnar read per group is
 * cheap), text formats parsed once into a `Memory` table (its name added to `temps`, dropped at the end).
 */
async function parsedOnce(store: SqlPort, file: InputFile, sample: Sample, temps: string[]): Promise<Sample> {
  if (!textFormats.has(file.format)) return withLiterals(sample);
  const table = `__mw_report_${randomBytes(8).toString('hex')}`;
  temps.push(table);
  // Rows inserted in file order (the text is still parsed in parallel), so the copy keeps the file's order.
  await store.command(`CREATE TABLE ${table} ENGINE = Memory AS ${sample.sql}`, {
    label: 'parse input file',
    params: sample.params,
    settings: { max_threads: 1, max_insert_threads: 1 },
  });
  return { sql: `SELECT * FROM ${table}`, params: {} };
}

/** Both results, or the first side's error before the second's (both settle before either is thrown). */
async function both<A, B>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [x, y] = await Promise.allSettled([a, b]);
  if (x.status === 'rejected') throw x.reason;
  if (y.status === 'rejected') throw y.reason;
  return [x.value, y.value];
}

/**
 * Runs a statistics step over the input files, turning a ClickHouse read error (e.g. a value that does not
 * parse as the column's inferred type further down the file) into a one-line input error naming the file.
 */
async function withFiles<T>(files: readonly InputFile[], fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err: unknown) {
    const text = err instanceof Error ? err.message : String(err);
    const file = files.find((f) => text.includes(f.path)) ?? files[0]!;
    throw fileReadError(file, file === files[0] ? 'reference' : 'current', err);
  }
}

/** The DESIGN §2 report without the per-bin vectors (they feed the HTML plots only). */
function withoutDistributions(report: DriftReport): DriftReport {
  return { ...report, features: report.features.map(({ distribution: _d, ...f }) => f) };
}
