import { ErrorCodes, ModelwatchError } from '../common/errors.js';

/**
 * ClickHouse cluster mode (`clickhouse.cluster`): the single-node migration statements rewritten for a
 * cluster of shards and replicas.
 *
 * Every table `T` of the single-node schema becomes two tables, created `ON CLUSTER`:
 * - `T_local`: the same columns and sort key on the `Replicated*` variant of its engine, one copy per
 *   replica (ZooKeeper path `/clickhouse/tables/{shard}/{database}/T_local`, replica `{replica}`);
 * - `T`: a `Distributed` table over `T_local`, keeping the single-node name so every query and insert of
 *   modelwatch reaches all shards without a change. Rows are routed by a hash of the table's sort key, so
 *   rows a `ReplacingMergeTree`/`AggregatingMergeTree` collapses land on the same shard and `FINAL`
 *   (applied per shard) still collapses them; a retried insert is split the same way and so meets its
 *   `insert_deduplication_token` on each shard.
 *
 * Materialized views run where the insert lands: on each shard's `_local` source table, writing into the
 * `_local` target of that shard (the insert into the distributed source arrives at every shard as an
 * insert into its local table). Readers of the target go through its distributed table and merge the
 * per-shard partial aggregates, as they already do on one node. `ALTER … COLUMN` changes both tables;
 * `DELETE` runs on the local tables; `INSERT … SELECT` is left as is (it writes and reads distributed).
 */

/** A cluster name as ClickHouse's `remote_servers` spells it. */
export const CLUSTER_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** Suffix of the replicated per-shard table behind each distributed table. */
export const LOCAL_SUFFIX = '_local';

const IDENT = '([A-Za-z_][A-Za-z0-9_]*)';

function unsupported(statement: string, why: string): ModelwatchError {
  const head = statement.replace(/\s+/g, ' ').slice(0, 80);
  return new ModelwatchError(
    ErrorCodes.internal,
    `cluster mode cannot translate migration statement "${head}…": ${why}`,
  );
}

/** Index just past the parenthesis that closes the one at `open` (quotes and backquotes skipped). */
function closingParen(text: string, open: number): number {
  let depth = 0;
  let quote: string | undefined;
  for (let i = open; i < text.length; i++) {
    const c = text[i] as string;
    if (quote !== undefined) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === "'" || c === '`' || c === '"') quote = c;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i + 1;
  }
  return -1;
}

/** The sort key of a table definition's tail (`ORDER BY …`), without the outer parentheses. */
function sortKey(tail: string): string | undefined {
  const m =
    /\bORDER\s+BY\s+([\s\S]*?)(?=\s+(?:PRIMARY\s+KEY|SAMPLE\s+BY|TTL|SETTINGS|AS\s+SELECT|PARTITION\s+BY)\b|\s*$)/i.exec(
      tail,
    );
  if (m === null) return undefined;
  let key = (m[1] as string).trim();
  if (key.startsWith('(') && closingParen(key, 0) === key.length) key = key.slice(1, -1).trim();
  return key;
}

/** `Distributed` sharding expression for a sort key: its hash, or `rand()` for an empty key. */
export function shardingKey(key: string | undefined): string {
  if (key === undefined || key === '' || /^tuple\(\s*\)$/i.test(key)) return 'rand()';
  return `cityHash64(${key})`;
}

function quoteCluster(cluster: string): string {
  if (!CLUSTER_NAME.test(cluster)) {
    throw new ModelwatchError(ErrorCodes.configInvalid, `clickhouse.cluster: "${cluster}" is not a cluster name`, {
      field: 'clickhouse.cluster',
    });
  }
  return `\`${cluster}\``;
}

