import type { FeatureHistogram } from './histograms.js';

/** The parts of a drift report (DESIGN §2 shape) the HTML page shows. */
export interface HtmlReportInput {
  reference: { rows: number };
  current: { rows: number };
  features: {
    name: string;
    kind: string;
    method: string;
    score: number | null;
    threshold: number;
    drifted: boolean;
    stats: object;
    quality: object;
  }[];
  dataset: { features: number; drifted_features: number; share: number; drifted: boolean };
}

/** Options of {@link renderHtmlReport}. */
export interface HtmlReportOptions {
  /** Page title. @default 'modelwatch drift report' */
  title?: string;
  /** Label of the reference data (e.g. its file name). @default 'reference' */
  referenceLabel?: string;
  /** Label of the current data. @default 'current' */
  currentLabel?: string;
  /** Time the report was made, shown in the header. @default new Date() at render time */
  generatedAt?: Date;
  /** Rendered HTML of further sections (multivariate drift), placed after the distributions. @default '' */
  extraSections?: string;
}

/** Methods whose score is a p-value (smaller = more drift). */
const pValueMethods = new Set(['ks', 'chi_square']);

/** Escapes text for HTML and SVG element content and attribute values. */
export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** JSON safe to embed in a `<script type="application/json">` element. */
function embedJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** Text of a scalar from the data; objects become JSON. */
function text(x: unknown): string {
  if (typeof x === 'string') return x;
  if (typeof x === 'number' || typeof x === 'boolean' || typeof x === 'bigint') return String(x);
  return JSON.stringify(x) ?? '';
}

function num(x: unknown, digits = 4): string {
  if (typeof x !== 'number') return x === null || x === undefined ? '—' : escapeHtml(text(x));
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a < 1e-3 || a >= 1e6) return x.toExponential(2);
  return Number(x.toPrecision(digits)).toString();
}

/**
 * How strongly a feature drifted relative to its threshold, comparable across methods: score/threshold for
 * distances, log(p)/log(threshold) for p-values. Used to sort the table (most drifted first).
 */
export function driftSeverity(f: { method: string; score: number | null; threshold: number }): number {
  if (f.score === null || !Number.isFinite(f.score)) return -Infinity;
  if (pValueMethods.has(f.method)) {
    const p = Math.max(f.score, 1e-300);
    return f.threshold > 0 && f.threshold < 1 ? Math.log(p) / Math.log(f.threshold) : -p;
  }
  return f.threshold > 0 ? f.score / f.threshold : f.score;
}

function keyStats(stats: object): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(stats as Record<string, unknown>)) {
    if (typeof v === 'number') parts.push(`${escapeHtml(k)} ${num(v)}`);
    else if (typeof v === 'object' && v !== null) {
      const o = v as Record<string, unknown>;
      parts.push(`${escapeHtml(k)} ${num(o.statistic)} (p ${num(o.p_value)})`);
    }
  }
  return parts.join('<br>');
}

function quality(q: object): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(q as Record<string, unknown>)) {
    if (Array.isArray(v)) {
      if (v.length === 0) continue;
      const shown = v
        .slice(0, 5)
        .map((x) => escapeHtml(text(x)))
        .join(', ');
      parts.push(`${escapeHtml(k)}: ${shown}${v.length > 5 ? ` … (+${v.length - 5})` : ''}`);
    } else if (typeof v === 'number') {
      if (v !== 0) parts.push(`${escapeHtml(k)} ${num(v)}`);
    } else if (v !== null && v !== undefined) {
      parts.push(`${escapeHtml(k)} ${escapeHtml(text(v))}`);
    }
  }
  return parts.length > 0 ? parts.join('<br>') : 'ok';
}

