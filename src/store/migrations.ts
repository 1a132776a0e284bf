import { clusterStatements } from './cluster.js';
import { ALERT_TABLES_DDL } from '../alerts/tables.js';
import type { SqlPort } from './port.js';

/** One schema change. Statements must be idempotent (`IF NOT EXISTS`) so a crash mid-way is safe to re-run. */
export interface Migration {
  version: number;
  name: string;
  statements: string[];
}

/** Table names, in one place. */
export const Tables = {
  migrations: 'mw_schema_migrations',
  predictions: 'mw_predictions',
  requests: 'mw_requests',
  labels: 'mw_labels',
  quarantine: 'mw_quarantine',
  references: 'mw_references',
  referenceRows: 'mw_reference_rows',
  driftResults: 'mw_drift_results',
  performanceResults: 'mw_performance_results',
  metricSeries: 'mw_metric_series',
  changePoints: 'mw_change_points',
  detectRuns: 'mw_detect_runs',
  referenceActive: 'mw_reference_active',
  /** Models that answered at least one call (2xx), with their 2xx request count (migration 9). */
  answeredModels: 'mw_answered_models',
  /** Each reference's numeric features with their finite values sorted (migration 10). */
  referenceSorted: 'mw_reference_sorted',
  /** One row per detect run, multivariate method and feature group (migration 11). */
  multivariateResults: 'mw_multivariate_results',
} as const;

/** Tables of the shadow runner (migration v8). */
export const ShadowTables = {
  payloads: 'mw_payloads',
  runs: 'mw_shadow_runs',
  outputs: 'mw_shadow_outputs',
} as const;

// non_replicated_deduplication_window makes `insert_deduplication_token` effective on plain MergeTree
// (ClickHouse docs: "Deduplication for non-replicated tables"); ingest derives the token from the
// Kafka offset range, so a re-delivered batch is dropped by the server.
const DEDUP = 'non_replicated_deduplication_window = 10000';

