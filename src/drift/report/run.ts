import { basename } from 'node:path';
import type { RoleLimits, SqlPort } from '../../store/port.js';
import { createStore } from '../../store/open.js';
import { resolveColumns, type ReportColumn } from './columns.js';
import { randomBytes } from 'node:crypto';
import type { Sample } from '../stats/types.js';
import {
  countSampleRows,
  describeFile,
  fileReadError,
  fileSample,
  inputFile,
  refineTextColumns,
  sampleColumn,
  type InputFile,
} from '../files.js';
import { histogramFromDistribution, type FeatureHistogram } from './histograms.js';
import { renderHtmlReport } from './html.js';
import {
  fileMultivariate,
  multivariateFailed,
  renderMultivariateHtml,
  vectorColumns,
  type MultivariateSection,
} from './multivariate.js';
import type { MultivariateSettings } from '../mv-detect.js';
import { computeDrift } from '../stats/engine.js';
import type { DriftReport } from '../stats/types.js';
import { mark, stage, stageSync } from '../exact/profile.js';

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
  const reference = inputFile(o.reference, 'reference');
  const current = inputFile(o.current, 'current');
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
    const refCols = await stage('describe reference', async () =>
      refineTextColumns(store, reference, await describeFile(store, reference, 'reference'), 'reference'),
    );
    const curCols = await stage('describe current', async () =>
      refineTextColumns(store, current, await describeFile(store, current, 'current'), 'current'),
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
    // Cheap row counts (Parquet metadata, Memory tables): empty files fail here, and the counts size the reads.
    const refRows = await stage('count reference', () => countSampleRows(store, reference, ref, 'reference'));
    const curRows = await stage('count current', () => countSampleRows(store, current, cur, 'current'));
    progress(`${refRows} reference rows, ${curRows} current rows, ${columns.length} columns; computing statistics`);
    // The multivariate section (a row subset, models fitted in a worker thread) runs alongside the univariate
    // statistics: its reads and fit overlap the engine's reads and sorts.
    const multivariatePending = stage('multivariate', () =>
      fileMultivariate(store, {
        reference: { file: reference, columns: refCols },
        current: { file: current, columns: curCols },
        numeric: columns.filter((c) => c.kind === 'numeric').map((c) => c.name),
        vectors,
        ...(o.multivariate !== undefined ? { settings: o.multivariate } : {}),
      }).catch((err: unknown) => multivariateFailed(err)),
    );
    pending.push(multivariatePending);
    const report = await stage('statistics', () =>
      withFiles([reference, current], () =>
        computeDrift(store, { reference: ref, current: cur, features, expectedRows: Math.max(refRows, curRows) }),
      ),
    );
    progress(`statistics done: ${report.dataset.drifted_features} of ${report.dataset.features} columns drifted`);
    const multivariate = await multivariatePending;
    progress(`multivariate done: ${multivariate.results.filter((r) => r.drift).length} drifted results`);
    if (o.format === 'json') {
      return { report: { ...withoutDistributions(report), multivariate }, columns };
    }
    const histograms = report.features.flatMap((f) =>
      f.distribution === undefined ? [] : [histogramFromDistribution(f.name, f.kind, f.distribution)],
    );
    const html = renderHtmlReport(withoutDistributions(report), histograms, {
      referenceLabel: basename(reference.path),
      currentLabel: basename(current.path),
      extraSections: renderMultivariateHtml(multivariate),
    });
    progress('html rendered');
    return { report: { ...withoutDistributions(report), multivariate }, columns, html, histograms };
  } finally {
    await Promise.allSettled(pending);
    for (const t of temps) await store.command(`DROP TABLE IF EXISTS ${t}`).catch(() => undefined);
    if (owned !== undefined) await owned.close();
  }
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
 * The sample of one input file as the engine reads it: Parquet as it is (a columnar read per group is
 * cheap), text formats parsed once into a `Memory` table (its name added to `temps`, dropped at the end).
 */
async function parsedOnce(store: SqlPort, file: InputFile, sample: Sample, temps: string[]): Promise<Sample> {
  if (!textFormats.has(file.format)) return sample;
  const table = `__mw_report_${randomBytes(8).toString('hex')}`;
  temps.push(table);
  await store.command(`CREATE TABLE ${table} ENGINE = Memory AS ${sample.sql}`, {
    label: 'parse input file',
    params: sample.params,
  });
  return { sql: `SELECT * FROM ${table}`, params: {} };
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
