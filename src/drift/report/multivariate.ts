import { errorMessage } from '../../common/errors.js';
import type { Config } from '../../config/schema.js';
import type { SqlPort } from '../../store/port.js';
import { baseType, fileReadError, structureOf, type FileColumn, type InputFile } from '../files.js';
import {
  computeMultivariate,
  multivariateSettings,
  type GroupRows,
  type MultivariateResult,
  type MultivariateSettings,
} from '../mv-detect.js';
import { quoteIdent } from '../stats/sample.js';
import { escapeHtml } from './html.js';
import { stage } from '../exact/profile.js';
import type { NumericRead } from '../exact/read.js';
import type { Sample } from '../stats/types.js';

/** The `multivariate` section of a file report. */
export interface MultivariateSection {
  /** Numeric columns taken together (reconstruction, classifier). */
  numeric_features: string[];
  /** Vector columns (lists of numbers, e.g. Parquet lists) with their dimension, each compared as an embedding. */
  embeddings: { name: string; dim: number }[];
  /** Rows read from each file at most. */
  max_rows: number;
  /** One result per method and feature group ('' = the numeric set, else the vector column). */
  results: MultivariateResult[];
  /** Why the section could not be computed (the univariate report stands on its own). */
  error?: string;
}

/** An empty section carrying the error that stopped it. */
export function multivariateFailed(err: unknown): MultivariateSection {
  return { numeric_features: [], embeddings: [], max_rows: 0, results: [], error: errorMessage(err) };
}

/** True for a ClickHouse array of numbers (`Array(Float64)`, `Array(Nullable(Float32))`, …): a vector column. */
export function isVectorType(type: string): boolean {
  const m = /^Array\((.*)\)$/.exec(baseType(type));
  return m?.[1] !== undefined && /^(?:U?Int(?:8|16|32|64)|Float(?:32|64)|BFloat16)$/.test(baseType(m[1]));
}

/** Names of the columns that are vectors of numbers in both files (the file report's embedding columns). */
export function vectorColumns(reference: readonly FileColumn[], current: readonly FileColumn[]): string[] {
  const cur = new Map(current.map((c) => [c.name, c.type]));
  return reference.filter((c) => isVectorType(c.type) && isVectorType(cur.get(c.name) ?? '')).map((c) => c.name);
}

/**
 * The report's settings: the config's top-level `multivariate` section, except that the automatic choice
 * on the numeric columns is reconstruction only; the domain classifier (the slowest method) runs in a
 * report when `multivariate.methods` lists it.
 */
export function reportMultivariateSettings(
  config: Pick<Config, 'multivariate'> = { multivariate: {} },
): MultivariateSettings {
  const s = multivariateSettings({ models: {}, multivariate: config.multivariate }, '');
  return s.methods === 'auto' ? { ...s, methods: ['reconstruction'] } : s;
}

/**
 * ClickHouse settings under which a file's rows come out in file order on every read (the row positions the
 * section's subset names): Parquet row groups are not reordered by parallel decoding.
 */
export const FILE_ORDER_SETTINGS = { input_format_parquet_preserve_order: 1 } as const;

/**
 * The number of rows of `sample` and the positions (0-based, in file order) of the multivariate section's
 * rows: the `maxRows` positions `p` with the smallest `cityHash64(p)`, in that order, the same rows on every
 * run over the same file. One statement: the count is taken inside it
 * (`numbers((SELECT count() FROM sample))`) and returned with every position, so a report needs no separate
 * count.
 */
export async function sampleRowsAndPositions(
  store: SqlPort,
  sample: Sample,
  maxRows: number,
): Promise<{ rows: number; positions: Uint32Array }> {
  if (!Number.isSafeInteger(maxRows) || maxRows < 0) throw new RangeError('maxRows must be a non-negative integer');
  const out = await store.query<{ p: number | string; n: number | string }>(
    `WITH (SELECT count() FROM (${sample.sql})) AS n
     SELECT toUInt32(number) AS p, n FROM numbers(assumeNotNull(n)) ORDER BY cityHash64(number) LIMIT ${Math.max(1, maxRows)}`,
    { label: 'count rows and multivariate row subset', params: sample.params },
  );
  // No row: an empty sample. With maxRows 0 the one row read carries the count only.
  const rows = Number(out[0]?.n ?? 0);
  return { rows, positions: Uint32Array.from(out.slice(0, maxRows), (r) => Number(r.p)) };
}

/** One side of a {@link NumericSubset}: its positions and, per column, the values gathered so far. */
interface SubsetSide {
  positions: Uint32Array;
  values: Map<string, Float64Array>;
}

/**
 * The numeric rows of the multivariate section, gathered from the drift engine's own reads
 * ({@link NumericSubset.onNumericRead}) instead of a second read of every column: each side keeps the values at
 * its {@link sampleRowsAndPositions}. {@link NumericSubset.rows} settles once every column of both sides is in, or
 * with the error given to {@link NumericSubset.fail}.
 */
