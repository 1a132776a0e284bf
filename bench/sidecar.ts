// `npm run bench -- sidecar`: what the REST sidecar adds to an inference call, against baselines measured
// in the same run. Every server is its own process, started here and stopped by PID:
//
// - upstream: Debian's nginx (one worker, CPU 1) answering each V2 request with a V2 response whose batch
//   size matches the request's (`[n,2]` probabilities for an `[n,4]` input), so no capture is quarantined;
// - direct (no proxy), nginx `proxy_pass` (one worker, keep-alive upstream), a plain `node:http` proxy;
// - `node bin/modelwatch.js sidecar` with the tee off (`sidecar.sampling: 0`), with the tee on into Kafka
//   (a librdkafka mock cluster, test/support/kafka-mock.ts), and a fresh sidecar of the same kind whose
//   broker goes down under it after a warm-up with the broker up (`kafka_down`);
// - the sidecar with the tee on into the in-process bus, drained by a no-op consumer (`tee_inproc`: the
//   bus lives in the process, so this one is `startSidecar` from dist/ in a bench child: `modelwatch
//   sidecar` alone has no consumer of its in-process bus);
// - `node bin/modelwatch.js up` (every role, embedded store, captures stored), with a one-row body for
//   the CPU-per-captured-request target and the 1 KB body.
//
// Load: an open-loop generator in its own process (bench/sidecar/child.ts; RATE req/s on a fixed
// schedule over 16 keep-alive connections, latency measured from the tick that sent a request, so
// falling behind shows) for p50/p99; `wrk -t1 -c16` (closed loop) for saturation. The event loop of the
// proxy under test runs alone on CPU 0 (its other threads on both; `up`: both CPUs), everything else on
// CPU 1; every process in a session of its own at nice SIDECAR_BENCH_NICE (default -10), and each phase
// records how long the proxy's event loop and the load generator waited for a CPU (schedstat). CPU per request is the process's CPU time
// (every thread, /proc) over the phase; peak RSS is VmHWM, reset before each phase. Event-loop delay and
// GC pauses come from the proxies themselves: `MODELWATCH_DIAGNOSTICS_INTERVAL_MS` makes the sidecar log
// `diagnostics` lines (monitorEventLoopDelay, PerformanceObserver 'gc'), and the bench children log the
// same lines. ROUNDS rounds, variants interleaved (order reversed every other round); the load average is
// recorded per round and per variant.
//
// Environment: SIDECAR_BENCH_QUICK=1 (one round, 1 KB, short phases), SIDECAR_BENCH_ROUNDS,
// SIDECAR_BENCH_RATE, SIDECAR_BENCH_WARMUP_S, SIDECAR_BENCH_UP_WARMUP_S, SIDECAR_BENCH_LATENCY_S, SIDECAR_BENCH_SATURATION_S, SIDECAR_BENCH_SIZES,
// SIDECAR_BENCH_VARIANTS (comma-separated subset).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { LatencyResult, LoadJob } from './sidecar/child.js';
import {
  BENCH_NICE,
  cpuSeconds,
  freePort,
  placeThreads,
  prioritized,
  resetRssPeak,
  rssPeakMb,
  schedStat,
  startNginxProxy,
  startUpstream,
  v2Body,
  waitForPort,
  wrk,
  type SaturationResult,
  type SchedStat,
} from './sidecar/procs.js';
import { repoRoot } from './shipped.js';

const root = join(import.meta.dirname ?? process.cwd(), '..');
const QUICK = process.env.SIDECAR_BENCH_QUICK === '1';
const num = (name: string, dflt: number): number => Number(process.env[name] ?? dflt);
const RATE = num('SIDECAR_BENCH_RATE', 1000);
const CONNECTIONS = 16;
const WARMUP_S = num('SIDECAR_BENCH_WARMUP_S', 4);
/**
 * Warm-up of `up` before each fixed-rate phase: V8 is still compiling its ingest, store and detection code
 * during the first ~20 s of traffic (compilation was ~7 % of its CPU samples 14-22 s after start, 0.2 % at
 * 25-35 s), a one-off cost that a long-running process does not pay per request.
 */
const UP_WARMUP_S = num('SIDECAR_BENCH_UP_WARMUP_S', QUICK ? 4 : 25);
const LATENCY_S = num('SIDECAR_BENCH_LATENCY_S', QUICK ? 3 : 5);
const SATURATION_S = num('SIDECAR_BENCH_SATURATION_S', QUICK ? 2 : 3);
const ROUNDS = num('SIDECAR_BENCH_ROUNDS', QUICK ? 1 : 3);
const DIAG_MS = 500;
/** Extra node flags for every Node server under test (e.g. `--trace-gc`), space-separated. */
const NODE_FLAGS = (process.env.SIDECAR_BENCH_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '');
const STDOUT_DIR = process.env.SIDECAR_BENCH_STDOUT_DIR;
const PROXY_CPU = '0';
const OTHER_CPU = '1';
const BOTH_CPUS = `${PROXY_CPU},${OTHER_CPU}`;

const ALL_VARIANTS = [
  'direct',
  'nginx',
  'node_proxy',
  'tee_off',
  'tee_inproc',
  'tee_kafka',
  'kafka_down',
  'up',
] as const;
type Variant = (typeof ALL_VARIANTS)[number];
const VARIANTS: Variant[] = process.env.SIDECAR_BENCH_VARIANTS
  ? ALL_VARIANTS.filter((v) => process.env.SIDECAR_BENCH_VARIANTS?.split(',').includes(v))
  : [...ALL_VARIANTS];

