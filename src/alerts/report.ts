import { errorMessage } from '../common/errors.js';
import type { Config } from '../config/schema.js';
import { detectDrift } from '../drift/detect-drift.js';
import { histogramFromDistribution, type FeatureHistogram } from '../drift/report/histograms.js';
import { escapeHtml, renderHtmlReport, type HtmlReportInput } from '../drift/report/html.js';
import { Tables } from '../store/migrations.js';
import type { Store } from '../store/store.js';
import { toChTime } from '../store/store.js';
import type { AlertRecord } from './lifecycle.js';
import { describeCrossing, describeReference, describeSamples, describeWindow, formatNumber } from './render.js';

/** Options of {@link renderAlertReport}. */
export interface AlertReportOptions {
  /** `detect` and `models` sections, to recompute the drifted features' distributions. */
  config: Pick<Config, 'detect' | 'models'>;
  /** Time shown as generated. @default new Date() */
  generatedAt?: Date;
}

function parseObject(text: unknown): object {
  if (typeof text !== 'string') return {};
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null ? v : {};
  } catch {
    return {};
  }
}

/** The stored drift results of the run the alert's evidence names (else the model's newest one before it fired). */
async function storedDrift(store: Store, alert: AlertRecord): Promise<HtmlReportInput | undefined> {
  const runId = alert.evidence?.runs[0]?.runId ?? '';
  const at = alert.firedAt ?? alert.activeAt;
  const rows = await store.query<Record<string, unknown>>(
    `SELECT feature, kind, method, score, threshold, drifted, stats, quality, n_ref, n_cur
     FROM ${Tables.driftResults}
     WHERE model = {model:String} AND segment = ''
       AND run_id = if({run:String} != '' AND {run:String} IN (SELECT run_id FROM ${Tables.driftResults} WHERE model = {model:String}),
                       {run:String},
                       (SELECT argMax(run_id, ts) FROM ${Tables.driftResults} WHERE model = {model:String} AND ts <= {at:DateTime64(3, 'UTC')}))`,
    { params: { model: alert.model, run: runId, at: toChTime(at) }, label: 'alert report: stored drift' },
  );
  const dataset = rows.find((r) => r.kind === 'dataset');
  if (dataset === undefined) return undefined;
  const features = rows
    .filter((r) => r.kind !== 'dataset')
    .map((r) => ({
      name: String(r.feature),
      kind: String(r.kind),
      method: String(r.method),
      score: r.score === null ? null : Number(r.score),
      threshold: Number(r.threshold),
      drifted: r.drifted === true || r.drifted === 1,
      stats: parseObject(r.stats),
      quality: parseObject(r.quality),
    }));
  const drifted = features.filter((f) => f.drifted).length;
  return {
    reference: { rows: Number(dataset.n_ref) },
    current: { rows: Number(dataset.n_cur) },
    features,
    dataset: {
      features: features.length,
      drifted_features: drifted,
      share: dataset.score === null ? 0 : Number(dataset.score),
      drifted: dataset.drifted === true || dataset.drifted === 1,
    },
  };
}

/**
 * One self-contained HTML page of an alert's evidence: what crossed which threshold, the runs that
 * made it fire, and the drift report of its window (reference-vs-current distributions of every
 * feature, recomputed from stored traffic against the evidence's reference when it is still there;
 * else the stored per-feature results without distributions). Rendered by the drift report renderer.
 */
export async function renderAlertReport(store: Store, alert: AlertRecord, o: AlertReportOptions): Promise<string> {
  const ev = alert.evidence;
  let input: HtmlReportInput | undefined;
  let histograms: FeatureHistogram[] = [];
  let note = '';
  if (ev?.window !== undefined && ev.reference !== undefined && alert.model !== '') {
    try {
      const d = await detectDrift(store, {
        model: alert.model,
        from: ev.window.from,
        to: ev.window.to,
        reference: { id: ev.reference.id },
        config: o.config,
        now: Date.parse(ev.window.to),
      });
      input = d;
      histograms = d.features.flatMap((f) =>
        f.distribution ? [histogramFromDistribution(f.name, f.kind, f.distribution)] : [],
      );
    } catch (err) {
      note = `Distributions could not be recomputed (${errorMessage(err)}); stored results shown.`;
    }
  }
  input ??= await storedDrift(store, alert);
  input ??= {
    reference: { rows: 0 },
    current: { rows: 0 },
    features: [],
    dataset: { features: 0, drifted_features: 0, share: 0, drifted: false },
  };
  const title = `modelwatch alert ${alert.rule} on ${alert.model || 'all models'} (${alert.state})`;
  const html = renderHtmlReport(input, histograms, {
    title,
    referenceLabel: ev?.reference ? `reference ${ev.reference.id}` : 'reference',
    currentLabel: ev?.window ? `window ${describeWindow(ev.window) ?? ''}` : 'current window',
    ...(o.generatedAt !== undefined ? { generatedAt: o.generatedAt } : {}),
  });
  const rows: [string, string][] = [
    ['alert', alert.id],
    ['state', alert.state],
    [
      'labels',
      Object.entries(alert.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(', '),
    ],
    ['since', new Date(alert.firedAt ?? alert.activeAt).toISOString()],
  ];
  if (alert.resolvedAt !== null) rows.push(['resolved', new Date(alert.resolvedAt).toISOString()]);
  for (const [k, v] of Object.entries(alert.annotations)) rows.push([k, v]);
  if (ev) {
    rows.push(['value', describeCrossing(ev)]);
    const w = describeWindow(ev.window);
    if (w) rows.push(['window', w]);
    const r = describeReference(ev);
    if (r) rows.push(['reference', r]);
    const s = describeSamples(ev);
    if (s) rows.push(['samples', s]);
    if (ev.method) rows.push(['method', ev.method]);
    if (ev.parameters) rows.push(['parameters', JSON.stringify(ev.parameters)]);
    rows.push(['runs', ev.runs.map((x) => `${x.ts} (${x.runId}): ${formatNumber(x.value)}`).join('; ')]);
  }
  if (note) rows.push(['note', note]);
  const section = `<h2>Alert evidence</h2>
<table id="alert-evidence"><tbody>
${rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('\n')}
</tbody></table>`;
  return html.replace('<main>', `<main>\n${section}`);
}
