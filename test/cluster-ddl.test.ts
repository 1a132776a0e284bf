import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isModelwatchError } from '../src/common/errors.js';
import { loadConfig } from '../src/config/load.js';
import {
  Tables,
  clusterStatements,
  createStore,
  migrate,
  migrations,
  shardingKey,
  type ClickHouseStore,
  type InsertOptions,
  type SqlPort,
  type StatementOptions,
} from '../src/store/index.js';

const CLUSTER = 'modelwatch';

let store: ClickHouseStore;
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mw-cluster-ddl-'));
  store = createStore({ url: `chdb:${dir}` });
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** ClickHouse's own parser: the statement formatted back, or a thrown syntax error. */
async function formatQuery(sql: string): Promise<string> {
  const rows = await store.query<{ f: string }>('SELECT formatQuery({q:String}) AS f', { params: { q: sql } });
  return rows[0]?.f ?? '';
}

/**
 * A port over the real embedded store that parses each DDL statement with ClickHouse instead of running
 * it (there is no cluster to run `ON CLUSTER` against here); reads and inserts go to the store.
 */
function parsingPort(parsed: string[]): SqlPort {
  const port: SqlPort = {
    kind: store.kind,
    query: <T>(sql: string, options?: StatementOptions) => store.query<T>(sql, options),
    insert: (table: string, rows: readonly object[], options?: InsertOptions) => store.insert(table, rows, options),
    command: async (sql: string) => {
      parsed.push(await formatQuery(sql));
    },
    with: () => port,
  };
  return port;
}

describe('clusterStatements', () => {
  it('turns a ReplacingMergeTree table into a replicated local table and a same-named distributed table', () => {
    const single = migrations[0]?.statements[0] ?? '';
    const [local, dist, ...rest] = clusterStatements(single, CLUSTER);
    expect(rest).toEqual([]);
    expect(local).toMatch(
      /^CREATE TABLE IF NOT EXISTS mw_predictions_local ON CLUSTER `modelwatch` \(\s+model LowCardinality/,
    );
    expect(local).toContain(
      "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/mw_predictions_local', '{replica}', inserted_at)",
    );
    expect(local).toContain('ORDER BY (model, ts, event_id, row)');
    expect(local).toContain('SETTINGS replicated_deduplication_window = 10000');
    expect(local).not.toContain('non_replicated');
    expect(dist).toBe(
      "CREATE TABLE IF NOT EXISTS mw_predictions ON CLUSTER `modelwatch` AS mw_predictions_local ENGINE = Distributed('modelwatch', currentDatabase(), 'mw_predictions_local', cityHash64(model, ts, event_id, row))",
    );
  });

  it('keeps TTL and settings, and shards by the sort key only', () => {
    const [local, dist] = clusterStatements(
      `CREATE TABLE IF NOT EXISTS mw_x (ts DateTime64(3, 'UTC'), receiver String, body String CODEC(ZSTD(3)))
       ENGINE = MergeTree ORDER BY (receiver, ts) TTL toDateTime(ts) + INTERVAL 90 DAY SETTINGS index_granularity = 8192`,
      CLUSTER,
    );
    expect(local).toContain(
      "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/mw_x_local', '{replica}')",
    );
    expect(local).toContain('TTL toDateTime(ts) + INTERVAL 90 DAY SETTINGS index_granularity = 8192');
    expect(local).toContain('CODEC(ZSTD(3))');
    expect(dist).toMatch(/'mw_x_local', cityHash64\(receiver, ts\)\)$/);
    expect(shardingKey('tuple()')).toBe('rand()');
    expect(shardingKey('id')).toBe('cityHash64(id)');
  });

  it('points materialized views from local source to local target', () => {
    const mv = migrations[3]?.statements.find((s) => s.includes('mw_model_summary_requests_mv')) ?? '';
    const out = clusterStatements(mv, CLUSTER);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(
      /^CREATE MATERIALIZED VIEW IF NOT EXISTS mw_model_summary_requests_mv ON CLUSTER `modelwatch` TO mw_model_summary_local AS/,
    );
    expect(out[0]).toMatch(/FROM mw_requests_local GROUP BY model$/);
  });

  it('alters both tables for column changes, deletes on local tables, leaves INSERT … SELECT distributed', () => {
    expect(
      clusterStatements("ALTER TABLE mw_metric_series ADD COLUMN IF NOT EXISTS feature String DEFAULT ''", CLUSTER),
    ).toEqual([
      "ALTER TABLE mw_metric_series_local ON CLUSTER `modelwatch` ADD COLUMN IF NOT EXISTS feature String DEFAULT ''",
      "ALTER TABLE mw_metric_series ON CLUSTER `modelwatch` ADD COLUMN IF NOT EXISTS feature String DEFAULT ''",
    ]);
    expect(clusterStatements('ALTER TABLE mw_payloads MODIFY TTL expires_at', CLUSTER)).toEqual([
      'ALTER TABLE mw_payloads_local ON CLUSTER `modelwatch` MODIFY TTL expires_at',
    ]);
    expect(clusterStatements("DELETE FROM mw_model_summary WHERE origin = 'backfill'", CLUSTER)).toEqual([
      "DELETE FROM mw_model_summary_local ON CLUSTER `modelwatch` WHERE origin = 'backfill'",
    ]);
    const insert = 'INSERT INTO mw_model_summary SELECT * FROM mw_requests';
    expect(clusterStatements(insert, CLUSTER)).toEqual([insert]);
  });

  it('refuses statements it has no rule for and cluster names that are not names', () => {
    for (const sql of [
      'DROP TABLE mw_predictions',
      'CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = Memory',
      'TRUNCATE TABLE mw_labels',
    ]) {
      let err: unknown;
      try {
        clusterStatements(sql, CLUSTER);
      } catch (e) {
        err = e;
      }
      expect(isModelwatchError(err) && err.code === 'internal', sql).toBe(true);
    }
    expect(() => clusterStatements(migrations[0]?.statements[0] ?? '', 'x` ; DROP')).toThrow(/not a cluster name/);
  });

  it('is configured by clickhouse.cluster and MODELWATCH_CLICKHOUSE_CLUSTER', () => {
    expect(loadConfig({ env: {} }).clickhouse.cluster).toBeUndefined();
    expect(loadConfig({ env: { MODELWATCH_CLICKHOUSE_CLUSTER: 'mw_2x2' } }).clickhouse.cluster).toBe('mw_2x2');
    expect(() => loadConfig({ env: { MODELWATCH_CLICKHOUSE_CLUSTER: 'a b' } })).toThrow(/clickhouse.cluster/);
  });
});

