// The embedded engine's server configuration (the MergeTree settings that bound the memory of the background
// merges of the ingest tables): applied when the store opens a data directory, overridable, and the process
// can still open another data directory once the store is closed.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createStore } from '../src/store/index.js';
import { DefaultEmbeddedEngineConfig, ENGINE_CONFIG_FILE, engineConfigXml } from '../src/store/engine-config.js';

async function mergeTreeSetting(url: string, name: string, engine?: Parameters<typeof createStore>[0]['engine']) {
  const store = createStore({ url, ...(engine !== undefined ? { engine } : {}) });
  try {
    const [row] = await store.query<{ value: string; changed: number }>(
      `SELECT value, changed FROM system.merge_tree_settings WHERE name = {name:String}`,
      { params: { name } },
    );
    return row;
  } finally {
    await store.close();
  }
}

describe('embedded engine config', () => {
  it('applies the default MergeTree settings, then an override on a later start in another directory', async () => {
    const a = mkdtempSync(join(tmpdir(), 'mw-engine-a-'));
    const b = mkdtempSync(join(tmpdir(), 'mw-engine-b-'));
    const c = mkdtempSync(join(tmpdir(), 'mw-engine-c-'));
    try {
      const def = await mergeTreeSetting(`chdb:${a}`, 'max_compress_block_size');
      expect(def).toEqual({ value: String(DefaultEmbeddedEngineConfig.mergeTree.max_compress_block_size), changed: 1 });
      expect(readFileSync(join(a, ENGINE_CONFIG_FILE), 'utf8')).toContain('<merge_tree>');
      expect(readFileSync(join(a, ENGINE_CONFIG_FILE), 'utf8')).toContain(
        `<max_thread_pool_free_size>${DefaultEmbeddedEngineConfig.server.max_thread_pool_free_size}</max_thread_pool_free_size>`,
      );
      // The first store is closed: the process opens another data directory with its own configuration.
      const other = await mergeTreeSetting(`chdb:${b}`, 'max_compress_block_size', {
        mergeTree: { max_compress_block_size: 131_072 },
      });
      expect(other).toEqual({ value: '131072', changed: 1 });
      // A server setting (top level of the file), in a third directory.
      const store = createStore({
        url: `chdb:${c}`,
        engine: { server: { merges_mutations_memory_usage_soft_limit: 33_554_432 } },
      });
      try {
        const rows = await store.query<{ value: string }>(
          `SELECT value FROM system.server_settings WHERE name = 'merges_mutations_memory_usage_soft_limit'`,
        );
        expect(rows).toEqual([{ value: '33554432' }]);
        // The default server setting is applied beside the one given.
        const free = await store.query<{ value: string }>(
          `SELECT value FROM system.server_settings WHERE name = 'max_thread_pool_free_size'`,
        );
        expect(free).toEqual([{ value: String(DefaultEmbeddedEngineConfig.server.max_thread_pool_free_size) }]);
        // The engine's own polling is slowed by default: its memory worker ticks once a second (ClickHouse's 0
        // means every 50–100 ms), and the tables' idle background look-ups back off from 2 s (ClickHouse: 0.1 s;
        // not in system.server_settings, so read from the file the engine started with).
        const period = await store.query<{ value: string }>(
          `SELECT value FROM system.server_settings WHERE name = 'memory_worker_period_ms'`,
        );
        expect(period).toEqual([{ value: '1000' }]);
        expect(readFileSync(join(c, ENGINE_CONFIG_FILE), 'utf8')).toContain(
          '<background_processing_pool_thread_sleep_seconds_if_nothing_to_do>2</background_processing_pool_thread_sleep_seconds_if_nothing_to_do>',
        );
      } finally {
        await store.close();
      }
    } finally {
      rmSync(a, { recursive: true, force: true });
      rmSync(b, { recursive: true, force: true });
      rmSync(c, { recursive: true, force: true });
    }
  });

  it('refuses a setting name that is not an XML element name, and a non-finite value', () => {
    expect(() => engineConfigXml({ mergeTree: { 'a><b': 1 } })).toThrow(/not valid/);
    expect(() => engineConfigXml({ mergeTree: { max_compress_block_size: Number.NaN } })).toThrow(/finite/);
    expect(() => engineConfigXml({ server: { 'x y': 1 } })).toThrow(/server setting name/);
  });
});
