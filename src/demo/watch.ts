/**
 * Watches what modelwatch reports about the demo model through its API, and turns changes into lines
 * of the progress display: drift detected and cleared (stored detection results, `GET …/health`, with
 * `GET …/drift` when `/health` is missing), the performance fall and recovery (measured and estimated),
 * and alerts firing and resolving (`GET /api/v1/alerts?model=`).
 */
import type { ApiClient } from './client.js';
import type { Progress } from './progress.js';

type Obj = Record<string, unknown>;

function obj(v: unknown): Obj | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

const fmt = (v: number | null, digits = 2): string => (v === null ? '–' : v.toFixed(digits));

/** The newest detection result as the watcher reads it. */
export interface DriftView {
  /** Time of the stored run (null when computed live). */
  ts: string | null;
  drifted: boolean;
  share: number | null;
  referenceId: string | null;
  features: { name: string; score: number | null; drifted: boolean; output: boolean }[];
}

/** Measured and estimated performance as the watcher reads it. */
export interface PerformanceView {
  measured: number | null;
  estimated: number | null;
  coverage: number | null;
}

/** Reads the drift part of a `/health` (`drift`) or `/drift` (the report itself) answer. */
export function readDrift(d: unknown, ts: string | null): DriftView | null {
  const drift = obj(d);
  const dataset = obj(drift?.dataset);
  if (drift === undefined || dataset === undefined) return null;
  const features = (Array.isArray(drift.features) ? drift.features : []).flatMap((f) => {
    const o = obj(f);
    const name = str(o?.name);
    return o === undefined || name === undefined
      ? []
      : [{ name, score: num(o.score), drifted: o.drifted === true, output: o.output === true }];
  });
  const ref = obj(drift.reference);
  return {
    ts: str(drift.ts) ?? ts,
    drifted: dataset.drifted === true,
    share: num(dataset.share),
    referenceId: str(drift.reference_id) ?? str(ref?.id) ?? null,
    features,
  };
}

/** Reads accuracy (measured, estimated) and label coverage from a `/health` `performance` or `/performance` answer. */
export function readPerformance(p: unknown): PerformanceView | null {
  const perf = obj(p);
  if (perf === undefined) return null;
  return {
    measured: num(obj(perf.measured)?.accuracy),
    estimated: num(obj(perf.estimated)?.accuracy),
    coverage: num(perf.label_coverage),
  };
}

/** One alert as the watcher reads it. */
export interface AlertView {
  key: string;
  name: string;
  state: string;
  severity: string;
  summary: string;
}

/** Reads an alert list: `[...]`, `{alerts: [...]}` or `{items: [...]}`; every field optional. */
export function readAlerts(body: unknown): AlertView[] {
  const list = Array.isArray(body) ? body : (obj(body)?.alerts ?? obj(body)?.items);
  if (!Array.isArray(list)) return [];
  return list.flatMap((a) => {
    const o = obj(a);
    if (o === undefined) return [];
    const labels = obj(o.labels) ?? {};
    const annotations = obj(o.annotations) ?? {};
    const name = str(o.rule) ?? str(o.alertname) ?? str(labels.alertname) ?? str(o.name) ?? 'alert';
    const key = str(o.id) ?? str(o.fingerprint) ?? `${name}:${JSON.stringify(labels)}`;
    return [
      {
        key,
        name,
        state: str(o.state) ?? str(o.status) ?? 'firing',
        severity: str(o.severity) ?? str(labels.severity) ?? '',
        summary: str(annotations.summary) ?? str(o.summary) ?? '',
      },
    ];
  });
}

/** Options of {@link DemoWatcher}. */
export interface DemoWatcherOptions {
  api: ApiClient;
  model: string;
  progress: Progress;
}