// ---------------------------------------------------------------- child processes

/** One `diagnostics` line of a proxy, with when it arrived here. */
interface DiagLine {
  at: number;
  intervalMs: number;
  eldP50Ms: number;
  eldP99Ms: number;
  eldMaxMs: number;
  gcCount: number;
  gcMinor: number;
  gcMajor: number;
  gcTotalMs: number;
  gcMaxMs: number;
  gcMinorMaxMs: number;
  heapUsedMb: number;
}

interface Server {
  port: number;
  pid: number;
  diag: DiagLine[];
  /** Other log lines worth keeping (the tee's accounting at shutdown, warnings). */
  notes: Record<string, unknown>[];
  /** Re-applies the thread placement (event loop on CPU 0, other threads on both CPUs); none for `up`. */
  place: () => void;
  stop(): Promise<void>;
}

let childEntry: string | undefined;

/** Bundles bench/sidecar/child.ts into plain JavaScript (packages and dist/ external) for bare `node`. */
async function buildChild(): Promise<string> {
  if (childEntry !== undefined) return childEntry;
  const esbuild = await import('esbuild');
  // Inside node_modules, so the bundle's package imports resolve; one directory per run.
  const cache = join(root, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const dir = mkdtempSync(join(cache, 'modelwatch-bench-sidecar-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const outfile = join(dir, 'child.mjs');
  await esbuild.build({
    entryPoints: [join(import.meta.dirname, 'sidecar', 'child.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outfile,
    logLevel: 'warning',
  });
  childEntry = outfile;
  return outfile;
}

/**
 * Starts a Node server process. `cpu` PROXY_CPU: its event loop (main thread) runs alone on CPU 0 and
 * its other threads on both CPUs (see placeThreads); any other value pins the whole process there.
 */
async function spawnServer(what: string, args: string[], cpu: string, port: number): Promise<Server> {
  const split = cpu === PROXY_CPU;
  const cmd = prioritized([process.execPath, ...NODE_FLAGS, ...args], split ? BOTH_CPUS : cpu);
  // With SIDECAR_BENCH_STDOUT_DIR, a server's stdout (where `--trace-gc` writes) goes to a file there.
  const out = STDOUT_DIR === undefined ? 'ignore' : openSync(join(STDOUT_DIR, `${what}-${port}.log`), 'w');
  const child = spawn(cmd.file, cmd.args, {
    stdio: ['ignore', out, 'pipe'],
    cwd: root,
    env: {
      ...process.env,
      MODELWATCH_BENCH_ROOT: repoRoot,
      MODELWATCH_DIAGNOSTICS_INTERVAL_MS: String(DIAG_MS),
    },
  });
  const diag: DiagLine[] = [];
  const notes: Record<string, unknown>[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(line) as Record<string, unknown>;
    } catch {
      process.stderr.write(`[${what}] ${line}\n`);
      return;
    }
    if (m.msg === 'diagnostics') diag.push({ ...(m as unknown as DiagLine), at: performance.now() });
    else if (m.msg === 'tee stats' || m.msg === 'sidecar stopped' || m.level === 'warn' || m.level === 'error') {
      notes.push(m);
      if (m.level === 'error') process.stderr.write(`[${what}] ${line}\n`);
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const started = await Promise.race([waitForPort(port, 120_000), exited.then(() => false)]);
  if (!started) throw new Error(`${what} did not start listening on ${port}`);
  const place = (): void => {
    if (split && child.pid !== undefined && child.exitCode === null) placeThreads(child.pid, PROXY_CPU, BOTH_CPUS);
  };
  place();
  return {
    place,
    port,
    // setsid, sh, nice and taskset exec node: same PID.
    pid: child.pid!,
    diag,
    notes,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(t);
    },
  };
}

async function benchChild(mode: 'node-proxy' | 'sidecar-inproc', upstream: string): Promise<Server> {
  const entry = await buildChild();
  const port = await freePort();
  return spawnServer(mode, [entry, mode, String(port), upstream], PROXY_CPU, port);
}

/** `node bin/modelwatch.js <command> --config <file>` with `config` (listen address filled in). */
async function modelwatch(
  command: 'sidecar' | 'up',
  config: Record<string, unknown>,
  dir: string,
  cpu: string,
): Promise<Server> {
  const port = await freePort();
  const file = join(dir, `${command}-${port}.json`);
  const sidecar = { ...(config.sidecar as Record<string, unknown>), listen: `127.0.0.1:${port}` };
  writeFileSync(file, JSON.stringify({ logLevel: 'info', ...config, sidecar }));
  return spawnServer(command, [join(repoRoot, 'bin', 'modelwatch.js'), command, '--config', file], cpu, port);
}

/** The open-loop load generator, in its own process on the other CPU. */
interface LoadGen {
  pid: number;
  run(job: LoadJob): Promise<LatencyResult>;
  stop(): void;
}

async function startLoadGen(): Promise<LoadGen> {
  const entry = await buildChild();
  const cmd = prioritized([process.execPath, entry, 'loadgen'], OTHER_CPU);
  const child: ChildProcess = spawn(cmd.file, cmd.args, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, MODELWATCH_BENCH_ROOT: repoRoot },
  });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`load generator exited (${code})`)));
  });
  return {
    pid: child.pid!,
    run: (job) =>
      new Promise((resolve) => {
        child.once('message', (m) => resolve(m as LatencyResult));
        child.send(job);
      }),
    stop: () => {
      child.send('exit');
    },
  };
}