/** All migrations in order. Append only; never edit an applied one. */
export const migrations: Migration[] = [
  {
    version: 1,
    name: 'core tables',
    statements: [
      // One row per (request, batch row). ReplacingMergeTree on the full identity is a second safety
      // net behind ingest's event_id dedupe: duplicates carry the same ts, so they share a sort key.
      `CREATE TABLE IF NOT EXISTS ${Tables.predictions} (
        model LowCardinality(String),
        version LowCardinality(String),
        ts DateTime64(3, 'UTC'),
        event_id String,
        request_id String,
        row UInt32,
        features_num Map(String, Float64),
        features_cat Map(String, String),
        outputs_num Map(String, Float64),
        outputs_cat Map(String, String),
        inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
      ) ENGINE = ReplacingMergeTree(inserted_at)
      ORDER BY (model, ts, event_id, row)
      SETTINGS ${DEDUP}`,
      `CREATE TABLE IF NOT EXISTS ${Tables.requests} (
        model LowCardinality(String),
        version LowCardinality(String),
        ts DateTime64(3, 'UTC'),
        event_id String,
        request_id String,
        source LowCardinality(String),
        route String,
        status UInt16,
        latency_ms Float64,
        request_bytes UInt64,
        response_bytes UInt64,
        request_truncated Bool,
        response_truncated Bool,
        rows UInt32,
        error String,
        inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
      ) ENGINE = ReplacingMergeTree(inserted_at)
      ORDER BY (model, ts, event_id)
      SETTINGS ${DEDUP}`,
      // Labels may arrive before or after predictions; the join happens at query time, newest label wins.
      `CREATE TABLE IF NOT EXISTS ${Tables.labels} (
        request_id String,
        row UInt32,
        label String,
        received_at DateTime64(3, 'UTC') DEFAULT now64(3)
      ) ENGINE = ReplacingMergeTree(received_at)
      ORDER BY (request_id, row)`,
      `CREATE TABLE IF NOT EXISTS ${Tables.quarantine} (
        received_at DateTime64(3, 'UTC') DEFAULT now64(3),
        event_id String,
        request_id String,
        model String,
        source LowCardinality(String),
        origin String,
        code LowCardinality(String),
        field String,
        reason String,
        payload String
      ) ENGINE = MergeTree
      ORDER BY received_at
      SETTINGS ${DEDUP}`,
    ],
  },
  {
    version: 2,
    name: 'drift reference profiles',
    statements: [
      // One row per stored reference: where it came from and the per-feature profile (JSON: edges, bin
      // counts, deciles, category counts, mean/std, min/max), computed once at creation.
      `CREATE TABLE IF NOT EXISTS ${Tables.references} (
        id String,
        model String,
        source LowCardinality(String),
        window_from Nullable(DateTime64(3, 'UTC')),
        window_to Nullable(DateTime64(3, 'UTC')),
        file String,
        created_at DateTime64(3, 'UTC') DEFAULT now64(3),
        rows UInt64,
        profile String
      ) ENGINE = ReplacingMergeTree(created_at)
      ORDER BY (model, id)`,
      // The reference sample itself, so KS and Wasserstein stay exact against it; same maps as mw_predictions.
      `CREATE TABLE IF NOT EXISTS ${Tables.referenceRows} (
        reference_id String,
        row UInt64,
        features_num Map(String, Float64),
        features_cat Map(String, String),
        outputs_num Map(String, Float64),
        outputs_cat Map(String, String)
      ) ENGINE = MergeTree
      ORDER BY (reference_id, row)`,
    ],
  },
  {
    version: 3,
    name: 'detection results',
    statements: [
      // One row per feature per detection run (feature = '' and kind = 'dataset' for the dataset verdict), with
      // the full context: window, reference, method and its parameters, sample sizes, statistic and p-value.
      `CREATE TABLE IF NOT EXISTS ${Tables.driftResults} (
        run_id String,
        model LowCardinality(String),
        ts DateTime64(3, 'UTC'),
        window_from DateTime64(3, 'UTC'),
        window_to DateTime64(3, 'UTC'),
        reference_id String,
        segment String,
        feature String,
        kind LowCardinality(String),
        output Bool,
        method LowCardinality(String),
        parameters String,
        n_ref UInt64,
        n_cur UInt64,
        statistic Nullable(Float64),
        p_value Nullable(Float64),
        score Nullable(Float64),
        threshold Float64,
        drifted Bool,
        stats String,
        quality String
      ) ENGINE = MergeTree
      ORDER BY (model, ts, feature)`,
      // Long format (one row per metric) so Grafana can plot any metric without JSON parsing.
      `CREATE TABLE IF NOT EXISTS ${Tables.performanceResults} (
        run_id String,
        model LowCardinality(String),
        ts DateTime64(3, 'UTC'),
        window_from DateTime64(3, 'UTC'),
        window_to DateTime64(3, 'UTC'),
        task LowCardinality(String),
        source LowCardinality(String),
        metric LowCardinality(String),
        value Nullable(Float64),
        rows UInt64,
        labelled_rows UInt64,
        details String
      ) ENGINE = MergeTree
      ORDER BY (model, ts, metric)`,
      // Per-run values of the metric series the streaming detectors watch.
      `CREATE TABLE IF NOT EXISTS ${Tables.metricSeries} (
        run_id String,
        model LowCardinality(String),
        ts DateTime64(3, 'UTC'),
        series String,
        value Float64
      ) ENGINE = MergeTree
      ORDER BY (model, series, ts)`,
      `CREATE TABLE IF NOT EXISTS ${Tables.changePoints} (
        run_id String,
        model LowCardinality(String),
        ts DateTime64(3, 'UTC'),
        series String,
        detector LowCardinality(String),
        params String,
        value Float64,
        series_index UInt64
      ) ENGINE = MergeTree
      ORDER BY (model, ts, series)`,
    ],
  },
  {
    version: 4,
    name: 'model summary',
    statements: [
      // Per-model totals kept up to date by the two materialized views below, so listing models reads a few
      // rows per model instead of scanning both traffic tables. Partial aggregates: read with min/max/sum and
      // groupUniqArrayMerge. `origin` separates the one-off backfill ('backfill') from view-fed rows ('live').
      // Known limit: a re-sent insert that the source table drops by its dedup token still reaches the views
      // (ClickHouse 26), so it is counted twice here; ingest's event-id lookup normally stops it before that.
      // Deduplicating the summary table itself is not an option: identical partial rows from distinct inserts
      // would be dropped, and with them the source insert.
      `CREATE TABLE IF NOT EXISTS mw_model_summary (
        model LowCardinality(String),
        origin LowCardinality(String),
        versions AggregateFunction(groupUniqArray, String),
        first_ts SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
        last_ts SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
        requests SimpleAggregateFunction(sum, UInt64),
        rows SimpleAggregateFunction(sum, UInt64)
      ) ENGINE = AggregatingMergeTree
      ORDER BY (model, origin)`,
      // When the backfill boundary was drawn: written once (a re-run keeps the first value), before the views exist.
      `CREATE TABLE IF NOT EXISTS mw_model_summary_cutoff ENGINE = MergeTree ORDER BY tuple() AS SELECT now64(3, 'UTC') AS cutoff`,
      `CREATE MATERIALIZED VIEW IF NOT EXISTS mw_model_summary_requests_mv TO mw_model_summary AS
       SELECT model, 'live' AS origin, groupUniqArrayState(toString(version)) AS versions,
              min(ts) AS first_ts, max(ts) AS last_ts, count() AS requests, toUInt64(0) AS rows
       FROM ${Tables.requests} GROUP BY model`,
      `CREATE MATERIALIZED VIEW IF NOT EXISTS mw_model_summary_predictions_mv TO mw_model_summary AS
       SELECT model, 'live' AS origin, groupUniqArrayState(toString(version)) AS versions,
              min(ts) AS first_ts, max(ts) AS last_ts, toUInt64(0) AS requests, count() AS rows
       FROM ${Tables.predictions} GROUP BY model`,
      // Backfill what was stored before the views existed: rows inserted before the cutoff (the views see every
      // insert after they were created, a moment later). Deleting an earlier backfill first makes a re-run after a
      // crash count once. Rows a concurrent writer inserts between the cutoff and the views are left out.
      `DELETE FROM mw_model_summary WHERE origin = 'backfill'`,
      `INSERT INTO mw_model_summary
       WITH (SELECT min(cutoff) FROM mw_model_summary_cutoff) AS cutoff
       SELECT model, 'backfill' AS origin, groupUniqArrayState(v) AS versions, min(f) AS first_ts, max(l) AS last_ts,
              sum(r) AS requests, sum(p) AS rows
       FROM (
         SELECT model, toString(version) AS v, ts AS f, ts AS l, toUInt64(1) AS r, toUInt64(0) AS p
         FROM ${Tables.requests} WHERE inserted_at < cutoff
         UNION ALL
         SELECT model, toString(version) AS v, ts AS f, ts AS l, toUInt64(0) AS r, toUInt64(1) AS p
         FROM ${Tables.predictions} WHERE inserted_at < cutoff
       )
       GROUP BY model`,
    ],
  },
  {
    version: 5,
    name: 'detect runs and typed series',
    statements: [
      // One row per model per detect run: its window and interval, the reference compared against, and how it
      // ended (ok | no_data | no_reference | failed | timed_out) with the error text, duration and window rows.
      `CREATE TABLE IF NOT EXISTS ${Tables.detectRuns} (
        run_id String,
        model LowCardinality(String),
        ts DateTime64(3, 'UTC'),
        window_from DateTime64(3, 'UTC'),
        window_to DateTime64(3, 'UTC'),
        interval_ms UInt64,
        reference_id String,
        status LowCardinality(String),
        error String,
        duration_ms Float64,
        rows UInt64
      ) ENGINE = MergeTree
      ORDER BY (model, ts)`,
      // Typed series: per-feature series carry the feature in its own column; every value records the window it
      // was measured over and the detect interval it belongs to.
      `ALTER TABLE ${Tables.metricSeries} ADD COLUMN IF NOT EXISTS feature String DEFAULT ''`,
      `ALTER TABLE ${Tables.metricSeries} ADD COLUMN IF NOT EXISTS window_from DateTime64(3, 'UTC') DEFAULT ts`,
      `ALTER TABLE ${Tables.metricSeries} ADD COLUMN IF NOT EXISTS window_to DateTime64(3, 'UTC') DEFAULT ts`,
      `ALTER TABLE ${Tables.metricSeries} ADD COLUMN IF NOT EXISTS interval_ms UInt64 DEFAULT 0`,
      // Change points of a per-feature series name the feature too.
      `ALTER TABLE ${Tables.changePoints} ADD COLUMN IF NOT EXISTS feature String DEFAULT ''`,
    ],
  },
  {
    version: 6,
    name: 'reference lifecycle',
    statements: [
      // kind: 'default' (frozen from a model's first successful traffic), 'pinned' (chosen by a user: API, CLI,
      // config) or 'legacy' (stored before v6; the newest one stays the model's reference until one is pinned).
      `ALTER TABLE ${Tables.references} ADD COLUMN IF NOT EXISTS kind LowCardinality(String) DEFAULT 'legacy'`,
      // Time of the reference's first and last row (traffic references): its real span, for the volume rate.
      `ALTER TABLE ${Tables.references} ADD COLUMN IF NOT EXISTS first_row_at Nullable(DateTime64(3, 'UTC'))`,
      `ALTER TABLE ${Tables.references} ADD COLUMN IF NOT EXISTS last_row_at Nullable(DateTime64(3, 'UTC'))`,
      // Per feature, the method and threshold the automatic choice picked at creation (JSON array).
      `ALTER TABLE ${Tables.references} ADD COLUMN IF NOT EXISTS methods String DEFAULT ''`,
      // Digest of the `models.<m>.reference` config entry a reference was made from ('' otherwise).
      `ALTER TABLE ${Tables.references} ADD COLUMN IF NOT EXISTS config_key String DEFAULT ''`,
      // The reference a user made active per model: the newest row per model wins.
      `CREATE TABLE IF NOT EXISTS ${Tables.referenceActive} (
        model String,
        reference_id String,
        activated_at DateTime64(3, 'UTC') DEFAULT now64(3)
      ) ENGINE = ReplacingMergeTree(activated_at)
      ORDER BY model`,
    ],
  },
  {
    version: 7,
    name: 'alerts',
    // Alert states, silences, the notification log, Grafana annotation ids, the evaluator lease, baselines.
    statements: [...ALERT_TABLES_DDL],
  },
  {
    version: 8,
    name: 'shadow runner: payloads, runs, per-row candidate outputs',
    statements: [
      // The captured request body of each call, as received (content type, encoding, binary header length),
      // for faithful replay. `storage` says how `body` holds the bytes: 'text' (valid UTF-8, verbatim) or
      // 'base64'. `expires_at` = ts + retention.payloadDays at ingest: a per-row TTL, and replay treats a
      // row past it as expired even before the merge that deletes it.
      `CREATE TABLE IF NOT EXISTS ${ShadowTables.payloads} (
        model LowCardinality(String),
        version LowCardinality(String),
        ts DateTime64(3, 'UTC'),
        event_id String,
        request_id String,
        source LowCardinality(String),
        content_type LowCardinality(String),
        content_encoding LowCardinality(String),
        header_length Int64,
        size UInt64,
        truncated Bool,
        storage LowCardinality(String),
        body String CODEC(ZSTD(3)),
        expires_at DateTime('UTC'),
        inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
      ) ENGINE = ReplacingMergeTree(inserted_at)
      ORDER BY (model, ts, event_id)
      TTL expires_at
      SETTINGS ${DEDUP}`,
      // One row per state of a replay run (running → done|failed); the newest row wins.
      `CREATE TABLE IF NOT EXISTS ${ShadowTables.runs} (
        run_id String,
        model LowCardinality(String),
        candidate String,
        candidate_sha256 String,
        execution_provider LowCardinality(String),
        status LowCardinality(String),
        progress Float64,
        window_from DateTime64(3, 'UTC'),
        window_to DateTime64(3, 'UTC'),
        created_at DateTime64(3, 'UTC'),
        updated_at DateTime64(3, 'UTC'),
        rows UInt64,
        skipped UInt64,
        agreement Nullable(Float64),
        verdict LowCardinality(String),
        reasons Array(String),
        error String,
        result String
      ) ENGINE = ReplacingMergeTree(updated_at)
      ORDER BY (model, run_id)`,
      // The candidate's answer for every replayed row, next to production's, for drill-down.
      `CREATE TABLE IF NOT EXISTS ${ShadowTables.outputs} (
        run_id String,
        model LowCardinality(String),
        ts DateTime64(3, 'UTC'),
        event_id String,
        request_id String,
        row UInt32,
        input_source LowCardinality(String),
        outputs_num Map(String, Float64),
        outputs_cat Map(String, String),
        production_label String,
        candidate_label String,
        agree Nullable(Bool),
        abs_diff Nullable(Float64)
      ) ENGINE = MergeTree
      ORDER BY (run_id, ts, event_id, row)`,
    ],
  },
  {
    version: 9,
    name: 'models that answered',
    statements: [
      // A model exists once it answered a call (2xx) or has prediction rows: traffic to a name the server does
      // not know (404) is still stored and counted as requests, but must not create a model. One row per model
      // (after merges) with its 2xx request count, fed by a view; the model list and existence checks read it
      // next to mw_model_summary. A separate table leaves the v4 summary (and its re-runnable backfill) as is.
      `CREATE TABLE IF NOT EXISTS ${Tables.answeredModels} (
        model LowCardinality(String),
        origin LowCardinality(String),
        first_ts SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
        ok_requests SimpleAggregateFunction(sum, UInt64)
      ) ENGINE = AggregatingMergeTree
      ORDER BY (model, origin)`,
      `CREATE TABLE IF NOT EXISTS mw_answered_models_cutoff ENGINE = MergeTree ORDER BY tuple() AS SELECT now64(3, 'UTC') AS cutoff`,
      `CREATE MATERIALIZED VIEW IF NOT EXISTS mw_answered_models_mv TO ${Tables.answeredModels} AS
       SELECT model, 'live' AS origin, min(ts) AS first_ts, count() AS ok_requests
       FROM ${Tables.requests} WHERE status >= 200 AND status < 300 GROUP BY model`,
      // Backfill as in v4: 2xx requests inserted before the cutoff, once (a re-run replaces it).
      `DELETE FROM ${Tables.answeredModels} WHERE origin = 'backfill'`,
      `INSERT INTO ${Tables.answeredModels} (model, origin, first_ts, ok_requests)
       WITH (SELECT min(cutoff) FROM mw_answered_models_cutoff) AS cutoff
       SELECT model, 'backfill' AS origin, min(ts) AS first_ts, count() AS ok_requests
       FROM ${Tables.requests} WHERE status >= 200 AND status < 300 AND inserted_at < cutoff
       GROUP BY model`,
    ],
  },
  {
    version: 10,
    name: 'sorted references',
    statements: [
      // One row per numeric feature of a reference: its finite values sorted once at creation, with the counts,
      // std and bin edges of its profile, so a detection run reads them as they are and sorts only its window.
      `CREATE TABLE IF NOT EXISTS ${Tables.referenceSorted} (
        reference_id String,
        column String,
        rows UInt64,
        n UInt64,
        missing UInt64,
        non_finite UInt64,
        std Float64,
        edges Array(Float64),
        values Array(Float64)
      ) ENGINE = MergeTree
      ORDER BY (reference_id, column)`,
    ],
  },
  {
    version: 11,
    name: 'multivariate drift results',
    statements: [
      // One row per detect run, method and feature group ('' = the numeric feature set, else an embedding's
      // name): reference, window, sample sizes, statistic, p-value (NaN when the method has none), the alert
      // threshold or band, the verdict, the method's parameters and its details (importances, components).
      `CREATE TABLE IF NOT EXISTS ${Tables.multivariateResults} (
        run_id String,
        model LowCardinality(String),
        ts DateTime64(3, 'UTC'),
        window_from DateTime64(3, 'UTC'),
        window_to DateTime64(3, 'UTC'),
        reference_id String,
        method LowCardinality(String),
        feature_group String,
        n_reference UInt64,
        n_current UInt64,
        statistic Float64,
        p_value Nullable(Float64),
        threshold Nullable(Float64),
        lower Nullable(Float64),
        upper Nullable(Float64),
        drift UInt8,
        params String,
        details String
      ) ENGINE = MergeTree
      ORDER BY (model, ts, feature_group, method)`,
    ],
  },
];

