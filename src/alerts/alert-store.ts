import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import { newId } from '../common/ids.js';
import type { SqlPort } from '../store/port.js';
import { toChTime } from '../store/store.js';
import type { AnnotationStore } from './channels/grafana.js';
import type { Baseline } from './candidates.js';
import type { AlertRecord, AlertState, StoredEvidence } from './lifecycle.js';
import { compileMatchers, type Matcher } from './matchers.js';
import {
  notificationLogRow,
  MW_NOTIFICATIONS_TABLE,
  type NotificationLog,
  type NotificationLogEntry,
} from './notification-log.js';
import { AlertTables } from './tables.js';

/**
 * The alerting engine's ClickHouse adapter: alert records, silences, the evaluator lease, baselines,
 * the notification log and Grafana annotation ids. Every statement goes through the store port.
 */

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
const msOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v));

const ALERT_COLUMNS = `id, fingerprint, rule, model, severity, state, labels, annotations,
  toUnixTimestamp64Milli(active_at) AS active_ms, toUnixTimestamp64Milli(fired_at) AS fired_ms,
  toUnixTimestamp64Milli(resolved_at) AS resolved_ms, value, last_run_id, evidence, flaps,
  toUnixTimestamp64Milli(updated_at) AS updated_ms`;

function parseEvidence(text: unknown): StoredEvidence | null {
  if (typeof text !== 'string' || text === '') return null;
  try {
    return JSON.parse(text) as StoredEvidence;
  } catch {
    return null;
  }
}

function alertFromRow(r: Record<string, unknown>): AlertRecord {
  return {
    id: String(r.id),
    fingerprint: String(r.fingerprint),
    rule: String(r.rule),
    model: String(r.model),
    severity: String(r.severity),
    state: String(r.state) as AlertState,
    labels: (r.labels ?? {}) as Record<string, string>,
    annotations: (r.annotations ?? {}) as Record<string, string>,
    activeAt: num(r.active_ms),
    firedAt: msOrNull(r.fired_ms),
    resolvedAt: msOrNull(r.resolved_ms),
    value: num(r.value),
    lastRunId: String(r.last_run_id),
    evidence: parseEvidence(r.evidence),
    flaps: num(r.flaps),
    updatedAt: num(r.updated_ms),
  };
}

function alertRow(a: AlertRecord): Record<string, unknown> {
  return {
    id: a.id,
    fingerprint: a.fingerprint,
    rule: a.rule,
    model: a.model,
    severity: a.severity,
    state: a.state,
    labels: a.labels,
    annotations: a.annotations,
    active_at: toChTime(a.activeAt),
    fired_at: a.firedAt === null ? null : toChTime(a.firedAt),
    resolved_at: a.resolvedAt === null ? null : toChTime(a.resolvedAt),
    value: a.value,
    last_run_id: a.lastRunId,
    evidence: a.evidence === null ? '' : JSON.stringify(a.evidence),
    flaps: a.flaps,
    updated_at: toChTime(a.updatedAt),
  };
}

/** A silence: alerts matching every matcher are not notified between `startsAt` and `endsAt`. */
export interface Silence {
  id: string;
  matchers: Matcher[];
  startsAt: number;
  endsAt: number;
  comment: string;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
}

/** `active` (now within its interval), `pending` (starts later) or `expired`. */
export function silenceState(s: Silence, now: number): 'active' | 'pending' | 'expired' {
  if (now >= s.endsAt) return 'expired';
  return now < s.startsAt ? 'pending' : 'active';
}

/** Filter of {@link AlertStore.listAlerts}. */
export interface AlertQuery {
  /** `active` = pending or firing. */
  state?: AlertState | 'active' | undefined;
  model?: string | undefined;
  /** Resolved and inactive alerts updated before this (epoch ms) are left out. */
  since?: number | undefined;
  limit?: number | undefined;
}

/** The last acknowledged notification of a group to a receiver. */
export interface NflogEntry {
  receiver: string;
  groupKey: string;
  firing: string[];
  resolved: string[];
  ts: number;
}

/** The alerting engine's persistence. */
export class AlertStore {
  constructor(private readonly store: SqlPort) {}

  /** Persists records (one insert). */
  async saveAlerts(records: readonly AlertRecord[]): Promise<void> {
    if (records.length === 0) return;
    await this.store.insert(AlertTables.alerts, records.map(alertRow), { label: 'alerts: save' });
  }