// ---------------------------------------------------------------- measurement

/** Event-loop delay and GC over one phase, from the proxy's own diagnostics lines. */
interface DiagSummary {
  /** Largest per-interval p99 / max of the event-loop delay, ms. */
  eld_p99_ms: number;
  eld_max_ms: number;
  gc_count: number;
  gc_minor: number;
  gc_major: number;
  gc_total_ms: number;
  gc_max_ms: number;
  gc_minor_max_ms: number;
  /** Share of the phase spent in GC pauses, %. */
  gc_pct: number;
  heap_used_mb: number;
}

/** What the proxy process spent during one phase. */
interface PhaseCost {
  /** CPU µs of the proxy process (every thread) per request. */
  cpu_us_per_req: number;
  /**
   * The same split by thread (/proc/PID/task/TID/schedstat): the event loop, the Kafka publisher worker
   * (the one thread running at another nice value), and the rest (V8 helpers, libuv's pool).
   */
  cpu_split_us_per_req?: { main: number; worker: number; other: number };
  diag?: DiagSummary;
  /** Peak RSS (VmHWM) during the phase, MB. */
  rss_peak_mb?: number;
  /**
   * Time the proxy's event-loop thread was runnable but waited for a CPU (another process or thread on
   * its core), ms over the phase, and the same for the load generator: the harness's contention check.
   */
  rq_wait_ms?: number;
  rq_wait_all_threads_ms?: number;
  loadgen_rq_wait_ms?: number;
  window: [number, number];
}

interface VariantResult {
  round: number;
  variant: Variant;
  body_bytes: number;
  rows: number;
  load_1m: number;
  latency: LatencyResult;
  added_p99_ms?: number;
  at_rate?: PhaseCost;
  saturation?: SaturationResult & PhaseCost;
  notes?: Record<string, unknown>;
  /** Variants without a proxy process (`direct`): the load generator's run-queue wait, ms. */
  at_rate_loadgen_rq_wait_ms?: number;
  /** `up` only: the tee's and ingest's counters at the end (nothing quarantined when the answers match). */
  ingest?: Record<string, unknown>;
}

/** Tee and ingest counters of `up`, read from the sidecar's /metrics (one registry for every role). */
async function ingestCounters(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const name of [
    'modelwatch_tee_captured_total',
    'modelwatch_ingest_records_consumed_total',
    'modelwatch_ingest_rows_inserted_total',
    'modelwatch_ingest_records_quarantined_total',
    'modelwatch_ingest_batches_total',
  ]) {
    let sum = 0;
    for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'gm'))) sum += Number(m[1]);
    out[name.replace(/^modelwatch_/, '')] = sum;
  }
  return out;
}

function summarize(lines: DiagLine[], [t0, t1]: [number, number]): DiagSummary | undefined {
  // A line covers [at - interval, at]: it belongs to the phase holding its midpoint.
  const mine = lines.filter((l) => {
    const mid = l.at - l.intervalMs / 2;
    return mid >= t0 && mid <= t1;
  });
  if (mine.length === 0) return undefined;
  const max = (f: (l: DiagLine) => number): number => Math.max(...mine.map(f));
  const sum = (f: (l: DiagLine) => number): number => mine.reduce((a, l) => a + f(l), 0);
  const span = sum((l) => l.intervalMs);
  return {
    eld_p99_ms: max((l) => l.eldP99Ms),
    eld_max_ms: max((l) => l.eldMaxMs),
    gc_count: sum((l) => l.gcCount),
    gc_minor: sum((l) => l.gcMinor),
    gc_major: sum((l) => l.gcMajor),
    gc_total_ms: r2(sum((l) => l.gcTotalMs)),
    gc_max_ms: r2(max((l) => l.gcMaxMs)),
    gc_minor_max_ms: r2(max((l) => l.gcMinorMaxMs)),
    gc_pct: r2((100 * sum((l) => l.gcTotalMs)) / Math.max(1, span)),
    heap_used_mb: max((l) => l.heapUsedMb),
  };
}

/** A CPU split as `main / worker / other`, or `-`. */
function split(c: { main: number; worker: number; other: number } | undefined): string {
  return c === undefined ? '-' : `${c.main} / ${c.worker} / ${c.other}`;
}

function ratio(a: number | undefined, b: number | undefined): number {
  if (a === undefined || b === undefined || !(b > 0)) return NaN;
  return Math.round((a / b) * 100) / 100;
}

const r2 = (x: number): number => Math.round(x * 100) / 100;

/** {@link PhaseCost.cpu_split_us_per_req} from two {@link schedStat} readings over `requests`. */
function cpuSplit(a: SchedStat, b: SchedStat, requests: number): { main: number; worker: number; other: number } {
  const per = (ns: number): number => Math.round(ns / 1e3 / Math.max(1, requests));
  const main = b.mainRunNs - a.mainRunNs;
  const worker = b.nicedRunNs - a.nicedRunNs;
  return { main: per(main), worker: per(worker), other: per(b.runNs - a.runNs - main - worker) };
}

/** Run-queue waits over a phase from two {@link schedStat} readings of the proxy (and of the load generator). */
function waits(
  a: SchedStat,
  b: SchedStat,
  ga?: SchedStat,
  gb?: SchedStat,
): Pick<PhaseCost, 'rq_wait_ms' | 'rq_wait_all_threads_ms' | 'loadgen_rq_wait_ms'> {
  return {
    rq_wait_ms: r2((b.mainWaitNs - a.mainWaitNs) / 1e6),
    rq_wait_all_threads_ms: r2((b.waitNs - a.waitNs) / 1e6),
    ...(ga && gb ? { loadgen_rq_wait_ms: r2((gb.mainWaitNs - ga.mainWaitNs) / 1e6) } : {}),
  };
}

