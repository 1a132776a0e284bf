import { MW_NOTIFICATIONS_DDL } from './notification-log.js';

/** ClickHouse table for the Grafana channel's AnnotationStore (latest row per key wins; a delete writes `annotation_id = 0`). */
export const MW_ALERT_ANNOTATIONS_DDL = `CREATE TABLE IF NOT EXISTS mw_alert_annotations (
  receiver LowCardinality(String),
  fingerprint String,
  annotation_id UInt64,
  updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (receiver, fingerprint)`;

/** ClickHouse tables of the alerting engine (schema v7). */
export const AlertTables = {
  alerts: 'mw_alerts',
  silences: 'mw_silences',
  notifications: 'mw_notifications',
  annotations: 'mw_alert_annotations',
  lease: 'mw_alert_lease',
  baselines: 'mw_alert_baselines',
} as const;

/**
 * Statements of schema v7, idempotent. Alerts, silences, the lease and baselines are
 * ReplacingMergeTree keyed by their id with `updated_at` as version: a state change is an insert and
 * reads take the latest row (`FINAL`), so no UPDATE is ever needed.
 */
export const ALERT_TABLES_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS ${AlertTables.alerts} (
    id String,
    fingerprint String,
    rule LowCardinality(String),
    model LowCardinality(String),
    severity LowCardinality(String),
    state LowCardinality(String),
    labels Map(String, String),
    annotations Map(String, String),
    active_at DateTime64(3, 'UTC'),
    fired_at Nullable(DateTime64(3, 'UTC')),
    resolved_at Nullable(DateTime64(3, 'UTC')),
    value Float64,
    last_run_id String,
    evidence String,
    flaps UInt32,
    updated_at DateTime64(3, 'UTC')
  ) ENGINE = ReplacingMergeTree(updated_at)
  ORDER BY id`,
  `CREATE TABLE IF NOT EXISTS ${AlertTables.silences} (
    id String,
    matchers String,
    starts_at DateTime64(3, 'UTC'),
    ends_at DateTime64(3, 'UTC'),
    comment String,
    created_by String,
    created_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC')
  ) ENGINE = ReplacingMergeTree(updated_at)
  ORDER BY id`,
  MW_NOTIFICATIONS_DDL,
  MW_ALERT_ANNOTATIONS_DDL,
  `CREATE TABLE IF NOT EXISTS ${AlertTables.lease} (
    name String,
    holder String,
    expires_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC')
  ) ENGINE = ReplacingMergeTree(updated_at)
  ORDER BY name`,
  `CREATE TABLE IF NOT EXISTS ${AlertTables.baselines} (
    model LowCardinality(String),
    source LowCardinality(String),
    metric LowCardinality(String),
    reference_id String,
    values Array(Float64),
    run_ids Array(String),
    updated_at DateTime64(3, 'UTC')
  ) ENGINE = ReplacingMergeTree(updated_at)
  ORDER BY (model, source, metric)`,
];