/** What the watcher saw, for the final summary. */
export interface WatchSummary {
  /** Epoch ms when dataset drift was first reported after the injection (null if never). */
  driftDetectedAt: number | null;
  /** Epoch ms when dataset drift was reported cleared after having been detected. */
  driftClearedAt: number | null;
  /** Epoch ms when the measured accuracy was first seen down (null if never). */
  performanceDropAt: number | null;
  /** Epoch ms of the first alert seen firing after the injection (null if none). */
  alertFiredAt: number | null;
  /** Epoch ms of the first alert seen resolved after {@link alertFiredAt}. */
  alertResolvedAt: number | null;
  /** False when this build has no alerts API. */
  alertsAvailable: boolean;
}

/** Polls the API and prints what changes. Call {@link DemoWatcher.poll} on a timer. */
export class DemoWatcher {
  /** Newest drift result seen. */
  drift: DriftView | null = null;
  /** Newest performance seen. */
  performance: PerformanceView | null = null;
  /** Alerts currently firing. */
  firing = 0;
  readonly summary: WatchSummary = {
    driftDetectedAt: null,
    driftClearedAt: null,
    performanceDropAt: null,
    alertFiredAt: null,
    alertResolvedAt: null,
    alertsAvailable: true,
  };
  private driftAt: number | null = null;
  private baseline: number[] = [];
  private dropped = false;
  private healthMissing = false;
  private alertStates = new Map<string, string>();
  private lastRunTs: string | null = null;

  constructor(private readonly o: DemoWatcherOptions) {}

  /** Tells the watcher when the drift was injected (null: traffic is normal again). */
  markDrift(atMs: number): void {
    this.driftAt = atMs;
  }

  private get path(): string {
    return `/api/v1/models/${encodeURIComponent(this.o.model)}`;
  }

  /** One poll of drift, performance and alerts. Never throws. */
  async poll(): Promise<void> {
    await this.pollHealth();
    await this.pollAlerts();
  }

  private async pollHealth(): Promise<void> {
    let drift: DriftView | null = null;
    let perf: PerformanceView | null = null;
    if (!this.healthMissing) {
      const a = await this.o.api.get(`${this.path}/health`);
      if (a.status !== 200) {
        // 404 before the first call is ingested; a route missing altogether answers 404 for a known model too.
        if (a.status === 404 && (await this.modelKnown())) this.healthMissing = true;
        return;
      }
      const h = obj(a.body);
      drift = readDrift(h?.drift, null);
      perf = readPerformance(h?.performance);
    } else {
      const d = await this.o.api.get(
        `${this.path}/drift?from=${encodeURIComponent(new Date(Date.now() - 30_000).toISOString())}`,
      );
      if (d.status === 200) drift = readDrift(d.body, new Date().toISOString());
      const p = await this.o.api.get(`${this.path}/performance`);
      if (p.status === 200) perf = readPerformance(p.body);
    }
    if (perf !== null) this.onPerformance(perf);
    if (drift !== null && drift.ts !== this.lastRunTs) {
      this.lastRunTs = drift.ts;
      this.onDrift(drift);
    }
  }

  private async modelKnown(): Promise<boolean> {
    const a = await this.o.api.get('/api/v1/models');
    const models = obj(a.body)?.models;
    return Array.isArray(models) && models.some((m) => obj(m)?.name === this.o.model);
  }

  private onDrift(d: DriftView): void {
    const before = this.drift;
    this.drift = d;
    const inputs = d.features.filter((f) => !f.output);
    const list = inputs
      .slice()
      .sort((a, b) => (b.score ?? 0) - (a.score ?? 0))
      .map((f) => `${f.name} ${fmt(f.score)}${f.drifted ? ' ✗' : ''}`)
      .join(', ');
    if (d.drifted && before?.drifted !== true) {
      if (this.driftAt !== null && this.summary.driftDetectedAt === null) this.summary.driftDetectedAt = Date.now();
      const after =
        this.driftAt !== null ? ` ${Math.round((Date.now() - this.driftAt) / 1000)} s after the injection` : '';
      this.o.progress.line(
        `DRIFT DETECTED${after}: ${inputs.filter((f) => f.drifted).length} of ${inputs.length} features drifted (share ${fmt(d.share)}) — ${list}`,
      );
    } else if (!d.drifted && before?.drifted === true) {
      if (this.summary.driftDetectedAt !== null && this.summary.driftClearedAt === null)
        this.summary.driftClearedAt = Date.now();
      this.o.progress.line(
        `drift cleared: the latest window matches the reference again (share ${fmt(d.share)}) — ${list}`,
      );
    }
  }

