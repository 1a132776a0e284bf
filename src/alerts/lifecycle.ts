import { newId } from '../common/ids.js';
import { sourceRead, type Candidate } from './candidates.js';
import type { AlertEvidence } from './notification.js';
import type { Rule } from './rules.js';
import type { Snapshot } from './signals.js';

/** States of an alert, as Prometheus names them (`inactive` is stored only to close a pending one). */
export const AlertStates = ['pending', 'firing', 'resolved', 'inactive'] as const;
/** One of {@link AlertStates}. */
export type AlertState = (typeof AlertStates)[number];

/** What an alert's evidence holds: the detector results of its newest run and the runs that met the rule. */
export interface StoredEvidence extends AlertEvidence {
  /** The runs that made it fire (newest first): run id, time, value. */
  runs: { runId: string; ts: string; value: number }[];
}

/** One incident of one (rule, label set). Persisted in `mw_alerts` (latest row per id wins). */
export interface AlertRecord {
  /** Incident id: kept when a flapping alert re-opens. */
  id: string;
  fingerprint: string;
  rule: string;
  model: string;
  severity: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: AlertState;
  /** Since when the condition holds (epoch ms). */
  activeAt: number;
  /** When it started firing (the incident's `startsAt`); null while pending. */
  firedAt: number | null;
  resolvedAt: number | null;
  /** Newest value. */
  value: number;
  /** Run the newest value came from. */
  lastRunId: string;
  evidence: StoredEvidence | null;
  /** Times this incident re-opened within the flap window. */
  flaps: number;
  updatedAt: number;
}

/** Options of {@link AlertBook}. */
export interface AlertBookOptions {
  /** A resolved alert firing again within this long re-opens the same incident. @default 3600000 */
  flapWindowMs?: number;
  /** Resolved alerts are kept (for the dispatcher and re-opening) at least this long. @default 86400000 */
  keepResolvedMs?: number;
  /** Fills `{{…}}` in annotations. */
  annotate: (rule: Rule, labels: Record<string, string>, value: number, threshold: number) => Record<string, string>;
}

/**
 * The lifecycle of every alert: inactive → pending → firing → resolved, one record per fingerprint.
 * `for` counts consecutive detection runs that meet the rule (from the stored runs themselves, so a
 * restart or an evaluation interval shorter than the detection interval changes nothing), or a
 * duration since the first of them.
 */
export class AlertBook {
  /** Pending and firing alerts by fingerprint. */
  readonly active = new Map<string, AlertRecord>();
  /** The last resolved incident per fingerprint (for re-opening and the dispatcher). */
  readonly resolved = new Map<string, AlertRecord>();
  private readonly flapWindowMs: number;
  private readonly keepResolvedMs: number;

  constructor(private readonly o: AlertBookOptions) {
    this.flapWindowMs = o.flapWindowMs ?? 3_600_000;
    this.keepResolvedMs = Math.max(o.keepResolvedMs ?? 86_400_000, this.flapWindowMs);
  }

  /** Restores persisted records (latest per id), e.g. after a restart or a lease take-over. */
  load(records: readonly AlertRecord[]): void {
    this.active.clear();
    this.resolved.clear();
    for (const r of records) {
      if (r.state === 'pending' || r.state === 'firing') this.active.set(r.fingerprint, { ...r });
      else if (r.state === 'resolved') {
        const prev = this.resolved.get(r.fingerprint);
        if (!prev || (prev.resolvedAt ?? 0) < (r.resolvedAt ?? 0)) this.resolved.set(r.fingerprint, { ...r });
      }
    }
    for (const fp of this.active.keys()) this.resolved.delete(fp);
  }

  /** Every pending, firing and recently resolved alert. */
  all(): AlertRecord[] {
    return [...this.active.values(), ...this.resolved.values()];
  }

