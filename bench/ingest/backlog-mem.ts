// Direction-only: peak RSS / V8 heap of a one-row-call backlog through the in-process bus and the ingest
// pipeline (tsx, from src), for one bus/batch setting per process (chdb: one engine per process).
// Usage: npx tsx bench/ingest/backlog-mem.ts CALLS MAX_BATCH_MESSAGES BUS_MIB
// INGEST_SETTINGS='{"input_format_parallel_parsing":0}' adds ClickHouse settings to ingest's statements.
// Also reports the engine's own tracked memory (system.metrics MemoryTracking), sampled every 500 ms.
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { encodeCapture, InProcessBus, type BusMessage } from '../../src/bus/index.js';
import { isModelwatchError } from '../../src/common/index.js';
import { createStore } from '../../src/store/index.js';
import { IngestPipeline } from '../../src/ingest/pipeline.js';
import { createIngestMetrics } from '../../src/ingest/metrics.js';
import { call } from './calls.js';
import { sampleEngineMemory } from './engine-memory.js';
import { jemallocSample, type JemallocSample } from './jemalloc.js';
import { formatSplit, residentSplit, type ResidentSplit } from './smaps.js';

const [N, BATCH, MIB] = process.argv.slice(2).map(Number) as [number, number, number];
const dir = mkdtempSync(join(tmpdir(), 'mw-mem-'));
// ENGINE_ARGS='["--mark_cache_size=16777216"]': engine (server) arguments, given by a first session at the same path.
const engineArgs = JSON.parse(process.env.ENGINE_ARGS ?? '[]') as string[];
if (engineArgs.length > 0) {
  const { Session } = createRequire(import.meta.url)('chdb') as {
    Session: new (path: string, o: { connectionArgs: string[] }) => unknown;
  };
  new Session(dir, { connectionArgs: engineArgs });
}
// ENGINE_MERGE_TREE='{"merge_max_block_size":2048}': MergeTree settings of the engine's config file (over the defaults).
const mergeTree = JSON.parse(process.env.ENGINE_MERGE_TREE ?? '{}') as Record<string, number>;
// ENGINE_SERVER='{"merges_mutations_memory_usage_soft_limit":33554432}': server settings of the same file.
const server = JSON.parse(process.env.ENGINE_SERVER ?? '{}') as Record<string, number>;
const store = createStore({ url: `chdb:${dir}`, engine: { mergeTree, server } });
await store.migrate();
const bus = new InProcessBus({
  maxBatchMessages: BATCH,
  lingerMessages: Math.min(1000, BATCH),
  lingerMs: 1000,
  maxBufferedBytes: MIB * 1024 * 1024,
});
const settings = JSON.parse(process.env.INGEST_SETTINGS ?? '{}') as Record<string, number | string>;
const p = new IngestPipeline(store.with({ settings }), createIngestMetrics(new Registry()), {
  tokenPrefix: `${Math.random()}:`,
});
const engineMemory = sampleEngineMemory(store);
// Where the engine's tracked memory is, at its peak: merges, running statements, the rest (caches, parts' indexes).
const split = { merges: 0, statements: 0, mergeTracking: 0, total: 0, parts: 0 };
const splitTimer = setInterval(() => {
  store
    .query<{ total: number; merge_tracking: number; merges: number; statements: number; parts: number }>(
      `SELECT (SELECT value FROM system.metrics WHERE metric = 'MemoryTracking') AS total,
              (SELECT sum(value) FROM system.metrics WHERE metric = 'MergesMutationsMemoryTracking') AS merge_tracking,
              (SELECT sum(memory_usage) FROM system.merges) AS merges,
              (SELECT sum(memory_usage) FROM system.processes) AS statements,
              (SELECT count() FROM system.parts WHERE active) AS parts`,
    )
    .then(([r]) => {
      if (r !== undefined && Number(r.total) > split.total)
        Object.assign(split, {
          total: Number(r.total),
          mergeTracking: Number(r.merge_tracking),
          merges: Number(r.merges),
          statements: Number(r.statements),
          parts: Number(r.parts),
        });
    })
    .catch(() => undefined);
}, 500);
// The engine's own allocator (jemalloc inside libchdb.so): its peak resident and dirty bytes, sampled every second.
const je = { resident: 0, dirty: 0, atRssPeak: undefined as JemallocSample | undefined };
let jeAtRss = 0;
const jeTimer = setInterval(() => {
  const rssNow = process.memoryUsage().rss;
  jemallocSample(store)
    .then((j) => {
      if (j === undefined) return;
      je.resident = Math.max(je.resident, j.resident);
      je.dirty = Math.max(je.dirty, j.dirty);
      if (rssNow > jeAtRss) {
        jeAtRss = rssNow;
        je.atRssPeak = j;
      }
    })
    .catch(() => undefined);
}, 1000);
// ENGINE_PURGE_MS=1000: direction-only, `SYSTEM JEMALLOC PURGE` every so often.
const purgeMs = Number(process.env.ENGINE_PURGE_MS ?? 0);
const purgeTimer =
  purgeMs > 0
    ? setInterval(() => void store.command('SYSTEM JEMALLOC PURGE').catch(() => undefined), purgeMs)
    : undefined;