/** An inline SVG drawing reference and current shares per bin as overlaid bars. */
export function histogramSvg(h: FeatureHistogram): string {
  const n = Math.max(h.labels.length, 1);
  const W = 640;
  const H = 220;
  const left = 44;
  const bottom = 56;
  const top = 10;
  const plotW = W - left - 10;
  const plotH = H - top - bottom;
  const maxShare = Math.max(1e-9, ...h.reference, ...h.current);
  const bw = plotW / n;
  const y = (v: number): number => top + plotH - (v / maxShare) * plotH;
  const parts: string[] = [];
  parts.push(
    `<svg class="hist" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(`distribution of ${h.name}`)}">`,
  );
  parts.push(`<line x1="${left}" y1="${top + plotH}" x2="${W - 10}" y2="${top + plotH}" class="axis"/>`);
  parts.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" class="axis"/>`);
  for (const frac of [0.5, 1]) {
    const v = maxShare * frac;
    parts.push(`<text x="${left - 4}" y="${y(v) + 4}" class="tick" text-anchor="end">${num(v * 100, 3)}%</text>`);
  }
  h.labels.forEach((label, i) => {
    const r = h.reference[i] ?? 0;
    const c = h.current[i] ?? 0;
    const x = left + i * bw;
    const title = `<title>${escapeHtml(label)}: reference ${num(r * 100, 3)}%, current ${num(c * 100, 3)}%</title>`;
    parts.push(
      `<g>${title}<rect class="ref" x="${(x + bw * 0.08).toFixed(2)}" y="${y(r).toFixed(2)}" width="${(bw * 0.84).toFixed(2)}" height="${(top + plotH - y(r)).toFixed(2)}"/>`,
    );
    parts.push(
      `<rect class="cur" x="${(x + bw * 0.22).toFixed(2)}" y="${y(c).toFixed(2)}" width="${(bw * 0.56).toFixed(2)}" height="${(top + plotH - y(c)).toFixed(2)}"/></g>`,
    );
    const every = Math.ceil(n / 12);
    if (i % every === 0 || n <= 12) {
      const short = label.length > 14 ? label.slice(0, 13) + '…' : label;
      const tx = x + bw / 2;
      const ty = top + plotH + 12;
      parts.push(
        `<text x="${tx.toFixed(2)}" y="${ty}" class="tick" text-anchor="end" transform="rotate(-35 ${tx.toFixed(2)} ${ty})">${escapeHtml(short)}</text>`,
      );
    }
  });
  parts.push('</svg>');
  return parts.join('');
}

