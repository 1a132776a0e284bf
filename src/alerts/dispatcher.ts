import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { silenceState, type NflogEntry, type Silence } from './alert-store.js';
import type { AlertRecord } from './lifecycle.js';
import { DefaultInhibitRules, inhibitSchema, type InhibitRule, type Route } from './config.js';
import { compileMatchers, formatMatchers, type LabelPredicate, type Matcher } from './matchers.js';
import { buildNotificationGroup, type AlertNotification, type NotificationGroup } from './notification.js';
import type { NotificationLogEntry } from './notification-log.js';

/**
 * Grouping, routing, silences and inhibition, with Alertmanager's semantics and names:
 * - an alert goes to the first route whose matchers match (and on to later ones while `continue`),
 *   else to the default route (every receiver);
 * - within a route, alerts with the same `groupBy` label values form one aggregation group, notified
 *   together: first `groupWaitMs` after the group appeared, then at most every `groupIntervalMs` when
 *   its alert set changed, and again every `repeatIntervalMs` while it is unchanged and firing;
 * - per (receiver, group) the last acknowledged notification (the notification log) decides whether a
 *   flush sends anything, so a restart neither repeats nor loses one; a group whose alerts all
 *   resolved before any firing notification sends nothing;
 * - silenced and inhibited alerts are left out of notifications; when the silence ends they are
 *   notified at the group's next flush.
 */

/** Where notifications go: the delivery layer's `enqueue`. */
export interface NotificationSink {
  enqueue(group: NotificationGroup, receivers?: readonly string[]): string[];
}

/** Options of {@link Dispatcher}. */
export interface DispatcherOptions {
  sink: NotificationSink;
  /** Every receiver name (the default route sends to all). */
  receivers: readonly string[];
  /** @default [] */
  routes?: readonly Route[];
  /** @default ['model'] */
  groupBy?: readonly string[];
  /** @default 30000 */
  groupWaitMs?: number;
  /** @default 300000 */
  groupIntervalMs?: number;
  /** @default 14400000 */
  repeatIntervalMs?: number;
  /** @default DefaultInhibitRules */
  inhibit?: readonly InhibitRule[];
  /** Base URL of the API, for links. @default 'http://127.0.0.1:9400' */
  externalURL?: string;
  logger?: Logger;
}

interface CompiledRoute {
  index: number;
  matches: LabelPredicate;
  matchers: Matcher[];
  receivers: string[];
  continue: boolean;
  groupBy: string[];
  groupWaitMs: number;
  groupIntervalMs: number;
  repeatIntervalMs: number;
}

interface Group {
  key: string;
  route: CompiledRoute;
  labels: Record<string, string>;
  alerts: Map<string, AlertRecord>;
  /** `fingerprint@resolvedAt` of resolved alerts already flushed: not added again. */
  done: Set<string>;
  nextFlushAt: number;
}

interface NflogState {
  firing: Set<string>;
  resolved: Set<string>;
  ts: number;
}

/** What one flush sent. */
export interface FlushedNotification {
  receiver: string;
  group: NotificationGroup;
}

/** Groups alerts, routes them to receivers, applies silences and inhibition, and decides what to send. */
export class Dispatcher {
  private readonly routes: CompiledRoute[];
  private readonly defaultRoute: CompiledRoute;
  private readonly inhibit: { source: LabelPredicate; target: LabelPredicate; equal: string[] }[];
  private readonly groups = new Map<string, Group>();
  /** What was last sent (optimistically, at enqueue) per receiver and group. */
  private readonly nflog = new Map<string, NflogState>();
  /** What receivers acknowledged per receiver and group. */
  private readonly acked = new Map<string, NflogState>();
  private silences: { s: Silence; matches: LabelPredicate }[] = [];
  private readonly externalURL: string;
  /** Alerts muted at the last flush, by fingerprint (for the API and metrics). */
  readonly muted = new Map<string, 'silenced' | 'inhibited'>();

  constructor(private readonly o: DispatcherOptions) {
    const groupBy = [...(o.groupBy ?? ['model'])];
    const timing = {
      groupWaitMs: o.groupWaitMs ?? 30_000,
      groupIntervalMs: o.groupIntervalMs ?? 300_000,
      repeatIntervalMs: o.repeatIntervalMs ?? 14_400_000,
    };
    const known = new Set(o.receivers);
    this.routes = (o.routes ?? []).map((r, index) => {
      for (const name of r.receivers) {
        if (!known.has(name)) {
          throw new ModelwatchError(
            ErrorCodes.configInvalid,
            `alerts.routes[${index}]: no receiver named ${name} (configured: ${[...known].join(', ')})`,
            { field: 'alerts.routes' },
          );
        }
      }
      return {
        index,
        matches: compileMatchers(r.matchers, `alerts.routes[${index}].matchers`),
        matchers: r.matchers,
        receivers: r.receivers,
        continue: r.continue,
        groupBy: r.groupBy ?? groupBy,
        groupWaitMs: r.groupWaitMs ?? timing.groupWaitMs,
        groupIntervalMs: r.groupIntervalMs ?? timing.groupIntervalMs,
        repeatIntervalMs: r.repeatIntervalMs ?? timing.repeatIntervalMs,
      };
    });
    this.defaultRoute = {
      index: -1,
      matches: () => true,
      matchers: [],
      receivers: [...o.receivers],
      continue: false,
      groupBy,
      ...timing,
    };
    this.inhibit = (o.inhibit ?? DefaultInhibitRules.map((r) => inhibitSchema.parse(r))).map((r, i) => ({
      source: compileMatchers(r.source, `alerts.inhibit[${i}].source`),
      target: compileMatchers(r.target, `alerts.inhibit[${i}].target`),
      equal: r.equal,
    }));
    this.externalURL = (o.externalURL ?? 'http://127.0.0.1:9400').replace(/\/+$/, '');
  }

