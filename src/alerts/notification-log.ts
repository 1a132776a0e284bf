import type { AlertStatus } from './notification.js';

/** Final outcome of one notification to one receiver. */
export const NotificationOutcomes = ['sent', 'failed'] as const;
/** One of {@link NotificationOutcomes}. */
export type NotificationOutcome = (typeof NotificationOutcomes)[number];

/**
 * One row of the notification log: written when the receiver acknowledged (`sent`) and when delivery
 * gave up (`failed`), never before (at-least-once, like Alertmanager's nflog). Holds the receiver's
 * NAME, never its URL or credentials.
 */
export interface NotificationLogEntry {
  receiver: string;
  groupKey: string;
  /** Attempts made, 1 for a first-try success. */
  attempt: number;
  status: NotificationOutcome;
  /** HTTP status (or SMTP reply code) of the last response, null when none arrived. */
  httpStatus: number | null;
  /** Why the last attempt failed (redacted), null on success. */
  error: string | null;
  /** When the receiver acknowledged; null for `failed`. */
  acknowledgedAt: Date | null;
  /** Status of the group that was notified. */
  groupStatus: AlertStatus;
  /** Hash of the alert set and statuses ({@link alertSetHash}), for dedup within the repeat interval. */
  alertsHash: string;
  /** Firing and resolved alert counts of the notification. */
  firing: number;
  resolved: number;
  /** Fingerprints of the firing and resolved alerts notified (what the dispatcher dedups on after a restart). @default [] */
  firingFingerprints?: string[];
  resolvedFingerprints?: string[];
}

/** The port the delivery layer writes to; the ClickHouse adapter inserts into `mw_notifications`. */
export interface NotificationLog {
  record(entry: NotificationLogEntry): Promise<void>;
}

/** ClickHouse table of the notification log. */
export const MW_NOTIFICATIONS_TABLE = 'mw_notifications';

/**
 * DDL of {@link MW_NOTIFICATIONS_TABLE}, idempotent. Ordered by (receiver, group_key, ts) so "last
 * notification of this group to this receiver" is a short range read; TTL keeps 90 days.
 */
export const MW_NOTIFICATIONS_DDL = `CREATE TABLE IF NOT EXISTS ${MW_NOTIFICATIONS_TABLE} (
  ts DateTime64(3, 'UTC') DEFAULT now64(3),
  receiver LowCardinality(String),
  group_key String,
  attempt UInt16,
  status LowCardinality(String),
  http_status Nullable(UInt16),
  error Nullable(String),
  acknowledged_at Nullable(DateTime64(3, 'UTC')),
  group_status LowCardinality(String),
  alerts_hash String,
  firing UInt32,
  resolved UInt32,
  firing_fingerprints Array(String) DEFAULT [],
  resolved_fingerprints Array(String) DEFAULT []
) ENGINE = MergeTree
ORDER BY (receiver, group_key, ts)
TTL toDateTime(ts) + INTERVAL 90 DAY`;

/** The row of `entry` for a JSONEachRow insert into {@link MW_NOTIFICATIONS_TABLE}. */
export function notificationLogRow(entry: NotificationLogEntry, now = new Date()): Record<string, unknown> {
  return {
    ts: now.getTime(),
    receiver: entry.receiver,
    group_key: entry.groupKey,
    attempt: entry.attempt,
    status: entry.status,
    http_status: entry.httpStatus,
    error: entry.error,
    acknowledged_at: entry.acknowledgedAt === null ? null : entry.acknowledgedAt.getTime(),
    group_status: entry.groupStatus,
    alerts_hash: entry.alertsHash,
    firing: entry.firing,
    resolved: entry.resolved,
    firing_fingerprints: entry.firingFingerprints ?? [],
    resolved_fingerprints: entry.resolvedFingerprints ?? [],
  };
}