interface Item {
  variant: Variant;
  body: Body;
  saturation: boolean;
  before?: () => Promise<void>;
}

interface Body {
  size: number;
  label: string;
  file: string;
  body: Buffer;
  rows: number;
}

/** Runs the benchmark and writes `bench/results/sidecar.json` and `.md`. */
export async function run(): Promise<void> {
  for (const bin of ['nginx', 'wrk', 'taskset']) {
    if (spawnSync('which', [bin]).status !== 0) throw new Error(`sidecar bench needs ${bin} (Debian package)`);
  }
  // This process and whatever it starts without an explicit CPU (the Kafka mock) run on CPU 1, at the
  // bench's priority (the mock inherits both; it is not in a session of its own).
  spawnSync('taskset', ['-pc', OTHER_CPU, String(process.pid)], { stdio: 'ignore' });
  try {
    if (BENCH_NICE !== 0) setPriority(0, BENCH_NICE);
  } catch {
    // Not permitted (not root): the bench runs at normal priority.
  }
  const started = Date.now();
  const loadStart = loadavg();
  const tmp = mkdtempSync(join(tmpdir(), 'mw-bench-sidecar-'));
  const sizes = (process.env.SIDECAR_BENCH_SIZES ?? (QUICK ? '1024' : '1024,65536')).split(',').map(Number);
  const mkBody = (size: number): Body => {
    const b = v2Body(size);
    const file = join(tmp, `body-${size}.json`);
    writeFileSync(file, b.body);
    return { size, label: size === 0 ? '1 row' : `${b.body.length} B`, file, ...b };
  };
  const bodies = sizes.map(mkBody);
  const oneRow = mkBody(0);
  // `up` stores every row: one-row calls for the CPU target, and the 1 KB body.
  const upBodies = [oneRow, ...bodies.filter((b) => b.size <= 1024)];
  const upstream = await startUpstream([...bodies, oneRow], Number(OTHER_CPU));
  const nginxProxy = await startNginxProxy(upstream.port, Number(PROXY_CPU));
  const loadgen = await startLoadGen();
  const { startKafkaMock } = await import('../test/support/kafka-mock.js');
  const upstreamUrl = `http://127.0.0.1:${upstream.port}`;
  const results: VariantResult[] = [];
  const rounds: { round: number; order: Variant[]; load_start: number[]; load_end: number[] }[] = [];
  const pending: { server: Server; res: VariantResult }[] = [];

  const measure = async (
    round: number,
    variant: Variant,
    b: Body,
    port: number,
    opts: { pid?: number; saturation: boolean; place?: () => void },
  ): Promise<VariantResult> => {
    const pid = opts.pid;
    const load_1m = r2(loadavg()[0] ?? NaN);
    const job: LoadJob = {
      port,
      body: b.body.toString('base64'),
      rate: RATE,
      seconds: variant === 'up' ? UP_WARMUP_S : WARMUP_S,
      connections: CONNECTIONS,
    };
    await loadgen.run(job);
    // Threads the warm-up started (libuv's pool, a worker) inherited the event loop's CPU.
    opts.place?.();
    if (pid !== undefined) resetRssPeak(pid);
    const t0 = performance.now();
    const cpu0 = pid !== undefined ? cpuSeconds(pid) : 0;
    const s0 = pid !== undefined ? schedStat(pid) : undefined;
    const g0 = schedStat(loadgen.pid);
    const latency = await loadgen.run({ ...job, seconds: LATENCY_S });
    const t1 = performance.now();
    const g1 = schedStat(loadgen.pid);
    const res: VariantResult = { round, variant, body_bytes: b.body.length, rows: b.rows, load_1m, latency };
    if (pid !== undefined && s0 !== undefined) {
      const s1 = schedStat(pid);
      res.at_rate = {
        cpu_us_per_req: Math.round(((cpuSeconds(pid) - cpu0) * 1e6) / Math.max(1, latency.requests)),
        cpu_split_us_per_req: cpuSplit(s0, s1, latency.requests),
        rss_peak_mb: rssPeakMb(pid),
        ...waits(s0, s1, g0, g1),
        window: [t0, t1],
      };
    } else res.at_rate_loadgen_rq_wait_ms = r2((g1.mainWaitNs - g0.mainWaitNs) / 1e6);
    if (opts.saturation) {
      if (pid !== undefined) resetRssPeak(pid);
      const t2 = performance.now();
      const c0 = pid !== undefined ? cpuSeconds(pid) : 0;
      const s2 = pid !== undefined ? schedStat(pid) : undefined;
      const sat = await wrk(port, b.file, SATURATION_S, CONNECTIONS, OTHER_CPU);
      const t3 = performance.now();
      const s3 = pid !== undefined ? schedStat(pid) : undefined;
      res.saturation = {
        ...sat,
        cpu_us_per_req:
          pid !== undefined ? Math.round(((cpuSeconds(pid) - c0) * 1e6) / Math.max(1, sat.requests)) : NaN,
        ...(s2 !== undefined && s3 !== undefined ? { cpu_split_us_per_req: cpuSplit(s2, s3, sat.requests) } : {}),
        rss_peak_mb: pid !== undefined ? rssPeakMb(pid) : undefined,
        ...(s2 !== undefined && s3 !== undefined ? waits(s2, s3) : {}),
        window: [t2, t3],
      };
    }
    console.error(
      `sidecar bench: round ${round} ${b.label} ${variant}: p50 ${latency.p50_ms} p99 ${latency.p99_ms} ms, errors ${latency.errors}, queued ${latency.queued}; sat ${res.saturation?.req_per_s ?? '-'} req/s; CPU ${res.at_rate?.cpu_us_per_req ?? '-'} µs/req (main/worker/other ${split(res.at_rate?.cpu_split_us_per_req)} @rate, ${split(res.saturation?.cpu_split_us_per_req)} @sat); RSS ${res.at_rate?.rss_peak_mb ?? '-'} MB; run-queue wait proxy ${res.at_rate?.rq_wait_ms ?? '-'} / loadgen ${res.at_rate?.loadgen_rq_wait_ms ?? res.at_rate_loadgen_rq_wait_ms ?? '-'} ms; load ${load_1m}`,
    );
    return res;
  };

  const runServer = async (
    round: number,
    server: Server,
    list: Item[],
    after?: () => Promise<Record<string, unknown>>,
  ): Promise<void> => {
    try {
      for (const item of list) {
        await item.before?.();
        const res = await measure(round, item.variant, item.body, server.port, {
          pid: server.pid,
          saturation: item.saturation,
          place: server.place,
        });
        results.push(res);
        pending.push({ server, res });
      }
      const last = results.at(-1);
      if (after && last) last.ingest = await after();
    } finally {
      await server.stop();
    }
  };

  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const order: Variant[] = round % 2 === 1 ? [...VARIANTS] : [...VARIANTS].reverse();
      const load_start = loadavg().map(r2);
      for (const variant of order) {
        const each = (v: Variant, saturation = true): Item[] =>
          bodies.map((body) => ({ variant: v, body, saturation }));
        switch (variant) {
          case 'direct':
            for (const b of bodies)
              results.push(await measure(round, variant, b, upstream.port, { saturation: false }));
            break;
          case 'nginx':
            for (const b of bodies)
              results.push(
                await measure(round, variant, b, nginxProxy.port, { pid: nginxProxy.pid, saturation: true }),
              );
            break;
          case 'node_proxy':
            await runServer(round, await benchChild('node-proxy', upstreamUrl), each(variant));
            break;
          case 'tee_inproc':
            await runServer(round, await benchChild('sidecar-inproc', upstreamUrl), each(variant));
            break;
          case 'tee_off':
            await runServer(
              round,
              await modelwatch('sidecar', { sidecar: { upstream: upstreamUrl, sampling: 0 } }, tmp, PROXY_CPU),
              each(variant),
            );
            break;
          case 'tee_kafka':
          case 'kafka_down': {
            // A fresh mock cluster and sidecar per variant and round: the mock keeps every message in
            // memory, and `kafka_down` must not inherit the memory of tee_kafka's saturation phases (its
            // peak RSS is measured at the fixed rate). `kafka_down` first runs at the rate with the broker
            // up for the warm-up time, then takes the broker down under the running sidecar.
            const mock = await startKafkaMock({ brokers: 1, topics: { 'modelwatch.inference': 1 } });
            try {
              const server = await modelwatch(
                'sidecar',
                { sidecar: { upstream: upstreamUrl }, kafka: { brokers: mock.brokers } },
                tmp,
                PROXY_CPU,
              );
              const list = each(variant, variant === 'tee_kafka');
              const first = list[0];
              if (variant === 'kafka_down' && first)
                first.before = async () => {
                  await loadgen.run({
                    port: server.port,
                    body: first.body.body.toString('base64'),
                    rate: RATE,
                    seconds: WARMUP_S,
                    connections: CONNECTIONS,
                  });
                  await mock.down(1);
                };
              await runServer(round, server, list);
            } finally {
              await mock.stop();
            }
            break;
          }
          case 'up': {
            const dir = mkdtempSync(join(tmp, 'up-'));
            const apiPort = await freePort();
            const server = await modelwatch(
              'up',
              {
                clickhouse: { url: `chdb:${join(dir, 'chdb')}` },
                sidecar: { upstream: upstreamUrl },
                api: { listen: `127.0.0.1:${apiPort}` },
              },
              dir,
              `${PROXY_CPU},${OTHER_CPU}`,
            );
            try {
              await runServer(
                round,
                server,
                upBodies.map((body) => ({ variant: 'up' as const, body, saturation: true })),
                async () => {
                  // Let ingest catch up with what the saturation run left on the bus, then read its counters.
                  await new Promise((r) => setTimeout(r, 3_000));
                  return ingestCounters(server.port);
                },
              );
            } finally {
              rmSync(dir, { recursive: true, force: true });
            }
            break;
          }
        }
      }
      rounds.push({ round, order, load_start, load_end: loadavg().map(r2) });
    }
  } finally {
    loadgen.stop();
    await nginxProxy.stop();
    await upstream.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
  const loadEnd = loadavg();

  for (const { server, res } of pending) {
    if (res.at_rate) res.at_rate.diag = summarize(server.diag, res.at_rate.window);
    if (res.saturation) res.saturation.diag = summarize(server.diag, res.saturation.window);
    const stats = server.notes.find((n) => n.msg === 'sidecar stopped' || n.msg === 'tee stats');
    if (stats && res === pending.filter((p) => p.server === server).at(-1)?.res) res.notes = stats;
  }
  for (const r of results) {
    const direct = results.find((d) => d.round === r.round && d.variant === 'direct' && d.body_bytes === r.body_bytes);
    if (r.variant !== 'direct' && direct) r.added_p99_ms = r2(r.latency.p99_ms - direct.latency.p99_ms);
  }

  const out: BenchOutput = {
    generated_at: new Date().toISOString(),
    wall_s: Math.round((Date.now() - started) / 1000),
    machine: {
      cpus: 2,
      load_average_start: loadStart.map(r2),
      load_average_end: loadEnd.map(r2),
    },
    setup: {
      rate_req_per_s: RATE,
      connections: CONNECTIONS,
      warmup_seconds: WARMUP_S,
      up_warmup_seconds: UP_WARMUP_S,
      latency_seconds: LATENCY_S,
      saturation_seconds: SATURATION_S,
      rounds: ROUNDS,
      diagnostics_interval_ms: DIAG_MS,
      upstream: 'nginx, 1 worker on CPU 1, static V2 answer with the request batch size',
      latency_generator: `open loop in its own process on CPU 1: ${RATE} req/s on a fixed schedule over ${CONNECTIONS} keep-alive connections`,
      saturation_generator: `wrk -t1 -c${CONNECTIONS} -d${SATURATION_S}s on CPU 1`,
      priority:
        BENCH_NICE === 0
          ? 'Every process of the bench at normal priority (SIDECAR_BENCH_NICE=0).'
          : `Every process of the bench (proxies, nginx, load generators) runs in a session of its own (its own scheduler autogroup) at nice ${BENCH_NICE}, so other work on the machine does not take its core (run-queue waits below show whether it did).`,
      proxy_cpu:
        'nginx proxy on CPU 0; the Node proxies (plain Node proxy, sidecar): event-loop thread alone on CPU 0, their other threads (V8 helpers, libuv pool, workers) on CPUs 0 and 1; modelwatch up on CPUs 0 and 1',
      nginx_proxy: 'worker_processes 1, proxy_pass with upstream keepalive 64, proxy_http_version 1.1',
      node_proxy: 'node:http server + http.request with a keep-alive Agent, bodies piped',
      tee_off: 'node bin/modelwatch.js sidecar, sidecar.sampling 0',
      tee_inproc: 'startSidecar (dist/) in a bench child, in-process bus drained by a no-op consumer',
      tee_kafka:
        'node bin/modelwatch.js sidecar, kafka.brokers = librdkafka mock cluster (1 broker), producer in a worker thread',
      kafka_down:
        'a fresh tee_kafka process (own mock cluster) warmed up at the rate with the broker up, then the mock broker taken down',
      up: 'node bin/modelwatch.js up, embedded chdb store, in-process bus, default config',
    },
    rounds,
    results,
    targets: targetsOf(results),
  };
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  writeFileSync(join(root, 'bench', 'results', 'sidecar.json'), `${JSON.stringify(out, null, 2)}\n`);
  const notes = join(root, 'bench', 'results', 'sidecar.notes.md');
  let extra = '';
  try {
    extra = readFileSync(notes, 'utf8');
  } catch {
    // No hand-written findings.
  }
  writeFileSync(join(root, 'bench', 'results', 'sidecar.md'), renderMarkdown(out) + extra);
  process.stdout.write(renderMarkdown(out));
}