describe('cluster migrations', () => {
  const parsed: string[] = [];
  let singleTables: { name: string; engine: string }[] = [];

  beforeAll(async () => {
    // The migrate() hook end to end, every generated statement through ClickHouse's parser.
    await store.command(
      `CREATE TABLE IF NOT EXISTS ${Tables.migrations} (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
       ENGINE = ReplacingMergeTree ORDER BY version`,
    );
    const applied = await migrate(parsingPort(parsed), migrations, { cluster: CLUSTER });
    expect(applied).toEqual(migrations.map((m) => m.version).sort((a, b) => a - b));
    // Then the single-node schema for real, to compare names against.
    await store.command(`TRUNCATE TABLE ${Tables.migrations}`);
    await migrate(store);
    singleTables = await store.query<{ name: string; engine: string }>(
      'SELECT name, engine FROM system.tables WHERE database = currentDatabase() ORDER BY name',
    );
  });

  it('parses every generated statement with ClickHouse and keeps ON CLUSTER', () => {
    // Every single-node statement gives at least one cluster statement (tables give two: local + Distributed).
    expect(parsed.length).toBeGreaterThan(migrations.flatMap((m) => m.statements).length);
    for (const f of parsed) {
      if (f.startsWith('INSERT')) continue;
      expect(f, f.slice(0, 120)).toMatch(/ON CLUSTER modelwatch/);
    }
  });

  it('gives every single-node table a distributed table of the same name over a replicated local table', () => {
    const tables = singleTables.filter((t) => t.engine !== 'MaterializedView');
    expect(tables.length).toBeGreaterThanOrEqual(Object.keys(Tables).length);
    for (const { name, engine } of tables) {
      const dist = parsed.find((s) => s.startsWith(`CREATE TABLE IF NOT EXISTS ${name} ON CLUSTER`));
      expect(dist, name).toMatch(
        new RegExp(`ENGINE = Distributed\\('modelwatch', currentDatabase\\(\\), '${name}_local', `),
      );
      const local = parsed.find((s) => s.startsWith(`CREATE TABLE IF NOT EXISTS ${name}_local ON CLUSTER`));
      expect(local, name).toContain(
        `ENGINE = Replicated${engine}('/clickhouse/tables/{shard}/{database}/${name}_local', '{replica}'`,
      );
    }
    // Every name the query layer uses is one of those distributed tables.
    for (const name of Object.values(Tables)) expect(tables.map((t) => t.name)).toContain(name);
  });

  it('creates each materialized view on local tables only', () => {
    const views = singleTables.filter((t) => t.engine === 'MaterializedView').map((t) => t.name);
    expect(views.length).toBeGreaterThan(0);
    for (const v of views) {
      const mv = parsed.find((s) => s.startsWith(`CREATE MATERIALIZED VIEW IF NOT EXISTS ${v} ON CLUSTER`)) ?? '';
      expect(mv, v).toMatch(/ TO \w+_local\s/);
      for (const [, table] of mv.matchAll(/\b(?:FROM|JOIN)\s+(\w+)/g)) expect(table, v).toMatch(/_local$/);
    }
  });
});