  /** Pending and firing alerts, and those resolved since `resolvedSince` (latest row per id). */
  async loadState(resolvedSince: number): Promise<AlertRecord[]> {
    const rows = await this.store.query<Record<string, unknown>>(
      `SELECT ${ALERT_COLUMNS} FROM ${AlertTables.alerts} FINAL
       WHERE state IN ('pending', 'firing') OR (state = 'resolved' AND resolved_at >= {since:DateTime64(3, 'UTC')})`,
      { params: { since: toChTime(resolvedSince) }, label: 'alerts: load state' },
    );
    return rows.map(alertFromRow);
  }

  /** Alerts by state and model, newest first. */
  async listAlerts(q: AlertQuery = {}): Promise<AlertRecord[]> {
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: q.limit ?? 500 };
    if (q.state === 'active') where.push(`state IN ('pending', 'firing')`);
    else if (q.state !== undefined) {
      where.push('state = {state:String}');
      params.state = q.state;
    } else where.push(`state != 'inactive'`);
    if (q.model !== undefined) {
      where.push('model = {model:String}');
      params.model = q.model;
    }
    if (q.since !== undefined) {
      where.push(`(state IN ('pending', 'firing') OR updated_at >= {since:DateTime64(3, 'UTC')})`);
      params.since = toChTime(q.since);
    }
    const rows = await this.store.query<Record<string, unknown>>(
      `SELECT ${ALERT_COLUMNS} FROM ${AlertTables.alerts} FINAL WHERE ${where.join(' AND ')}
       ORDER BY state = 'firing' DESC, updated_at DESC LIMIT {limit:UInt32}`,
      { params, label: 'alerts: list' },
    );
    return rows.map(alertFromRow);
  }

  /** One alert by incident id. */
  async getAlert(id: string): Promise<AlertRecord | undefined> {
    const rows = await this.store.query<Record<string, unknown>>(
      `SELECT ${ALERT_COLUMNS} FROM ${AlertTables.alerts} FINAL WHERE id = {id:String} LIMIT 1`,
      { params: { id }, label: 'alerts: get' },
    );
    const r = rows[0];
    return r === undefined ? undefined : alertFromRow(r);
  }

  /** Stores a new silence; returns it. */
  async createSilence(input: {
    matchers: Matcher[];
    startsAt: number;
    endsAt: number;
    comment: string;
    createdBy: string;
    now: number;
  }): Promise<Silence> {
    if (input.matchers.length === 0) {
      throw new ModelwatchError(ErrorCodes.badRequest, 'silence: at least one matcher is required', {
        field: 'matchers',
      });
    }
    try {
      compileMatchers(input.matchers, 'matchers');
    } catch (err) {
      throw new ModelwatchError(ErrorCodes.badRequest, err instanceof Error ? err.message : 'invalid matcher', {
        field: 'matchers',
      });
    }
    if (!(input.endsAt > input.startsAt)) {
      throw new ModelwatchError(ErrorCodes.badRequest, 'silence: endsAt must be after startsAt', { field: 'endsAt' });
    }
    const s: Silence = {
      id: newId(),
      matchers: input.matchers,
      startsAt: input.startsAt,
      endsAt: input.endsAt,
      comment: input.comment,
      createdBy: input.createdBy,
      createdAt: input.now,
      updatedAt: input.now,
    };
    await this.writeSilence(s);
    return s;
  }

  private async writeSilence(s: Silence): Promise<void> {
    await this.store.insert(
      AlertTables.silences,
      [
        {
          id: s.id,
          matchers: JSON.stringify(s.matchers),
          starts_at: toChTime(s.startsAt),
          ends_at: toChTime(s.endsAt),
          comment: s.comment,
          created_by: s.createdBy,
          created_at: toChTime(s.createdAt),
          updated_at: toChTime(s.updatedAt),
        },
      ],
      { label: 'alerts: save silence' },
    );
  }

  /** Silences not expired before `since` (all when omitted), newest first. */
  async listSilences(since?: number): Promise<Silence[]> {
    const rows = await this.store.query<Record<string, unknown>>(
      `SELECT id, matchers, toUnixTimestamp64Milli(starts_at) AS s, toUnixTimestamp64Milli(ends_at) AS e, comment, created_by,
              toUnixTimestamp64Milli(created_at) AS c, toUnixTimestamp64Milli(updated_at) AS u
       FROM ${AlertTables.silences} FINAL
       ${since === undefined ? '' : `WHERE ends_at > {since:DateTime64(3, 'UTC')}`}
       ORDER BY created_at DESC LIMIT 10000`,
      { params: since === undefined ? {} : { since: toChTime(since) }, label: 'alerts: silences' },
    );
    return rows.map((r) => ({
      id: String(r.id),
      matchers: JSON.parse(String(r.matchers)) as Matcher[],
      startsAt: num(r.s),
      endsAt: num(r.e),
      comment: String(r.comment),
      createdBy: String(r.created_by),
      createdAt: num(r.c),
      updatedAt: num(r.u),
    }));
  }

  /** Ends a silence now; false when there is no such silence (or it had already ended). */
  async expireSilence(id: string, now: number): Promise<boolean> {
    const all = await this.store.query<Record<string, unknown>>(
      `SELECT id FROM ${AlertTables.silences} FINAL WHERE id = {id:String} AND ends_at > {now:DateTime64(3, 'UTC')}`,
      { params: { id, now: toChTime(now) }, label: 'alerts: find silence' },
    );
    if (all.length === 0) return false;
    const [s] = (await this.listSilences()).filter((x) => x.id === id);
    if (s === undefined) return false;
    await this.writeSilence({ ...s, endsAt: Math.max(now, s.startsAt), updatedAt: Math.max(now, s.updatedAt + 1) });
    return true;
  }

  /**
   * Takes or renews the lease `name` for `holder` until `now + ttlMs` when it is free, expired or
   * already ours; returns whether `holder` holds it afterwards. ClickHouse has no compare-and-set, so
   * a take-over writes, waits `settleMs` and reads back: of two processes racing for an expired lease,
   * both read the same latest row and only one proceeds.
   */
  async acquireLease(name: string, holder: string, now: number, ttlMs: number, settleMs = 0): Promise<boolean> {
    const current = await this.readLease(name);
    if (current && current.holder !== holder && current.expiresAt > now) return false;
    await this.store.insert(
      AlertTables.lease,
      [
        {
          name,
          holder,
          expires_at: toChTime(now + ttlMs),
          updated_at: toChTime(Math.max(now, (current?.updatedAt ?? 0) + 1)),
        },
      ],
      { label: 'alerts: lease' },
    );
    if (current?.holder === holder) return true;
    if (settleMs > 0) await new Promise((r) => setTimeout(r, settleMs));
    const after = await this.readLease(name);
    return after?.holder === holder;
  }

  /** Gives the lease up (expires it now) when `holder` holds it. */
  async releaseLease(name: string, holder: string, now: number): Promise<void> {
    const current = await this.readLease(name);
    if (current?.holder !== holder) return;
    await this.store.insert(
      AlertTables.lease,
      [{ name, holder, expires_at: toChTime(now), updated_at: toChTime(Math.max(now, current.updatedAt + 1)) }],
      { label: 'alerts: lease release' },
    );
  }

  /** The lease row of `name`. */
  async readLease(name: string): Promise<{ holder: string; expiresAt: number; updatedAt: number } | undefined> {
    const rows = await this.store.query<Record<string, unknown>>(
      `SELECT holder, toUnixTimestamp64Milli(expires_at) AS e, toUnixTimestamp64Milli(updated_at) AS u
       FROM ${AlertTables.lease} FINAL WHERE name = {name:String}`,
      { params: { name }, label: 'alerts: read lease' },
    );
    const r = rows[0];
    return r === undefined ? undefined : { holder: String(r.holder), expiresAt: num(r.e), updatedAt: num(r.u) };
  }

  /** Persisted baselines by (model, source, metric) key parts. */
  async loadBaselines(): Promise<{ model: string; source: string; metric: string; baseline: Baseline }[]> {
    const rows = await this.store.query<Record<string, unknown>>(
      `SELECT model, source, metric, reference_id, values, run_ids FROM ${AlertTables.baselines} FINAL`,
      { label: 'alerts: baselines' },
    );
    return rows.map((r) => ({
      model: String(r.model),
      source: String(r.source),
      metric: String(r.metric),
      baseline: {
        referenceId: String(r.reference_id),
        values: (r.values as unknown[]).map(num),
        runIds: (r.run_ids as unknown[]).map(String),
      },
    }));
  }

  /** Persists baselines. */
  async saveBaselines(
    items: { model: string; source: string; metric: string; baseline: Baseline }[],
    now: number,
  ): Promise<void> {
    if (items.length === 0) return;
    await this.store.insert(
      AlertTables.baselines,
      items.map((i) => ({
        model: i.model,
        source: i.source,
        metric: i.metric,
        reference_id: i.baseline.referenceId,
        values: i.baseline.values,
        run_ids: i.baseline.runIds,
        updated_at: toChTime(now),
      })),
      { label: 'alerts: save baselines' },
    );
  }

  /** The last acknowledged notification per (receiver, group) sent since `since`. */
  async loadNflog(since: number): Promise<NflogEntry[]> {
    const rows = await this.store.query<Record<string, unknown>>(
      `SELECT receiver, group_key, argMax(firing_fingerprints, ts) AS f, argMax(resolved_fingerprints, ts) AS r,
              toUnixTimestamp64Milli(max(ts)) AS t
       FROM ${MW_NOTIFICATIONS_TABLE}
       WHERE status = 'sent' AND ts >= {since:DateTime64(3, 'UTC')}
       GROUP BY receiver, group_key`,
      { params: { since: toChTime(since) }, label: 'alerts: notification log' },
    );
    return rows.map((r) => ({
      receiver: String(r.receiver),
      groupKey: String(r.group_key),
      firing: (r.f as unknown[]).map(String),
      resolved: (r.r as unknown[]).map(String),
      ts: num(r.t),
    }));
  }

  /** The notification log adapter (`mw_notifications`); `clock` stamps the rows. */
  notificationLog(clock: () => number = Date.now): NotificationLog {
    return {
      record: async (entry: NotificationLogEntry) => {
        await this.store.insert(MW_NOTIFICATIONS_TABLE, [notificationLogRow(entry, new Date(clock()))], {
          label: 'alerts: notification log',
        });
      },
    };
  }

  /** Grafana annotation ids in `mw_alert_annotations` (id 0 = deleted). */
  annotationStore(): AnnotationStore {
    const write = (receiver: string, fingerprint: string, id: number): Promise<void> =>
      this.store.insert(
        AlertTables.annotations,
        [{ receiver, fingerprint, annotation_id: id, updated_at: toChTime(Date.now()) }],
        {
          label: 'alerts: annotation id',
        },
      );
    return {
      get: async (receiver, fingerprint) => {
        const rows = await this.store.query<{ id: number }>(
          `SELECT argMax(annotation_id, updated_at) AS id FROM ${AlertTables.annotations}
           WHERE receiver = {receiver:String} AND fingerprint = {fingerprint:String}`,
          { params: { receiver, fingerprint }, label: 'alerts: annotation id' },
        );
        const id = num(rows[0]?.id ?? 0);
        return id > 0 ? id : undefined;
      },
      set: (receiver, fingerprint, id) => write(receiver, fingerprint, id),
      delete: (receiver, fingerprint) => write(receiver, fingerprint, 0),
    };
  }
}

/** An active alert as `/health` lists it. */
export interface ActiveAlertSummary {
  id: string;
  rule: string;
  severity: string;
  state: 'pending' | 'firing';
  labels: Record<string, string>;
  summary: string;
  value: number;
  since: string;
}

/**
 * The pending and firing alerts of `model`, firing first: what `GET /api/v1/models/{name}/health`
 * lists under `alerts`. Answers `[]` when the alert tables do not exist yet.
 */
export async function activeAlerts(store: SqlPort, model: string): Promise<ActiveAlertSummary[]> {
  let list: AlertRecord[];
  try {
    list = await new AlertStore(store).listAlerts({ state: 'active', model, limit: 1000 });
  } catch {
    return [];
  }
  return list.map((a) => ({
    id: a.id,
    rule: a.rule,
    severity: a.severity,
    state: a.state === 'firing' ? 'firing' : 'pending',
    labels: a.labels,
    summary: a.annotations['summary'] ?? a.rule,
    value: a.value,
    since: new Date(a.firedAt ?? a.activeAt).toISOString(),
  }));
}