  /** Restores the notification log (after a restart or a lease take-over). */
  loadNflog(entries: readonly NflogEntry[]): void {
    this.nflog.clear();
    this.acked.clear();
    for (const e of entries) {
      const st = { firing: new Set(e.firing), resolved: new Set(e.resolved), ts: e.ts };
      this.nflog.set(nkey(e.receiver, e.groupKey), st);
      this.acked.set(nkey(e.receiver, e.groupKey), st);
    }
  }

  /** Forgets groups (the state is reloaded after a lease is lost and taken again). */
  reset(): void {
    this.groups.clear();
    this.nflog.clear();
    this.acked.clear();
  }

  /** Sets the silences in force (all known; each applies within its own interval). */
  setSilences(silences: readonly Silence[]): void {
    this.silences = silences.flatMap((s) => {
      try {
        return [{ s, matches: compileMatchers(s.matchers, 'silence') }];
      } catch {
        this.o.logger?.warn('alerts: silence with an invalid matcher ignored', { silence: s.id });
        return [];
      }
    });
  }

  /**
   * The delivery layer's outcome of a notification: an acknowledged one becomes the group's log
   * entry; one given up on is forgotten, so the next flush sends the group's state again.
   */
  recordOutcome(entry: NotificationLogEntry, now: number): void {
    const k = nkey(entry.receiver, entry.groupKey);
    if (entry.status === 'sent') {
      this.acked.set(k, {
        firing: new Set(entry.firingFingerprints ?? []),
        resolved: new Set(entry.resolvedFingerprints ?? []),
        ts: entry.acknowledgedAt?.getTime() ?? now,
      });
    } else {
      const acked = this.acked.get(k);
      if (acked) this.nflog.set(k, acked);
      else this.nflog.delete(k);
    }
  }

  /** The routes an alert's labels go to. */
  private routesOf(labels: Readonly<Record<string, string>>): CompiledRoute[] {
    const out: CompiledRoute[] = [];
    for (const r of this.routes) {
      if (!r.matches(labels)) continue;
      out.push(r);
      if (!r.continue) break;
    }
    return out.length > 0 ? out : [this.defaultRoute];
  }

  /**
   * Puts the current alerts into their groups: firing ones (a new group waits `groupWaitMs`), and
   * resolved ones not yet flushed as resolved. Pending and inactive alerts are not notified.
   */
  sync(alerts: readonly AlertRecord[], now: number): void {
    for (const a of alerts) {
      if (a.state !== 'firing' && a.state !== 'resolved') continue;
      for (const route of this.routesOf(a.labels)) {
        const labels: Record<string, string> = {};
        for (const l of route.groupBy) {
          const v = a.labels[l];
          if (v !== undefined) labels[l] = v;
        }
        const key = `${formatMatchers(route.matchers)}:${formatLabels(labels)}`;
        let g = this.groups.get(key);
        if (a.state === 'resolved') {
          if (g?.done.has(`${a.fingerprint}@${a.resolvedAt}`) === true) continue;
          // A resolved alert with no group is only news to a receiver that was told it fired.
          if (g === undefined && !route.receivers.some((r) => this.nflog.get(nkey(r, key))?.firing.has(a.fingerprint)))
            continue;
        }
        if (g === undefined) {
          g = { key, route, labels, alerts: new Map(), done: new Set(), nextFlushAt: now + route.groupWaitMs };
          this.groups.set(key, g);
        }
        g.alerts.set(a.fingerprint, a);
      }
    }
  }

  /** Why `a` is muted now, if it is. `sources[i]` holds the equal-label keys of rule i's firing sources. */
  private mutedBy(
    a: AlertRecord,
    sources: readonly Map<string, string>[] | undefined,
    now: number,
  ): 'silenced' | 'inhibited' | undefined {
    for (const { s, matches } of this.silences)
      if (silenceState(s, now) === 'active' && matches(a.labels)) return 'silenced';
    if (sources === undefined) return undefined;
    for (let i = 0; i < this.inhibit.length; i++) {
      const rule = this.inhibit[i] as (typeof this.inhibit)[number];
      if (!rule.target(a.labels)) continue;
      const src = sources[i]?.get(equalKey(rule.equal, a.labels));
      // An alert does not inhibit itself.
      if (src !== undefined && src !== a.fingerprint) return 'inhibited';
    }
    return undefined;
  }