function createTable(statement: string, cluster: string): string[] {
  const head = new RegExp(`^CREATE\\s+TABLE\\s+IF\\s+NOT\\s+EXISTS\\s+${IDENT}\\s*`, 'i').exec(statement);
  if (head === null) throw unsupported(statement, 'expected CREATE TABLE IF NOT EXISTS <name>');
  const name = head[1] as string;
  let at = head[0].length;
  let columns = '';
  if (statement[at] === '(') {
    const end = closingParen(statement, at);
    if (end < 0) throw unsupported(statement, 'unbalanced column list');
    columns = `${statement.slice(at, end)} `;
    at = end;
  }
  const engine = /^\s*ENGINE\s*=\s*([A-Za-z]*MergeTree)\b/i.exec(statement.slice(at));
  if (engine === null) throw unsupported(statement, 'only *MergeTree engines are replicated');
  at += engine[0].length;
  let args = '';
  if (statement[at] === '(') {
    const end = closingParen(statement, at);
    args = statement.slice(at + 1, end - 1).trim();
    at = end;
  }
  const tail = statement
    .slice(at)
    // Replicated tables deduplicate inserts natively; keep the same window for insert_deduplication_token.
    .replace(/\bnon_replicated_deduplication_window\b/g, 'replicated_deduplication_window');
  const local = `${name}${LOCAL_SUFFIX}`;
  const on = quoteCluster(cluster);
  const replicatedArgs = [
    `'/clickhouse/tables/{shard}/{database}/${local}'`,
    `'{replica}'`,
    ...(args === '' ? [] : [args]),
  ];
  return [
    `CREATE TABLE IF NOT EXISTS ${local} ON CLUSTER ${on} ${columns}ENGINE = Replicated${engine[1] as string}(${replicatedArgs.join(', ')})${tail}`,
    `CREATE TABLE IF NOT EXISTS ${name} ON CLUSTER ${on} AS ${local} ` +
      `ENGINE = Distributed('${cluster}', currentDatabase(), '${local}', ${shardingKey(sortKey(tail))})`,
  ];
}

function createView(statement: string, cluster: string): string[] {
  const m = new RegExp(
    `^CREATE\\s+MATERIALIZED\\s+VIEW\\s+IF\\s+NOT\\s+EXISTS\\s+${IDENT}\\s+TO\\s+${IDENT}\\s+AS\\s+`,
    'i',
  ).exec(statement);
  if (m === null) throw unsupported(statement, 'expected CREATE MATERIALIZED VIEW IF NOT EXISTS <name> TO <table> AS');
  const select = statement
    .slice(m[0].length)
    .replace(new RegExp(`\\b(FROM|JOIN)\\s+${IDENT}`, 'gi'), `$1 $2${LOCAL_SUFFIX}`);
  return [
    `CREATE MATERIALIZED VIEW IF NOT EXISTS ${m[1] as string} ON CLUSTER ${quoteCluster(cluster)} TO ${m[2] as string}${LOCAL_SUFFIX} AS ${select}`,
  ];
}

function alterTable(statement: string, cluster: string): string[] {
  const m = new RegExp(`^ALTER\\s+TABLE\\s+${IDENT}\\s+`, 'i').exec(statement);
  if (m === null) throw unsupported(statement, 'expected ALTER TABLE <name>');
  const name = m[1] as string;
  const action = statement.slice(m[0].length);
  const on = quoteCluster(cluster);
  const local = `ALTER TABLE ${name}${LOCAL_SUFFIX} ON CLUSTER ${on} ${action}`;
  // Column changes must reach the distributed table too, or it would not expose the new column.
  if (/^(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b/i.test(action))
    return [local, `ALTER TABLE ${name} ON CLUSTER ${on} ${action}`];
  return [local];
}

function deleteRows(statement: string, cluster: string): string[] {
  const m = new RegExp(`^DELETE\\s+FROM\\s+${IDENT}\\s+`, 'i').exec(statement);
  if (m === null) throw unsupported(statement, 'expected DELETE FROM <name>');
  return [
    `DELETE FROM ${m[1] as string}${LOCAL_SUFFIX} ON CLUSTER ${quoteCluster(cluster)} ${statement.slice(m[0].length)}`,
  ];
}

/**
 * The statements that apply one single-node migration `statement` on `cluster`, in order. Throws
 * `ModelwatchError` (`internal`) for a statement it has no rule for, so a new kind of migration fails
 * loudly instead of being applied to one node only.
 */
export function clusterStatements(statement: string, cluster: string): string[] {
  const s = statement.trim();
  quoteCluster(cluster);
  if (/^CREATE\s+TABLE\b/i.test(s)) return createTable(s, cluster);
  if (/^CREATE\s+MATERIALIZED\s+VIEW\b/i.test(s)) return createView(s, cluster);
  if (/^ALTER\s+TABLE\b/i.test(s)) return alterTable(s, cluster);
  if (/^DELETE\s+FROM\b/i.test(s)) return deleteRows(s, cluster);
  // Reads and writes the distributed tables, which reach every shard.
  if (/^INSERT\s+INTO\b/i.test(s)) return [s];
  throw unsupported(s, 'no cluster rule for this kind of statement');
}