interface Target {
  round: number;
  body_bytes: number;
  variant: Variant;
  target: string;
  value: number;
  limit: number;
  met: boolean;
}

interface BenchOutput {
  generated_at: string;
  wall_s: number;
  machine: { cpus: number; load_average_start: number[]; load_average_end: number[] };
  setup: Record<string, unknown>;
  rounds: { round: number; order: Variant[]; load_start: number[]; load_end: number[] }[];
  results: VariantResult[];
  targets: Target[];
}

function targetsOf(results: VariantResult[]): Target[] {
  const find = (round: number, v: Variant, bytes: number): VariantResult | undefined =>
    results.find((n) => n.round === round && n.variant === v && n.body_bytes === bytes);
  const smallest = Math.min(...results.filter((r) => r.variant === 'node_proxy').map((r) => r.body_bytes));
  const out: Target[] = [];
  for (const r of results) {
    const base = { round: r.round, body_bytes: r.body_bytes, variant: r.variant };
    // `up`'s one-row calls are compared with the Node proxy's smallest body.
    const node = find(r.round, 'node_proxy', r.body_bytes) ?? find(r.round, 'node_proxy', smallest);
    const p99 = ratio(r.latency.p99_ms, node?.latency.p99_ms);
    const sat = ratio(r.saturation?.req_per_s, node?.saturation?.req_per_s);
    const add = (target: string, value: number, limit: number, atMost: boolean): void => {
      out.push({ ...base, target, value, limit, met: atMost ? value <= limit : value >= limit });
    };
    switch (r.variant) {
      case 'tee_off':
        add(`p99 at ${RATE} req/s ≤ 1.5× plain Node proxy`, p99, 1.5, true);
        add('saturation ≥ 1.1× plain Node proxy', sat, 1.1, false);
        break;
      case 'tee_inproc':
      case 'tee_kafka':
        add(`p99 at ${RATE} req/s ≤ 1.5× plain Node proxy`, p99, 1.5, true);
        add('saturation ≥ 0.9× plain Node proxy', sat, 0.9, false);
        add(`peak RSS at ${RATE} req/s ≤ 150 MB`, r.at_rate?.rss_peak_mb ?? NaN, 150, true);
        break;
      case 'kafka_down': {
        const up = find(r.round, 'tee_kafka', r.body_bytes);
        add('p99 ≤ 1.1× Kafka up', ratio(r.latency.p99_ms, up?.latency.p99_ms), 1.1, true);
        add('failed requests = 0', r.latency.errors, 0, true);
        add(`peak RSS at ${RATE} req/s ≤ 150 MB`, r.at_rate?.rss_peak_mb ?? NaN, 150, true);
        break;
      }
      case 'up':
        add(`p99 at ${RATE} req/s ≤ 2× plain Node proxy`, p99, 2, true);
        if (r.rows === 1) add('CPU µs per captured 1-row request ≤ 300', r.at_rate?.cpu_us_per_req ?? NaN, 300, true);
        break;
      default:
        break;
    }
  }
  return out;
}