  /** Flushes every group that is due at `now`; returns what was handed to the delivery layer. */
  flush(now: number, allFiring: readonly AlertRecord[]): FlushedNotification[] {
    const sent: FlushedNotification[] = [];
    // Inhibition sources: firing, not silenced, matching a rule's source matchers; keyed by their equal labels.
    const sources = this.inhibit.map((rule) => {
      const m = new Map<string, string>();
      for (const a of allFiring) {
        if (a.state !== 'firing' || !rule.source(a.labels) || this.mutedBy(a, undefined, now) !== undefined) continue;
        const k = equalKey(rule.equal, a.labels);
        const prev = m.get(k);
        // Two sources with one key: keep a marker no target fingerprint equals.
        m.set(k, prev === undefined ? a.fingerprint : '\u0000several');
      }
      return m;
    });
    this.muted.clear();
    for (const a of allFiring) {
      if (a.state !== 'firing') continue;
      const m = this.mutedBy(a, sources, now);
      if (m !== undefined) this.muted.set(a.fingerprint, m);
    }
    for (const g of [...this.groups.values()]) {
      if (now < g.nextFlushAt) continue;
      const alerts = [...g.alerts.values()];
      const firing = alerts.filter((a) => a.state === 'firing' && !this.muted.has(a.fingerprint));
      const resolved = alerts.filter((a) => a.state === 'resolved');
      const firingSet = new Set(firing.map((a) => a.fingerprint));
      for (const receiver of g.route.receivers) {
        const k = nkey(receiver, g.key);
        const entry = this.nflog.get(k);
        // Resolved alerts are news only to a receiver that was told they fired.
        const told = resolved.filter((a) => entry?.firing.has(a.fingerprint) === true);
        if (!needsUpdate(entry, firingSet, new Set(told.map((a) => a.fingerprint)), now, g.route.repeatIntervalMs))
          continue;
        const group = this.notification(g, [...firing, ...told]);
        const accepted = this.o.sink.enqueue(group, [receiver]);
        if (accepted.length > 0) {
          this.nflog.set(k, { firing: firingSet, resolved: new Set(told.map((a) => a.fingerprint)), ts: now });
          sent.push({ receiver, group });
        }
      }
      for (const a of resolved) {
        g.alerts.delete(a.fingerprint);
        g.done.add(`${a.fingerprint}@${a.resolvedAt}`);
      }
      if (g.alerts.size === 0) this.groups.delete(g.key);
      else g.nextFlushAt = now + g.route.groupIntervalMs;
    }
    return sent;
  }

  /** Groups currently held (for tests and the API). */
  groupKeys(): string[] {
    return [...this.groups.keys()];
  }

  private notification(g: Group, alerts: AlertRecord[]): NotificationGroup {
    return buildNotificationGroup({
      groupKey: g.key,
      groupLabels: g.labels,
      externalURL: this.externalURL,
      alerts: alerts.map((a) => toNotification(a, this.externalURL)),
    });
  }
}

/** The notification form of an alert record, with links to it and its evidence report. */
export function toNotification(a: AlertRecord, externalURL: string): AlertNotification {
  const alertUrl = `${externalURL}/api/v1/alerts/${encodeURIComponent(a.id)}`;
  return {
    status: a.state === 'firing' ? 'firing' : 'resolved',
    fingerprint: a.fingerprint,
    labels: a.labels,
    annotations: a.annotations,
    startsAt: new Date(a.firedAt ?? a.activeAt).toISOString(),
    ...(a.state === 'resolved' && a.resolvedAt !== null ? { endsAt: new Date(a.resolvedAt).toISOString() } : {}),
    generatorURL: alertUrl,
    ...(a.evidence !== null
      ? {
          evidence: (() => {
            const { runs: _runs, ...ev } = a.evidence;
            return { ...ev, reportURL: `${alertUrl}/report` };
          })(),
        }
      : {}),
  };
}

function equalKey(equal: readonly string[], labels: Readonly<Record<string, string>>): string {
  return equal.map((l) => labels[l] ?? '').join('\u0000');
}

function nkey(receiver: string, groupKey: string): string {
  return `${receiver}\u0000${groupKey}`;
}

function formatLabels(labels: Record<string, string>): string {
  return `{${Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(',')}}`;
}

function isSubset(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

/** Alertmanager's `needsUpdate` (notify/notify.go, DedupStage) with `send_resolved: true`. */
function needsUpdate(
  entry: NflogState | undefined,
  firing: ReadonlySet<string>,
  resolved: ReadonlySet<string>,
  now: number,
  repeatMs: number,
): boolean {
  if (entry === undefined) return firing.size > 0;
  if (!isSubset(firing, entry.firing)) return true;
  if (firing.size === 0) return entry.firing.size > 0;
  if (!isSubset(resolved, entry.resolved)) return true;
  return now - entry.ts >= repeatMs;
}