export class NumericSubset {
  readonly #sides: Record<'reference' | 'current', SubsetSide>;
  /** Report column name → engine column (`__mw_colN`). */
  readonly #columns: ReadonlyMap<string, string>;
  readonly #rows: Promise<{ reference: number[][]; current: number[][] }>;
  #resolve!: (rows: { reference: number[][]; current: number[][] }) => void;
  #reject!: (err: unknown) => void;
  #settled = false;

  /** `columns`: report column name → the engine's column; positions per side from {@link sampleRowsAndPositions}. */
  constructor(columns: ReadonlyMap<string, string>, positions: { reference: Uint32Array; current: Uint32Array }) {
    this.#columns = columns;
    this.#sides = {
      reference: { positions: positions.reference, values: new Map() },
      current: { positions: positions.current, values: new Map() },
    };
    this.#rows = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // Rejected before anyone awaits it (the statistics failed first): not an unhandled rejection.
    this.#rows.catch(() => undefined);
    this.#check();
  }

  /** A subset that never gets its rows: {@link rows} rejects with `err` (e.g. the positions could not be read). */
  static failed(err: unknown): NumericSubset {
    const s = new NumericSubset(new Map([['', '']]), { reference: new Uint32Array(0), current: new Uint32Array(0) });
    s.fail(err);
    return s;
  }

  /** The rows of both sides, one array per row in the order of the `columns` map (NaN for missing). */
  get rows(): Promise<{ reference: number[][]; current: number[][] }> {
    return this.#rows;
  }

  /** The engine's read callback: copies the subset's values of the columns just read (synchronously). */
  readonly onNumericRead = (side: 'reference' | 'current', read: NumericRead): void => {
    const s = this.#sides[side];
    for (const column of this.#columns.values()) {
      const all = read.values.get(column);
      if (all === undefined || s.values.has(column)) continue;
      const picked = new Float64Array(s.positions.length);
      s.positions.forEach((p, i) => (picked[i] = p < all.length ? all[p]! : Number.NaN));
      s.values.set(column, picked);
    }
    this.#check();
  };

  /** Settles {@link rows} with `err` unless it already holds the rows (the statistics ended without them). */
  fail(err: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#reject(err);
  }

  #check(): void {
    if (this.#settled) return;
    const cols = [...this.#columns.values()];
    const sides = [this.#sides.reference, this.#sides.current];
    if (!sides.every((s) => cols.every((c) => s.values.has(c)))) return;
    this.#settled = true;
    const rowsOf = (s: SubsetSide): number[][] =>
      Array.from(s.positions, (_, i) => cols.map((c) => s.values.get(c)![i]!));
    this.#resolve({ reference: rowsOf(this.#sides.reference), current: rowsOf(this.#sides.current) });
  }
}

/** Options of {@link fileMultivariate}. */
export interface FileMultivariateOptions {
  reference: { file: InputFile; columns: readonly FileColumn[] };
  current: { file: InputFile; columns: readonly FileColumn[] };
  /** Numeric columns of the report (the numeric set), in the order of `numericRows`. */
  numeric: readonly string[];
  /** The numeric set's rows of each side (from a {@link NumericSubset}). */
  numericRows: Promise<{ reference: number[][]; current: number[][] }>;
  /** Vector columns ({@link vectorColumns}). */
  vectors: readonly string[];
  /** @default {@link reportMultivariateSettings} of the defaults */
  settings?: MultivariateSettings;
  /**
   * Run the methods in this thread rather than in a worker (for small inputs, where a worker's start-up
   * costs more than the methods). @default false
   */
  inline?: boolean;
}

/** The section's rows of the vector columns of one side: the same positions as {@link sampleRowsAndPositions}. */
async function readVectors(
  store: SqlPort | undefined,
  side: { file: InputFile; columns: readonly FileColumn[] },
  role: string,
  vectors: readonly string[],
  maxRows: number,
): Promise<number[][][]> {
  if (vectors.length === 0) return [];
  if (store === undefined) throw new RangeError('vector columns are read through a store');
  const exprs = vectors.map((c, i) => `CAST(${quoteIdent(c)} AS Array(Nullable(Float64))) AS v${i}`);
  type Row = Record<string, (number | string | null)[]>;
  let rows: Row[];
  try {
    rows = await store.query<Row>(
      `SELECT ${exprs.join(', ')}
       FROM file({path:String}, {format:String}, {structure:String})
       ORDER BY cityHash64(rowNumberInAllBlocks()) LIMIT {n:UInt32}`,
      {
        label: 'multivariate file rows',
        params: { path: side.file.path, format: side.file.format, structure: structureOf(side.columns), n: maxRows },
        settings: { ...FILE_ORDER_SETTINGS, max_threads: 1 },
      },
    );
  } catch (err) {
    throw fileReadError(side.file, role, err);
  }
  const toNum = (x: number | string | null): number => (x === null ? Number.NaN : Number(x));
  return vectors.map((_, i) => rows.map((r) => (r[`v${i}`] ?? []).map(toNum)));
}

/** Rows of the most common length (an embedding column holds one length; stray rows are left out). */
function sameLength(ref: number[][], cur: number[][]): { dim: number; ref: number[][]; cur: number[][] } {
  const counts = new Map<number, number>();
  for (const r of ref) counts.set(r.length, (counts.get(r.length) ?? 0) + 1);
  let dim = 0;
  let best = -1;
  for (const [d, n] of counts) if (n > best && d > 0) [dim, best] = [d, n];
  return { dim, ref: ref.filter((r) => r.length === dim), cur: cur.filter((r) => r.length === dim) };
}

/**
 * The multivariate section of `modelwatch report`: the numeric columns together (reconstruction and
 * domain classifier) and each vector column as an embedding (MMD, mean distance, share of drifted
 * components), on at most `settings.maxRows` rows of each file: the rows at {@link sampleRowsAndPositions}.
 * `store` reads the vector columns; without vector columns it is not used and may be undefined.
 */
export async function fileMultivariate(
  store: SqlPort | undefined,
  o: FileMultivariateOptions,
): Promise<MultivariateSection> {
  const settings = o.settings ?? reportMultivariateSettings();
  const numeric = [...o.numeric];
  const refVectors = await stage('multivariate read reference', () =>
    readVectors(store, o.reference, 'reference', o.vectors, settings.maxRows),
  );
  const curVectors = await stage('multivariate read current', () =>
    readVectors(store, o.current, 'current', o.vectors, settings.maxRows),
  );
  const rows = await stage('multivariate wait for numeric rows', () => o.numericRows);
  const groups: GroupRows[] = [];
  if (numeric.length >= 2) {
    groups.push({ group: '', columns: numeric, reference: rows.reference, current: rows.current });
  }
  const embeddings: { name: string; dim: number }[] = [];
  o.vectors.forEach((name, i) => {
    const v = sameLength(refVectors[i] ?? [], curVectors[i] ?? []);
    if (v.dim < 2) return;
    embeddings.push({ name, dim: v.dim });
    const columns = Array.from({ length: v.dim }, (_, j) => `${name}[${j}]`);
    groups.push({ group: name, columns, reference: v.ref, current: v.cur });
  });
  const results = await stage('multivariate methods', () =>
    computeMultivariate(groups, { settings, inline: o.inline === true }),
  );
  return { numeric_features: numeric.length >= 2 ? numeric : [], embeddings, max_rows: settings.maxRows, results };
}

function fmt(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return '—';
  return Math.abs(x) >= 1e-3 || x === 0 ? String(Number(x.toPrecision(4))) : x.toExponential(3);
}

/** What a method's statistic is, for the HTML table. */
const statisticName: Record<string, string> = {
  reconstruction: 'reconstruction error',
  classifier: 'ROC AUC',
  mmd: 'MMD²',
  mean_distance: 'mean distance',
  component_share: 'drifted components share',
};

/** The HTML section of the report page: one row per method and group, with the classifier's top features. */
export function renderMultivariateHtml(section: MultivariateSection): string {
  if (section.results.length === 0) return '';
  const rows = section.results
    .map((r) => {
      const limit =
        r.lower !== null && r.upper !== null && r.method === 'reconstruction'
          ? `band ${fmt(r.lower)} … ${fmt(r.upper)}`
          : r.method === 'mmd'
            ? `p ${fmt(r.p_value)} < ${fmt(r.threshold)}`
            : `> ${fmt(r.threshold)}`;
      const importance = (r.details.importance ?? []) as { feature: string; importance: number }[];
      const top = importance
        .slice(0, 3)
        .map((f) => `${escapeHtml(f.feature)} (${fmt(f.importance)})`)
        .join(', ');
      return `<tr class="${r.drift ? 'drifted' : 'stable'}"><td>${escapeHtml(r.feature_group === '' ? 'numeric features' : r.feature_group)}</td>
<td>${escapeHtml(r.method)}</td><td>${escapeHtml(statisticName[r.method] ?? 'statistic')}</td><td class="n">${fmt(r.statistic)}</td>
<td>${escapeHtml(limit)}</td><td><span class="badge ${r.drift ? 'yes' : 'no'}">${r.drift ? 'drifted' : 'stable'}</span></td>
<td class="n">${r.n_reference} / ${r.n_current}</td><td>${top}</td></tr>`;
    })
    .join('\n');
  const emb =
    section.embeddings.length > 0
      ? `<p class="muted">Embeddings: ${section.embeddings.map((e) => `${escapeHtml(e.name)} (${e.dim}-d)`).join(', ')}</p>`
      : '';
  return `<section id="multivariate"><h2>Multivariate and embedding drift</h2>
<p class="muted">Shifts in how features move together, and in vector columns; at most ${section.max_rows} rows per file.</p>${emb}
<table id="multivariate-results"><thead><tr><th>group</th><th>method</th><th>statistic</th><th>value</th><th>alert when</th><th>drifted</th><th>rows ref / cur</th><th>top features</th></tr></thead>
<tbody>
${rows}
</tbody></table></section>`;
}
