// Direction-only: the JavaScript ingest runs per captured call, as its decode loop runs it (compiled dist/):
// decodeCapture → buildCallRecords (decodeCall with the default schema) → payloadRowOf → the lines of
// mw_predictions / mw_requests / mw_payloads written into byte sinks, chunk after chunk of 5,000 calls.
// Main-thread CPU µs per call (/proc per-thread stat), process CPU, GC counts (minor collections: a proxy for bytes allocated, the young generation being a fixed size), best of reps.
// Usage: npm run build && npx tsx bench/ingest/decode-loop.ts [calls] [reps] [rows per call]
//        MODELWATCH_BENCH_ROOT=<a copy of the repo with its own dist/> … to time another build.
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import { shipped } from '../shipped.js';
import { call } from './calls.js';

const { encodeCapture } = await shipped<typeof import('../../src/bus/index.js')>('bus/index.js');
const { decodeCapture } = await shipped<typeof import('../../src/protocol/capture.js')>('protocol/capture.js');
const { decodeCall } = await shipped<typeof import('../../src/protocol/index.js')>('protocol/index.js');
const { defaultModelSchema } = await shipped<typeof import('../../src/config/index.js')>('config/index.js');
const { buildCallRecords } = await shipped<typeof import('../../src/ingest/records.js')>('ingest/records.js');
const { payloadRowOf } = await shipped<typeof import('../../src/ingest/payloads.js')>('ingest/payloads.js');
const enc = await shipped<typeof import('../../src/ingest/encode.js')>('ingest/encode.js');

const N = Number(process.argv[2] ?? 65_536);
const REPS = Number(process.argv[3] ?? 7);
const ROWS = Number(process.argv[4] ?? 1);
const CHUNK = 5_000;

const t0 = Date.UTC(2026, 0, 1);
const msgs = Array.from({ length: N }, (_, i) => ({
  ...encodeCapture(call('bench-model', i, ROWS, t0)),
  offset: String(i),
  timestamp: 0,
}));

function mainCpuUs(): number {
  const s = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000;
}

const gcs = { minor: 0, major: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0;
    if (kind === 1) gcs.minor++;
    else gcs.major++;
  }
}).observe({ entryTypes: ['gc'] });

const pools = [new enc.BufferPool(), new enc.BufferPool(), new enc.BufferPool()];
let check = 0;
function run(): void {
  let sinks = pools.map((pool) => new enc.ByteSink({ pool }));
  const decode = (c: import('../../src/protocol/capture.js').CapturedCall) => decodeCall(c, defaultModelSchema);
  for (let i = 0; i < N; i++) {
    const m = msgs[i]!;
    const c = decodeCapture(m);
    const rec = buildCallRecords(c, `t/0/${m.offset}`, m.value, decode);
    for (const p of rec.predictions) sinks[0]!.add(enc.predictionLine(p));
    const payload = payloadRowOf(c, rec.request.model, rec.request.version, {});
    sinks[1]!.add(enc.requestLine(rec.request));
    if (payload) sinks[2]!.add(enc.payloadLine(payload));
    if ((i + 1) % CHUNK === 0 || i + 1 === N) {
      for (const s of sinks) {
        check += s.body().length;
        s.release();
      }
      sinks = pools.map((pool) => new enc.ByteSink({ pool }));
    }
  }
}

run(); // warm-up
const results: { main: number; total: number; minor: number; major: number }[] = [];
for (let k = 0; k < REPS; k++) {
  const g0 = { ...gcs };
  const m0 = mainCpuUs();
  const u0 = process.cpuUsage();
  run();
  const u = process.cpuUsage(u0);
  const m = mainCpuUs() - m0;
  await new Promise((r) => setImmediate(r)); // let the gc observer report
  results.push({
    main: m / N,
    total: (u.user + u.system) / N,
    minor: gcs.minor - g0.minor,
    major: gcs.major - g0.major,
  });
}
const best = (k: 'main' | 'total'): number => Math.min(...results.map((r) => r[k]));
const med = (k: 'main' | 'total'): number => {
  const v = results.map((r) => r[k]).sort((a, b) => a - b);
  return v[v.length >> 1]!;
};
console.log(
  JSON.stringify({
    root: process.env.MODELWATCH_BENCH_ROOT ?? 'here',
    calls: N,
    rows: ROWS,
    main_best: +best('main').toFixed(2),
    main_median: +med('main').toFixed(2),
    total_best: +best('total').toFixed(2),
    total_median: +med('total').toFixed(2),
    minor_gc_per_rep: results.map((r) => r.minor),
    major_gc_per_rep: results.map((r) => r.major),
    check,
    load: loadavg().map((x) => +x.toFixed(2)),
  }),
);
