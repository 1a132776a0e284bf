// Direction-only: what the process's resident memory is made of once the embedded engine has started and the
// schema is migrated (before any traffic): /proc/self/smaps grouped by mapping, thread count, and the engine's
// pool/cache settings and system log tables.
// Usage: npx tsx bench/ingest/startup-mem.ts   (ENGINE_SERVER / ENGINE_MERGE_TREE as in backlog-mem.ts)
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStore } from '../../src/store/index.js';

/** RSS (kB) per mapping name, from /proc/self/smaps; anonymous mappings grouped by size class. */
export function smapsByMapping(): { name: string; rssKb: number; count: number }[] {
  const text = readFileSync('/proc/self/smaps', 'utf8');
  const by = new Map<string, { rssKb: number; count: number }>();
  let name = '';
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const size = (parseInt(head[2]!, 16) - parseInt(head[1]!, 16)) / 1024;
      const path = head[3]!.trim();
      name =
        path !== ''
          ? path.replace(/^.*\/node_modules\//, '')
          : size === 8192 || size === 8196
            ? '[anon 8 MiB: thread stacks]'
            : size >= 65536 - 132 && size <= 65536
              ? '[anon 64 MiB: glibc arenas]'
              : `[anon other]`;
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) {
      const e = by.get(name) ?? { rssKb: 0, count: 0 };
      e.rssKb += Number(rss[1]);
      e.count += 1;
      by.set(name, e);
    }
  }
  return [...by].map(([n, e]) => ({ name: n, ...e })).sort((a, b) => b.rssKb - a.rssKb);
}

const dir = mkdtempSync(join(tmpdir(), 'mw-start-'));
const mb = (x: number) => (x / 1048576).toFixed(1);
const rss0 = process.memoryUsage().rss;
const mergeTree = JSON.parse(process.env.ENGINE_MERGE_TREE ?? '{}') as Record<string, number>;
const server = JSON.parse(process.env.ENGINE_SERVER ?? '{}') as Record<string, number>;
const store = createStore({ url: `chdb:${dir}`, engine: { mergeTree, server } });
await store.migrate();
await new Promise((r) => setTimeout(r, 2000));
const m = process.memoryUsage();
console.log(
  `rss before engine ${mb(rss0)} MB; after start + migrate ${mb(m.rss)} MB (heap ${mb(m.heapUsed)}, buffers ${mb(m.arrayBuffers)})`,
);
console.log(readFileSync('/proc/self/smaps_rollup', 'utf8').split('\n').slice(1, 12).join('\n'));
for (const e of smapsByMapping().slice(0, 14))
  console.log(`${(e.rssKb / 1024).toFixed(1).padStart(8)} MB  ×${e.count}  ${e.name}`);
console.log(`threads: ${readdirSync('/proc/self/task').length}`);
const names = new Map<string, number>();
for (const t of readdirSync('/proc/self/task')) {
  const n = readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim().replace(/\d+$/, '#');
  names.set(n, (names.get(n) ?? 0) + 1);
}
console.log([...names].map(([n, c]) => `${n}×${c}`).join(', '));
const q = async (sql: string) => store.query<Record<string, unknown>>(sql);
console.log(
  await q(
    `SELECT name, value FROM system.server_settings WHERE name IN ('background_pool_size', 'background_merges_mutations_concurrency_ratio', 'background_schedule_pool_size', 'background_common_pool_size', 'background_move_pool_size', 'background_fetches_pool_size', 'max_thread_pool_size', 'max_thread_pool_free_size', 'mark_cache_size', 'uncompressed_cache_size', 'index_mark_cache_size', 'primary_index_cache_size', 'max_format_parsing_thread_pool_size', 'max_io_thread_pool_size') ORDER BY name`,
  ).catch((e: Error) => e.message),
);
console.log(await q(`SELECT name, total_rows FROM system.tables WHERE database = 'system' AND name LIKE '%_log'`));
console.log(await q(`SELECT metric, value FROM system.metrics WHERE metric LIKE '%Thread%' AND value > 0`));
await store.close();
rmSync(dir, { recursive: true, force: true });