/** Options of {@link migrate}. */
export interface MigrateOptions {
  /** `clickhouse.cluster`: create replicated local tables and distributed tables `ON CLUSTER` (src/store/cluster.ts). */
  cluster?: string | undefined;
}

/**
 * Applies every migration not yet recorded, in order. Safe to call concurrently from several processes
 * against a server: statements are idempotent and the version row is only written after them.
 */
export async function migrate(
  port: SqlPort,
  list: Migration[] = migrations,
  options: MigrateOptions = {},
): Promise<number[]> {
  const store = port.with({ label: 'migrate' });
  const { cluster } = options;
  const run = async (statement: string): Promise<void> => {
    for (const s of cluster === undefined ? [statement] : clusterStatements(statement, cluster)) await store.command(s);
  };
  await run(
    `CREATE TABLE IF NOT EXISTS ${Tables.migrations} (
      version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplacingMergeTree ORDER BY version`,
  );
  const applied = new Set(await appliedVersions(store));
  const done: number[] = [];
  for (const m of [...list].sort((a, b) => a.version - b.version)) {
    if (applied.has(m.version)) continue;
    for (const statement of m.statements) await run(statement);
    await store.insert(Tables.migrations, [{ version: m.version, name: m.name }]);
    done.push(m.version);
  }
  return done;
}

/** Versions recorded as applied. */
export async function appliedVersions(port: SqlPort): Promise<number[]> {
  const rows = await port.query<{ version: number }>(
    `SELECT DISTINCT version FROM ${Tables.migrations} ORDER BY version`,
    {
      label: 'applied migrations',
    },
  );
  return rows.map((r) => Number(r.version));
}