const css = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
header,main{max-width:1100px;margin:0 auto;padding:16px 24px}
header{background:#fff;border-bottom:1px solid #dde1e6;max-width:none}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.muted{color:#5c6670}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.card{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:10px 14px;min-width:140px}
.card b{display:block;font-size:20px}.verdict.drift b{color:#b42318}.verdict.ok b{color:#067647}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde1e6}
th,td{padding:6px 8px;border-bottom:1px solid #eceef1;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.drifted td:first-child{border-left:4px solid #d92d20}tr.stable td:first-child{border-left:4px solid #12b76a}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px}
.badge.yes{background:#fee4e2;color:#b42318}.badge.no{background:#dcfae6;color:#067647}
.feature{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:10px 14px;margin:12px 0}
.feature h3{font-size:15px;margin:0 0 6px;word-break:break-all}
svg.hist{max-width:100%;height:auto}svg .axis{stroke:#8a949e;stroke-width:1}
svg .tick{font-size:10px;fill:#5c6670}svg .ref{fill:#2e90fa;fill-opacity:.45}svg .cur{fill:#f79009;fill-opacity:.8}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px;vertical-align:middle}
label.filter{display:block;margin:8px 0}
`;

// Tiny progressive enhancement: hide stable features. The page is complete without it.
const script = `
(function(){var box=document.getElementById('only-drifted');if(!box)return;
box.addEventListener('change',function(){var hide=box.checked;
document.querySelectorAll('[data-drifted="false"]').forEach(function(el){el.style.display=hide?'none':'';});});})();
`;

/**
 * Renders a drift report as ONE self-contained HTML page (inline CSS, JS and SVG; no network needed to
 * view it): a summary, a table sorted by drift severity, and per feature the reference and current
 * distributions overlaid. Every string that comes from the data is escaped.
 */
export function renderHtmlReport(
  report: HtmlReportInput,
  histograms: readonly FeatureHistogram[],
  options: HtmlReportOptions = {},
): string {
  const title = options.title ?? 'modelwatch drift report';
  const refLabel = options.referenceLabel ?? 'reference';
  const curLabel = options.currentLabel ?? 'current';
  const generatedAt = options.generatedAt ?? new Date();
  const histByName = new Map(histograms.map((h) => [h.name, h]));
  const sorted = [...report.features].sort((a, b) => {
    if (a.drifted !== b.drifted) return a.drifted ? -1 : 1;
    return driftSeverity(b) - driftSeverity(a);
  });
  const d = report.dataset;
  const rows = sorted
    .map(
      (f) => `<tr class="${f.drifted ? 'drifted' : 'stable'}" data-drifted="${f.drifted}">
<td><a href="#f-${sorted.indexOf(f)}">${escapeHtml(f.name)}</a></td><td>${escapeHtml(f.kind)}</td><td>${escapeHtml(f.method)}</td>
<td class="n">${num(f.score)}</td><td class="n">${num(f.threshold)}</td>
<td><span class="badge ${f.drifted ? 'yes' : 'no'}">${f.drifted ? 'drifted' : 'stable'}</span></td>
<td>${keyStats(f.stats)}</td><td>${quality(f.quality)}</td></tr>`,
    )
    .join('\n');
  const sections = sorted
    .map((f, i) => {
      const h = histByName.get(f.name);
      const svg = h === undefined ? '<p class="muted">no distribution available</p>' : histogramSvg(h);
      return `<section class="feature" id="f-${i}" data-drifted="${f.drifted}">
<h3>${escapeHtml(f.name)} <span class="badge ${f.drifted ? 'yes' : 'no'}">${f.drifted ? 'drifted' : 'stable'}</span></h3>
<div class="muted">${escapeHtml(f.kind)} · ${escapeHtml(f.method)} ${num(f.score)} (threshold ${num(f.threshold)})</div>
${svg}</section>`;
    })
    .join('\n');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(title)}</title><style>${css}</style></head>
<body><header><h1>${escapeHtml(title)}</h1>
<div class="muted">${escapeHtml(refLabel)} vs ${escapeHtml(curLabel)} · generated ${escapeHtml(generatedAt.toISOString())}</div></header>
<main>
<section id="summary" class="cards">
<div class="card verdict ${d.drifted ? 'drift' : 'ok'}"><span class="muted">dataset</span><b id="verdict">${d.drifted ? 'Drift detected' : 'No dataset drift'}</b></div>
<div class="card"><span class="muted">drifted features</span><b>${d.drifted_features} / ${d.features}</b></div>
<div class="card"><span class="muted">drifted share</span><b>${num(d.share * 100, 3)}%</b></div>
<div class="card"><span class="muted">reference rows</span><b>${report.reference.rows.toLocaleString('en-US')}</b></div>
<div class="card"><span class="muted">current rows</span><b>${report.current.rows.toLocaleString('en-US')}</b></div>
</section>
<h2>Features, most drifted first</h2>
<label class="filter"><input type="checkbox" id="only-drifted"> show drifted features only</label>
<table id="features"><thead><tr><th>feature</th><th>kind</th><th>method</th><th>score</th><th>threshold</th><th>drifted</th><th>statistics</th><th>quality</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<h2>Distributions</h2>
<div class="legend muted"><span style="background:#2e90fa;opacity:.45"></span>${escapeHtml(refLabel)}<span style="background:#f79009"></span>${escapeHtml(curLabel)}</div>
${sections}
${options.extraSections ?? ''}
</main>
<script type="application/json" id="report-data">${embedJson(report)}</script>
<script>${script}</script>
</body></html>
`;
}