  /**
   * Applies one cycle's candidates at time `now`; returns the records that changed (to persist).
   * Alerts of rules whose table could not be read keep their state; alerts whose rule is gone resolve.
   */
  evaluate(candidates: readonly Candidate[], rules: readonly Rule[], snapshot: Snapshot, now: number): AlertRecord[] {
    const changed: AlertRecord[] = [];
    const seen = new Set<string>();
    for (const c of candidates) {
      seen.add(c.fingerprint);
      let streak = 0;
      while (streak < c.points.length && c.points[streak]?.met === true) streak++;
      const newest = c.points[0];
      if (newest === undefined) continue;
      const prev = this.active.get(c.fingerprint);
      if (streak === 0) {
        if (prev) changed.push(this.close(prev, now));
        continue;
      }
      const oldestMet = c.points[streak - 1] as (typeof c.points)[number];
      const activeAt = prev?.activeAt ?? oldestMet.ts;
      const forMet = 'runs' in c.rule.for ? streak >= c.rule.for.runs : now - activeAt >= c.rule.for.ms;
      if (prev) {
        const newRun = prev.lastRunId !== newest.runId || prev.value !== newest.value;
        prev.value = newest.value;
        prev.lastRunId = newest.runId;
        if (prev.state === 'pending' && forMet) {
          changed.push(...this.fire(prev, c, now, streak), prev);
        } else if (newRun) {
          prev.updatedAt = now;
          changed.push(prev);
        }
        continue;
      }
      const threshold = c.rule.threshold === 'detector' ? Number.NaN : c.rule.threshold;
      const rec: AlertRecord = {
        id: newId(),
        fingerprint: c.fingerprint,
        rule: c.rule.name,
        model: c.labels['model'] ?? '',
        severity: c.rule.severity,
        labels: c.labels,
        annotations: this.o.annotate(c.rule, c.labels, newest.value, threshold),
        state: 'pending',
        activeAt,
        firedAt: null,
        resolvedAt: null,
        value: newest.value,
        lastRunId: newest.runId,
        evidence: null,
        flaps: 0,
        updatedAt: now,
      };
      this.active.set(c.fingerprint, rec);
      if (forMet) changed.push(...this.fire(rec, c, now, streak));
      changed.push(rec);
    }
    const ruleByName = new Map(rules.map((r) => [r.name, r]));
    for (const rec of [...this.active.values()]) {
      if (seen.has(rec.fingerprint)) continue;
      const rule = ruleByName.get(rec.rule);
      // The key vanished from the results (or the rule is gone): the condition no longer holds.
      if (rule === undefined || sourceRead(rule, snapshot)) changed.push(this.close(rec, now));
    }
    for (const [fp, rec] of this.resolved) {
      if (now - (rec.resolvedAt ?? now) > this.keepResolvedMs) this.resolved.delete(fp);
    }
    return changed;
  }

  /** Fires `rec`; returns the pending row to close when a flapping incident re-opens under its old id. */
  private fire(rec: AlertRecord, c: Candidate, now: number, streak: number): AlertRecord[] {
    const extra: AlertRecord[] = [];
    const last = this.resolved.get(rec.fingerprint);
    if (last && last.resolvedAt !== null && now - last.resolvedAt <= this.flapWindowMs) {
      // Flapping: the same incident re-opens (same id and start), counted.
      if (rec.id !== last.id) extra.push({ ...rec, state: 'inactive', updatedAt: now });
      rec.id = last.id;
      rec.firedAt = last.firedAt ?? now;
      rec.flaps = last.flaps + 1;
    } else {
      rec.firedAt = now;
    }
    this.resolved.delete(rec.fingerprint);
    rec.state = 'firing';
    rec.resolvedAt = null;
    rec.updatedAt = now;
    const ev = c.evidence();
    const threshold = c.rule.threshold === 'detector' ? ev.threshold : c.rule.threshold;
    rec.annotations = this.o.annotate(c.rule, c.labels, ev.value, threshold);
    rec.evidence = {
      ...ev,
      runs: c.points
        .slice(0, streak)
        .map((p) => ({ runId: p.runId, ts: new Date(p.ts).toISOString(), value: p.value })),
    };
    return extra;
  }

  private close(rec: AlertRecord, now: number): AlertRecord {
    this.active.delete(rec.fingerprint);
    rec.updatedAt = now;
    if (rec.state === 'firing') {
      rec.state = 'resolved';
      rec.resolvedAt = now;
      this.resolved.set(rec.fingerprint, rec);
    } else {
      rec.state = 'inactive';
    }
    return rec;
  }
}