let done = 0;
const c = await bus.consume({
  handler: async (b) => {
    await p.handleBatch(b);
    done += b.messages.length;
  },
});
const tpl = Array.from({ length: 16 }, (_, i) => call('bench-backlog', i, 1, 1.7e12));
const before = process.memoryUsage().rss;
let atPeakRss = 0;
let atPeak: ResidentSplit | undefined;
const atStart = formatSplit(residentSplit());
let rss = 0,
  heap = 0,
  ab = 0;
const s = setInterval(() => {
  const m = process.memoryUsage();
  // Where resident memory is, at the RSS peak (re-read when the peak grew by 4 MB or more).
  if (m.rss > atPeakRss + 4 * 1048576) {
    atPeakRss = m.rss;
    atPeak = residentSplit();
  }
  rss = Math.max(rss, m.rss);
  heap = Math.max(heap, m.heapUsed);
  ab = Math.max(ab, m.arrayBuffers);
}, 50);
const t = performance.now();
for (let k = 0; k < N; k += 1000) {
  const part: BusMessage[] = [];
  for (let i = k; i < k + 1000; i++)
    part.push(encodeCapture({ ...tpl[i % 16]!, eventId: `ev-${i}`, requestId: `req-${i}`, startedAt: 1.7e12 + i }));
  for (;;) {
    try {
      await bus.publish(part);
      break;
    } catch (e) {
      if (!isModelwatchError(e, 'bus_full')) throw e;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}
while (done < N) await new Promise((r) => setTimeout(r, 20));
clearInterval(s);
engineMemory.stop();
clearInterval(splitTimer);
clearInterval(jeTimer);
if (purgeTimer) clearInterval(purgeTimer);
const mb = (x: number) => (x / 1048576).toFixed(0);
console.log(
  `calls ${N} batch ${BATCH} bus ${MIB} MiB: ${((performance.now() - t) / 1000).toFixed(1)} s, rss before ${mb(before)} peak ${mb(rss)} MB, heap peak ${mb(heap)}, buffers peak ${mb(ab)}, engine tracked peak ${mb(engineMemory.peak())} MB, settings ${JSON.stringify(settings)}, engine args ${JSON.stringify(engineArgs)}, merge_tree ${JSON.stringify(mergeTree)}, server ${JSON.stringify(server)}; at the engine's peak: merges ${mb(split.merges)} MB (merge tracking ${mb(split.mergeTracking)}), statements ${mb(split.statements)} MB, active parts ${split.parts}`,
);
console.log(`resident before: ${atStart}`);
const purges = await store.query<{ event: string; value: string }>(
  `SELECT event, value FROM system.events WHERE event IN ('MemoryAllocatorPurge', 'MemoryAllocatorPurgeTimeMicroseconds')`,
);
console.log(`engine allocator purges: ${purges.map((r) => `${r.event} ${r.value}`).join(', ') || 'none'}`);
const jeAt = je.atRssPeak;
console.log(
  `engine jemalloc: resident peak ${mb(je.resident)} MB, dirty peak ${mb(je.dirty)} MB; at the highest sampled RSS (${mb(jeAtRss)} MB): ` +
    (jeAt
      ? `allocated ${mb(jeAt.allocated)}, active ${mb(jeAt.active)}, resident ${mb(jeAt.resident)}, dirty ${mb(jeAt.dirty)}, retained ${mb(jeAt.retained)} MB`
      : '-') +
    `; purge every ${purgeMs} ms`,
);
if (atPeak) console.log(`resident at the peak (${mb(atPeakRss)} MB): ${formatSplit(atPeak)}`);
await c.stop();
await store.close();
rmSync(dir, { recursive: true, force: true });
