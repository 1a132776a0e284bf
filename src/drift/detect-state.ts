import { Tables } from '../store/migrations.js';
import type { Store } from '../store/store.js';
import { SeriesNames } from './detect-series.js';
import { SeriesMonitor, type ChangeAlarm, type SeriesMonitorOptions } from './streaming/monitor.js';

/** A model's drift verdicts of its latest run: the dataset verdict and each feature's. */
export interface Verdicts {
  dataset: boolean;
  features: Map<string, boolean>;
}

/** Options of {@link DetectorState.rebuild}. */
export interface RebuildOptions {
  /** The detect interval: only series stored with this interval are replayed. */
  intervalMs: number;
  /** Detectors of the rebuilt monitors. */
  monitor?: SeriesMonitorOptions;
  /** Newest values replayed per series. @default 10 000 */
  maxValues?: number;
}

const key = (model: string, series: string, feature: string): string => JSON.stringify([model, series, feature]);

/**
 * What the detect loop carries from run to run, per model: a {@link SeriesMonitor} per fed series, the end of
 * the last interval fed (so no interval is fed twice), and the latest drift verdicts (to log changes). It is
 * rebuilt from the stored results at start ({@link DetectorState.rebuild}), so a restart neither re-warms the
 * detectors nor re-announces a verdict that did not change.
 */
export class DetectorState {
  private readonly monitors = new Map<string, SeriesMonitor>();
  private readonly lastEnds = new Map<string, number>();
  private readonly verdicts = new Map<string, Verdicts>();

  constructor(private readonly options: SeriesMonitorOptions = {}) {}

  /** Feeds one value of `model`'s `series` (and `feature`, for per-feature series); returns the alarms. */
  feed(model: string, series: string, value: number, feature = ''): ChangeAlarm[] {
    const k = key(model, series, feature);
    let m = this.monitors.get(k);
    if (!m) {
      m = new SeriesMonitor(this.options);
      this.monitors.set(k, m);
    }
    return m.update(value);
  }

  /** Values fed so far to one series (0 when it has none). */
  fed(model: string, series: string, feature = ''): number {
    return this.monitors.get(key(model, series, feature))?.n ?? 0;
  }

  /** Number of series watched. */
  get size(): number {
    return this.monitors.size;
  }

  /** End (epoch ms) of the last interval whose series were fed for `model`; null before the first. */
  lastIntervalEnd(model: string): number | null {
    return this.lastEnds.get(model) ?? null;
  }

  /** Records that `model`'s interval ending at `endMs` was fed. */
  markInterval(model: string, endMs: number): void {
    this.lastEnds.set(model, Math.max(endMs, this.lastEnds.get(model) ?? -Infinity));
  }

  /** The latest drift verdicts of `model`; null before its first verdict. */
  verdict(model: string): Verdicts | null {
    return this.verdicts.get(model) ?? null;
  }

  /** Replaces the latest drift verdicts of `model`. */
  setVerdict(model: string, v: Verdicts): void {
    this.verdicts.set(model, v);
  }

  /**
   * A state rebuilt from the store: each fed series (stored with `intervalMs` and a window no longer than it)
   * is replayed, oldest first, through a fresh monitor (the newest `maxValues` values per series); the last
   * fed interval per model comes from its `traffic.requests` series; verdicts from each model's newest
   * unsegmented drift run. Monitors see exactly the values they saw before, so their state (warm-up, detector
   * statistics) is the one they had, as long as the series is shorter than `maxValues`.
   */
  static async rebuild(store: Store, options: RebuildOptions): Promise<DetectorState> {
    const state = new DetectorState(options.monitor ?? {});
    const maxValues = options.maxValues ?? 10_000;
    const q = <T>(sql: string, params: Record<string, unknown>): Promise<T[]> =>
      store.query<T>(sql, { label: 'detector state rebuild', params });
    if (maxValues > 0) {
      // One value per (series, feature, interval end): a repeated run of the same interval is not replayed twice.
      const values = await q<{ model: string; series: string; feature: string; value: number }>(
        `SELECT model, series, feature, value FROM (
           SELECT model, series, feature, window_to, value FROM ${Tables.metricSeries}
           WHERE interval_ms = {interval:UInt64}
             AND toUnixTimestamp64Milli(window_to) - toUnixTimestamp64Milli(window_from) <= {interval:UInt64}
           ORDER BY model, series, feature, window_to DESC, ts
           LIMIT 1 BY model, series, feature, window_to
         )
         ORDER BY model, series, feature, window_to DESC
         LIMIT {max:UInt64} BY model, series, feature`,
        { interval: options.intervalMs, max: maxValues },
      );
      // Newest first per series: replay backwards.
      for (let i = values.length - 1; i >= 0; i--) {
        const v = values[i];
        if (v) state.feed(v.model, v.series, Number(v.value), v.feature);
      }
    }
    const ends = await q<{ model: string; end_ms: string | number }>(
      `SELECT model, toUnixTimestamp64Milli(max(window_to)) AS end_ms FROM ${Tables.metricSeries}
       WHERE interval_ms = {interval:UInt64} AND series = {series:String} GROUP BY model`,
      { interval: options.intervalMs, series: SeriesNames.requests },
    );
    for (const e of ends) state.markInterval(e.model, Number(e.end_ms));
    const latest = await q<{ model: string; feature: string; kind: string; drifted: boolean | number }>(
      `SELECT model, feature, kind, drifted FROM ${Tables.driftResults}
       WHERE segment = '' AND (model, run_id) IN (
         SELECT model, argMax(run_id, ts) FROM ${Tables.driftResults} WHERE segment = '' GROUP BY model
       )`,
      {},
    );
    const byModel = new Map<string, Verdicts>();
    for (const r of latest) {
      let v = byModel.get(r.model);
      if (!v) byModel.set(r.model, (v = { dataset: false, features: new Map() }));
      if (r.kind === 'dataset') v.dataset = Boolean(r.drifted);
      else v.features.set(r.feature, Boolean(r.drifted));
    }
    for (const [model, v] of byModel) state.setVerdict(model, v);
    return state;
  }
}