/** Renders the results (`npx tsx bench/sidecar.ts --render` re-renders bench/results/sidecar.json). */
export function renderMarkdown(out: BenchOutput): string {
  const f = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '' : String(x));
  const node = (r: VariantResult): VariantResult | undefined =>
    out.results.find((n) => n.round === r.round && n.variant === 'node_proxy' && n.body_bytes === r.body_bytes);
  const overloaded = (r: VariantResult | undefined): boolean =>
    r !== undefined && r.latency.queued > 0.01 * r.latency.requests;
  // The proxy's event loop or the load generator waited for a CPU more than 2% of the phase.
  const contended = (r: VariantResult | undefined): boolean => {
    if (r === undefined) return false;
    const limit = 0.02 * Number(out.setup.latency_seconds) * 1000;
    const a = r.at_rate;
    return (a?.rq_wait_ms ?? 0) > limit || (a?.loadgen_rq_wait_ms ?? r.at_rate_loadgen_rq_wait_ms ?? 0) > limit;
  };
  const median = (xs: number[]): number => {
    const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
    if (s.length === 0) return NaN;
    return s.length % 2 === 1
      ? (s[(s.length - 1) / 2] as number)
      : r2(((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2);
  };
  const sizes = [...new Set(out.results.map((r) => r.body_bytes))].sort((a, b) => a - b);
  const summary: string[] = [];
  for (const size of sizes) {
    for (const v of ALL_VARIANTS) {
      const rs = out.results.filter((r) => r.variant === v && r.body_bytes === size);
      if (rs.length === 0) continue;
      const dg = (g: (d: DiagSummary) => number): string =>
        f(median(rs.map((r) => (r.at_rate?.diag ? g(r.at_rate.diag) : NaN))));
      summary.push(
        `| ${size} (${rs[0]?.rows}) | ${v} | ${f(median(rs.map((r) => r.latency.p50_ms)))} | ${f(median(rs.map((r) => r.latency.p99_ms)))} | ${v === 'direct' ? '' : f(median(rs.map((r) => ratio(r.latency.p99_ms, node(r)?.latency.p99_ms))))} | ${f(median(rs.map((r) => r.saturation?.req_per_s ?? NaN)))} | ${f(median(rs.map((r) => ratio(r.saturation?.req_per_s, node(r)?.saturation?.req_per_s))))} | ${f(median(rs.map((r) => r.at_rate?.cpu_us_per_req ?? NaN)))} | ${f(median(rs.map((r) => r.saturation?.cpu_us_per_req ?? NaN)))} | ${dg((d) => d.eld_p99_ms)} / ${dg((d) => d.eld_max_ms)} | ${dg((d) => d.gc_count)} (${dg((d) => d.gc_major)}) | ${dg((d) => d.gc_max_ms)} / ${dg((d) => d.gc_pct)}% | ${f(median(rs.map((r) => r.at_rate?.rss_peak_mb ?? NaN)))} | ${rs.reduce((a, r) => a + r.latency.errors, 0)} |`,
      );
    }
  }
  const lines = [
    '# Sidecar benchmark',
    '',
    `Generated ${out.generated_at} (${out.wall_s} s), ${out.rounds.length} round(s). Load average ${out.machine.load_average_start.join(' / ')} at the start and ${out.machine.load_average_end.join(' / ')} at the end (1 / 5 / 15 min); the machine has 2 cores${out.machine.load_average_start[0] !== undefined && out.machine.load_average_start[0] > 1.5 ? ' and was shared with other work during this run: p99 and saturation are noisy, ratios within a round are the meaningful figures' : ''}.`,
    '',
    `Latency: ${out.setup.latency_generator}, ${out.setup.latency_seconds} s after ${out.setup.warmup_seconds} s of warm-up (\`up\`: ${out.setup.up_warmup_seconds} s, past V8's compilation of its ingest and store code). Saturation: ${out.setup.saturation_generator}. Proxy under test: ${String(out.setup.proxy_cpu)}; upstream nginx, load generators and the Kafka mock on CPU 1. ${typeof out.setup.priority === 'string' ? out.setup.priority : ''} CPU µs/req: the proxy process's CPU time (every thread, /proc) over the phase divided by its requests. Event-loop delay (ELD) and GC pauses: the proxy's own \`diagnostics\` log lines (\`MODELWATCH_DIAGNOSTICS_INTERVAL_MS=${out.setup.diagnostics_interval_ms}\`: \`monitorEventLoopDelay\`, \`PerformanceObserver('gc')\`), over the fixed-rate phase. Peak RSS: VmHWM over the fixed-rate phase.`,
    '',
    'Variants:',
    '',
    ...['nginx_proxy', 'node_proxy', 'tee_off', 'tee_inproc', 'tee_kafka', 'kafka_down', 'up'].map(
      (k) => `- ${k === 'nginx_proxy' ? 'nginx' : k}: ${String(out.setup[k])}`,
    ),
    '',
    'Rounds (variants interleaved, order reversed every other round):',
    '',
    ...out.rounds.map(
      (r) =>
        `- round ${r.round}: ${r.order.join(', ')}; load average ${r.load_start.join(' / ')} → ${r.load_end.join(' / ')}`,
    ),
    '',
    '## Summary (median over rounds)',
    '',
    `| body B (rows) | variant | p50 ms | p99 ms | p99 ÷ Node | sat. req/s | sat ÷ Node | CPU µs/req @${RATE}/s | CPU µs/req @sat | ELD p99 / max ms | GC n (major) | GC max ms / % of time | peak RSS MB | failed requests |`,
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...summary,
    '',
    '## Targets',
    '',
    '| round | body B | variant | target | measured | limit | met |',
    '|---:|---:|---|---|---:|---:|---|',
    ...out.targets.map((t) => {
      const r = out.results.find(
        (x) => x.round === t.round && x.variant === t.variant && x.body_bytes === t.body_bytes,
      );
      const p99 = t.target.startsWith('p99');
      const warn =
        (p99 && (overloaded(r) || (r !== undefined && overloaded(node(r)))) ? ' (⚠ queued)' : '') +
        (p99 && (contended(r) || (r !== undefined && contended(node(r)))) ? ' (⚠ contended)' : '');
      return `| ${t.round} | ${t.body_bytes} | ${t.variant} | ${t.target} | ${f(t.value)} | ${t.limit} | ${t.met ? 'yes' : '**no**'}${warn} |`;
    }),
    '',
    "⚠ queued: more than 1% of the fixed-rate requests found all connections busy (the process fell behind the schedule). ⚠ contended: the proxy's event-loop thread or the load generator waited for a CPU (run queue, /proc/PID/task/TID/schedstat) more than 2% of the fixed-rate phase: other work shared its core, and its p99 says more about that work than about the proxy.",
    '',
    '## Every run',
    '',
    `| round | body B (rows) | variant | load 1m | p50 ms | p99 ms | p99.9 ms | added p99 ms | queued | errors | sat. req/s | CPU µs/req @${RATE}/s | CPU µs/req @sat | CPU µs/req main / worker / other @${RATE}/s | @sat | ELD p99 / max ms | GC n (minor/major) | GC max / minor max / total ms | peak RSS MB @rate / @sat | run-queue wait ms: loop / all threads / loadgen |`,
    '|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...[...out.results]
      .sort(
        (a, b) =>
          a.body_bytes - b.body_bytes ||
          a.round - b.round ||
          ALL_VARIANTS.indexOf(a.variant) - ALL_VARIANTS.indexOf(b.variant),
      )
      .map((r) => {
        const d = r.at_rate?.diag;
        return `| ${r.round} | ${r.body_bytes} (${r.rows}) | ${r.variant} | ${r.load_1m} | ${r.latency.p50_ms} | ${r.latency.p99_ms} | ${r.latency.p999_ms} | ${f(r.added_p99_ms)} | ${r.latency.queued}${overloaded(r) ? ' ⚠' : ''} | ${r.latency.errors}/${r.saturation?.errors ?? '-'} | ${f(r.saturation?.req_per_s)} | ${f(r.at_rate?.cpu_us_per_req)} | ${f(r.saturation?.cpu_us_per_req)} | ${split(r.at_rate?.cpu_split_us_per_req)} | ${split(r.saturation?.cpu_split_us_per_req)} | ${d ? `${d.eld_p99_ms} / ${d.eld_max_ms}` : ''} | ${d ? `${d.gc_count} (${d.gc_minor}/${d.gc_major})` : ''} | ${d ? `${d.gc_max_ms} / ${d.gc_minor_max_ms} / ${d.gc_total_ms}` : ''} | ${f(r.at_rate?.rss_peak_mb)} / ${f(r.saturation?.rss_peak_mb)} | ${f(r.at_rate?.rq_wait_ms)} / ${f(r.at_rate?.rq_wait_all_threads_ms)} / ${f(r.at_rate?.loadgen_rq_wait_ms ?? r.at_rate_loadgen_rq_wait_ms)}${contended(r) ? ' ⚠' : ''} |`;
      }),
    '',
    "`up`'s counters after its last run (captures consumed, rows stored, records quarantined):",
    '',
    ...out.results.filter((r) => r.ingest).map((r) => `- round ${r.round} up: \`${JSON.stringify(r.ingest)}\``),
    '',
    'Tee accounting at shutdown (last run of each process):',
    '',
    ...out.results
      .filter((r) => r.notes)
      .map(
        (r) => `- round ${r.round} ${r.variant}: \`${JSON.stringify((r.notes as { tee?: unknown }).tee ?? r.notes)}\``,
      ),
    '',
  ];
  return lines.join('\n');
}

if (process.argv[2] === '--render') {
  const out = JSON.parse(readFileSync(join(root, 'bench', 'results', 'sidecar.json'), 'utf8')) as BenchOutput;
  let extra = '';
  try {
    extra = readFileSync(join(root, 'bench', 'results', 'sidecar.notes.md'), 'utf8');
  } catch {
    // No hand-written findings.
  }
  writeFileSync(join(root, 'bench', 'results', 'sidecar.md'), renderMarkdown(out) + extra);
}
