/**
 * Server configuration of the embedded engine (chdb): what cannot be a per-statement setting. The engine reads
 * it once, when the first connection to a data directory starts it, from an XML file given as
 * `--config-file`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Options of the embedded engine's server configuration. */
export interface EmbeddedEngineConfig {
  /**
   * MergeTree settings applied to every table of the embedded engine (the `<merge_tree>` section).
   * The defaults bound what a background merge of the wide ingest tables holds in memory: a merge keeps a
   * compression buffer of `max_compress_block_size` per column stream, and the `Map` columns of
   * `mw_predictions` have several streams each.
   */
  mergeTree?: Readonly<Record<string, number>>;
  /**
   * Server settings (top-level elements of the config file), e.g. `merges_mutations_memory_usage_soft_limit`.
   * The defaults keep at most 16 idle threads in the engine's global thread pool (ClickHouse keeps up to 1,000;
   * a backlog leaves 120–160 of them), and slow the engine's own idle polling (its memory worker, and the
   * tables' background tasks looking for merges when nothing was inserted).
   */
  server?: Readonly<Record<string, number>>;
}

/** Defaults of {@link EmbeddedEngineConfig} (the one place they are set). */
export const DefaultEmbeddedEngineConfig: Required<EmbeddedEngineConfig> = {
  mergeTree: {
    // 256 KiB instead of 1 MiB per column stream being written (parts written by inserts and merges).
    max_compress_block_size: 262_144,
  },
  server: {
    // Idle threads of the global pool kept for later statements (ClickHouse: 1,000). A one-row-call backlog
    // grew the pool to 120–160 threads that then sat idle; 16 kept the same CPU per row.
    max_thread_pool_free_size: 16,
    // The engine's own polling, which costs CPU whether or not anything is stored (docs/ingest.md, "The
    // embedded engine's own timers"). The memory worker reads the process's memory statistics every 50–100 ms
    // (ClickHouse's 0 = automatic) to correct its memory tracker and purge its allocator; once a second is
    // enough for an engine whose memory limit is the host's.
    memory_worker_period_ms: 1_000,
    // Each table's background task looks for merges and cleanups after `0.1 s × 1.1^n` (n = its idle rounds,
    // halved whenever it found work) plus up to 1 s: with the cleanup due every second, about one look per
    // table per second, ~15 tables. An insert, and the end of a merge, wake the task at once, so this only
    // paces the looks when nothing happened.
    background_processing_pool_thread_sleep_seconds_if_nothing_to_do: 2,
  },
};

/** Name of the config file written into the data directory. */
export const ENGINE_CONFIG_FILE = 'modelwatch-engine.xml';

const NAME = /^[a-z_][a-z0-9_]*$/;

/** The XML of {@link EmbeddedEngineConfig} (names are checked: they become element names). */
export function engineConfigXml(config: EmbeddedEngineConfig = {}): string {
  const elements = (what: string, settings: Readonly<Record<string, number>>, indent: string): string[] =>
    Object.entries(settings).map(([k, v]) => {
      if (!NAME.test(k)) throw new RangeError(`engine ${what} setting name ${JSON.stringify(k)} is not valid`);
      if (!Number.isFinite(v)) throw new RangeError(`engine ${what} setting ${k} must be a finite number`);
      return `${indent}<${k}>${v}</${k}>`;
    });
  const mergeTree = elements('merge_tree', { ...DefaultEmbeddedEngineConfig.mergeTree, ...config.mergeTree }, '    ');
  const server = elements('server', { ...DefaultEmbeddedEngineConfig.server, ...config.server }, '  ');
  return ['<clickhouse>', ...server, '  <merge_tree>', ...mergeTree, '  </merge_tree>', '</clickhouse>', ''].join('\n');
}

/**
 * Writes the engine's config file into its data directory and returns the engine arguments that load it.
 * The file is rewritten at every start, so a changed default takes effect on the next start.
 */
export function writeEngineConfig(dataDir: string, config: EmbeddedEngineConfig = {}): string[] {
  const file = join(dataDir, ENGINE_CONFIG_FILE);
  writeFileSync(file, engineConfigXml(config));
  return [`--config-file=${file}`];
}