  private onPerformance(p: PerformanceView): void {
    const prev = this.performance;
    this.performance = p;
    if (p.measured === null) return;
    if (this.driftAt === null && !this.dropped) {
      this.baseline.push(p.measured);
      if (this.baseline.length > 20) this.baseline.shift();
      return;
    }
    const base = this.baseline.length > 0 ? this.baseline.reduce((s, v) => s + v, 0) / this.baseline.length : null;
    if (base === null) return;
    if (!this.dropped && p.measured < base - 0.15) {
      this.dropped = true;
      this.summary.performanceDropAt ??= Date.now();
      this.o.progress.line(
        `PERFORMANCE DROP: measured accuracy ${fmt(base)} → ${fmt(p.measured)} over labelled rows; ` +
          `the label-free estimate says ${fmt(p.estimated)} (it cannot see a flipped label relation; labels can)`,
      );
    } else if (this.dropped && p.measured >= base - 0.08 && prev?.measured !== p.measured) {
      this.dropped = false;
      this.o.progress.line(
        `performance recovered: measured accuracy ${fmt(p.measured)} (estimated ${fmt(p.estimated)})`,
      );
    }
  }

  private async pollAlerts(): Promise<void> {
    if (!this.summary.alertsAvailable) return;
    const a = await this.o.api.get(`/api/v1/alerts?model=${encodeURIComponent(this.o.model)}`);
    if (a.status === 404) {
      this.summary.alertsAvailable = false;
      this.o.progress.line('alerts: not available in this build');
      return;
    }
    if (a.status !== 200) return;
    const alerts = readAlerts(a.body);
    let firing = 0;
    for (const al of alerts) {
      if (al.state === 'firing') firing++;
      const before = this.alertStates.get(al.key);
      if (before === al.state) continue;
      this.alertStates.set(al.key, al.state);
      if (al.state === 'firing') {
        // The summary times the alerts of the injected drift: one that fired before it (e.g. on the data-quality
        // phase) would read as "fired N s after the injection" with N negative.
        if (this.driftAt !== null) this.summary.alertFiredAt ??= Date.now();
        this.o.progress.line(
          `ALERT FIRING: ${al.name}${al.severity ? ` (${al.severity})` : ''}${al.summary ? ` — ${al.summary}` : ''}`,
        );
      } else if (al.state === 'resolved' && before !== undefined) {
        if (this.summary.alertFiredAt !== null) this.summary.alertResolvedAt ??= Date.now();
        this.o.progress.line(`alert resolved: ${al.name}`);
      } else if (al.state === 'pending') {
        this.o.progress.line(`alert pending: ${al.name} (fires if the next detection run agrees)`);
      }
    }
    this.firing = firing;
  }

  /** The status line's monitoring part. */
  statusText(): string {
    const d = this.drift;
    const drift =
      d === null
        ? 'drift: no verdict yet'
        : d.drifted
          ? `drift: YES (share ${fmt(d.share)})`
          : `drift: none (share ${fmt(d.share)})`;
    const p = this.performance;
    const perf = p === null ? 'accuracy: –' : `accuracy ${fmt(p.measured)} measured / ${fmt(p.estimated)} estimated`;
    const alerts = this.summary.alertsAvailable ? ` · alerts firing: ${this.firing}` : '';
    return `${drift} · ${perf}${alerts}`;
  }
}
