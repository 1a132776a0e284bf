// Direction-only: CPU per call of ingest (tsx, from src) with an engine/statement setting, counted for the
// whole process (process.cpuUsage: threads that have ended included) and for the JS thread alone.
// Usage: npx tsx bench/ingest/engine-cpu.ts CALLS ROWS_PER_CALL
// ENGINE_SERVER / ENGINE_MERGE_TREE / INGEST_SETTINGS as in backlog-mem.ts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { encodeCapture, InProcessBus } from '../../src/bus/index.js';
import { createStore } from '../../src/store/index.js';
import { IngestPipeline } from '../../src/ingest/pipeline.js';
import { createIngestMetrics } from '../../src/ingest/metrics.js';
import { call } from './calls.js';

const [N, ROWS] = process.argv.slice(2).map(Number) as [number, number];
const mainCpuUs = (): number => {
  const s = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000;
};
const dir = mkdtempSync(join(tmpdir(), 'mw-cpu-'));
const mergeTree = JSON.parse(process.env.ENGINE_MERGE_TREE ?? '{}') as Record<string, number>;
const server = JSON.parse(process.env.ENGINE_SERVER ?? '{}') as Record<string, number>;
const settings = JSON.parse(process.env.INGEST_SETTINGS ?? '{}') as Record<string, number | string>;
const store = createStore({ url: `chdb:${dir}`, engine: { mergeTree, server } });
await store.migrate();
const p = new IngestPipeline(store.with({ settings }), createIngestMetrics(new Registry()), { tokenPrefix: 'x:' });
const bus = new InProcessBus({ maxBatchMessages: 10_000, maxBufferedBytes: 1 << 30 });
const messages = Array.from({ length: N }, (_, i) => encodeCapture(call('cpu', i, ROWS, 1.7e12)));
let done = 0;
const c = await bus.consume({
  handler: async (b) => {
    await p.handleBatch(b);
    done += b.messages.length;
  },
});
const u0 = process.cpuUsage();
const m0 = mainCpuUs();
const t0 = performance.now();
// 1,000 calls at a time, as a producer would hand them over.
for (let k = 0; k < N; k += 1000) await bus.publish(messages.slice(k, k + 1000));
while (done < N) await new Promise((r) => setTimeout(r, 5));
const wall = (performance.now() - t0) / 1000;
const u = process.cpuUsage(u0);
const main = mainCpuUs() - m0;
const total = u.user + u.system;
console.log(
  `calls ${N} × ${ROWS} rows: ${wall.toFixed(1)} s; CPU µs per row: total ${(total / N / ROWS).toFixed(1)} (JS thread ${(main / N / ROWS).toFixed(1)}, other threads ${((total - main) / N / ROWS).toFixed(1)}); load ${loadavg()[0]?.toFixed(1)}; server ${JSON.stringify(server)} settings ${JSON.stringify(settings)}`,
);
await c.stop();
await store.close();
rmSync(dir, { recursive: true, force: true });
