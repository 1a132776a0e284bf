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

/** Options of {@link fileMultivariate}. */
export interface FileMultivariateOptions {
  reference: { file: InputFile; columns: readonly FileColumn[] };
  current: { file: InputFile; columns: readonly FileColumn[] };
  /** Numeric columns of the report (the numeric set). */
  numeric: readonly string[];
  /** Vector columns ({@link vectorColumns}). */
  vectors: readonly string[];
  /** @default {@link reportMultivariateSettings} of the defaults */
  settings?: MultivariateSettings;
}

async function readSide(
  store: SqlPort,
  side: { file: InputFile; columns: readonly FileColumn[] },
  role: string,
  numeric: readonly string[],
  vectors: readonly string[],
  maxRows: number,
): Promise<{ numeric: number[][]; vectors: number[][][] }> {
  const exprs = [
    `[${numeric.map((c) => `CAST(${quoteIdent(c)} AS Nullable(Float64))`).join(', ')}] AS n`,
    ...vectors.map((c, i) => `CAST(${quoteIdent(c)} AS Array(Nullable(Float64))) AS v${i}`),
  ];
  type Row = Record<string, (number | string | null)[] | (number | string | null)[][]>;
  let rows: Row[];
  try {
    // A stable pseudo-random subset of at most maxRows rows (the same on every run over the same file).
    rows = await store.query<Row>(
      `SELECT ${exprs.join(', ')}
       FROM file({path:String}, {format:String}, {structure:String})
       ORDER BY cityHash64(rowNumberInAllBlocks()) LIMIT {n:UInt32}`,
      {
        label: 'multivariate file rows',
        params: { path: side.file.path, format: side.file.format, structure: structureOf(side.columns), n: maxRows },
      },
    );
  } catch (err) {
    throw fileReadError(side.file, role, err);
  }
  const toNum = (x: number | string | null): number => (x === null ? Number.NaN : Number(x));
  return {
    numeric: rows.map((r) => ((r.n ?? []) as (number | string | null)[]).map(toNum)),
    vectors: vectors.map((_, i) => rows.map((r) => ((r[`v${i}`] ?? []) as (number | string | null)[]).map(toNum))),
  };
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
 * components), on at most `settings.maxRows` rows of each file.
 */
export async function fileMultivariate(store: SqlPort, o: FileMultivariateOptions): Promise<MultivariateSection> {
  const settings = o.settings ?? reportMultivariateSettings();
  const numeric = [...o.numeric];
  const ref = await stage('multivariate read reference', () =>
    readSide(store, o.reference, 'reference', numeric, o.vectors, settings.maxRows),
  );
  const cur = await stage('multivariate read current', () =>
    readSide(store, o.current, 'current', numeric, o.vectors, settings.maxRows),
  );
  const groups: GroupRows[] = [];
  if (numeric.length >= 2) {
    groups.push({ group: '', columns: numeric, reference: ref.numeric, current: cur.numeric });
  }
  const embeddings: { name: string; dim: number }[] = [];
  o.vectors.forEach((name, i) => {
    const v = sameLength(ref.vectors[i] ?? [], cur.vectors[i] ?? []);
    if (v.dim < 2) return;
    embeddings.push({ name, dim: v.dim });
    const columns = Array.from({ length: v.dim }, (_, j) => `${name}[${j}]`);
    groups.push({ group: name, columns, reference: v.ref, current: v.cur });
  });
  const results = await stage('multivariate methods', () => computeMultivariate(groups, { settings }));
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
