import type { AlertEvidence, AlertNotification, NotificationGroup } from './notification.js';

// Shared wording of every channel, so Slack, email and the log say the same thing.

/** A number for people: integers as is, others with 4 significant digits. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  return Number(v.toPrecision(4)).toString();
}

/** "dataset_drift_share 0.42 > 0.3" */
export function describeCrossing(e: AlertEvidence): string {
  return `${e.signal} ${formatNumber(e.value)} ${e.comparison} ${formatNumber(e.threshold)}`;
}

/** "2024-05-01T10:00:00Z – 2024-05-01T11:00:00Z" */
export function describeWindow(w: { from: string; to: string } | undefined): string | undefined {
  return w === undefined ? undefined : `${w.from} – ${w.to}`;
}

/** "reference 5000, current 1200" */
export function describeSamples(e: AlertEvidence): string | undefined {
  const s = e.sampleSizes;
  if (s === undefined) return undefined;
  const parts: string[] = [];
  if (s.reference !== undefined) parts.push(`reference n=${s.reference}`);
  if (s.current !== undefined) parts.push(`current n=${s.current}`);
  return parts.length > 0 ? parts.join(', ') : undefined;
}

/** "ref-123 (2024-05-01… – …)" */
export function describeReference(e: AlertEvidence): string | undefined {
  if (e.reference === undefined) return undefined;
  const w = describeWindow(e.reference.window);
  return w === undefined ? e.reference.id : `${e.reference.id} (${w})`;
}

/** "age (ks 0.31, p=0.001)" per drifted feature, the first `max`. */
export function describeFeatures(e: AlertEvidence, max: number): string[] {
  return (e.topFeatures ?? []).slice(0, max).map((f) => {
    const extra = [f.method, formatNumber(f.score)].filter((x) => x !== undefined).join(' ');
    const p = f.pValue === undefined ? '' : `, p=${formatNumber(f.pValue)}`;
    return `${f.feature} (${extra}${p})`;
  });
}

/** The rule name of an alert. */
export function alertName(a: AlertNotification): string {
  return a.labels['alertname'] ?? 'alert';
}

/** Labels other than the well-known ones, as `k=v` pairs. */
export function extraLabels(a: AlertNotification, group: NotificationGroup): string[] {
  const skip = new Set(['alertname', 'model', 'severity']);
  return Object.entries(a.labels)
    .filter(([k, v]) => !skip.has(k) && group.groupLabels[k] !== v)
    .map(([k, v]) => `${k}=${v}`);
}

/** Lines of plain text describing one alert (used by email and the Slack fallback). */
export function alertTextLines(a: AlertNotification, group: NotificationGroup, maxFeatures: number): string[] {
  const lines: string[] = [];
  const sev = a.labels['severity'];
  const labels = extraLabels(a, group);
  lines.push(
    `${a.status === 'firing' ? 'FIRING' : 'RESOLVED'} ${alertName(a)}${sev ? ` [${sev}]` : ''}${labels.length ? ` {${labels.join(', ')}}` : ''}`,
  );
  const summary = a.annotations['summary'];
  if (summary) lines.push(`  ${summary}`);
  const description = a.annotations['description'];
  if (description) lines.push(`  ${description}`);
  const e = a.evidence;
  if (e !== undefined) {
    lines.push(`  value: ${describeCrossing(e)}`);
    const w = describeWindow(e.window);
    if (w) lines.push(`  window: ${w}`);
    const s = describeSamples(e);
    if (s) lines.push(`  samples: ${s}`);
    const r = describeReference(e);
    if (r) lines.push(`  reference: ${r}`);
    const feats = describeFeatures(e, maxFeatures);
    if (feats.length) lines.push(`  top drifted features: ${feats.join('; ')}`);
    if (e.reportURL) lines.push(`  evidence report: ${e.reportURL}`);
  }
  lines.push(`  since: ${a.startsAt}${a.endsAt ? `, ended: ${a.endsAt}` : ''}`);
  if (a.generatorURL) lines.push(`  alert: ${a.generatorURL}`);
  const runbook = a.annotations['runbook_url'];
  if (runbook) lines.push(`  runbook: ${runbook}`);
  return lines;
}

/**
 * Cuts `text` to at most `max` UTF-16 units, appending `…`: never inside a surrogate pair, and never
 * inside a Slack `<url|label>` link (which would render as a broken link).
 */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let cut = Math.max(0, max - 1);
  const code = text.charCodeAt(cut - 1);
  if (code >= 0xd800 && code <= 0xdbff) cut -= 1;
  let head = text.slice(0, cut);
  const open = head.lastIndexOf('<');
  if (open > head.lastIndexOf('>')) head = head.slice(0, open);
  return head + '…';
}
