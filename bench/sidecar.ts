// `npm run bench -- sidecar`: added latency and saturation throughput of the REST sidecar versus
// Debian's nginx as a reverse proxy, against one upstream (an nginx worker answering a fixed V2
// response, so the upstream is never the bottleneck), with 1 KB and 64 KB V2 JSON request bodies.
// Variants: direct, nginx proxy_pass with upstream keep-alive, sidecar tee off, tee on (Kafka mock
// broker up), tee on with the broker down. Latency comes from an open-loop generator (fixed rate over
// raw keep-alive sockets, microsecond timing); saturation from `wrk -t1 -c16`. The proxy under test
// (sidecar or nginx) is pinned to CPU 0, everything else to CPU 1. Each sidecar variant is a fresh
// child process, whose peak RSS is read from /proc.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Registry } from 'prom-client';
import type { Bus } from '../src/bus/types.js';
import { repoRoot, shipped } from './shipped.js';

const root = join(import.meta.dirname, '..');
const RATE = Number(process.env.SIDECAR_BENCH_RATE ?? 1000);
const CONNECTIONS = 16;
const LATENCY_S = Number(process.env.SIDECAR_BENCH_LATENCY_S ?? 10);
const WARMUP_S = 2;
const SATURATION_S = Number(process.env.SIDECAR_BENCH_SATURATION_S ?? 8);
const TOPIC = 'mw.bench';
const INFER_PATH = '/v2/models/classifier/infer';
const UPSTREAM_RESPONSE = JSON.stringify({
  model_name: 'classifier',
  model_version: '1',
  outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [1, 2], data: [0.25, 0.75] }],
});

type Variant = 'direct' | 'nginx' | 'tee_off' | 'tee_on' | 'tee_on_same_thread' | 'tee_on_kafka_down';

interface LatencyResult {
  requests: number;
  errors: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  mean_ms: number;
  /** Requests that found no idle connection and waited (the generator fell behind). */
  queued: number;
}

interface SaturationResult {
  req_per_s: number;
  errors: number;
  /** CPU time the proxy process spent per request during the saturation run (user + system, all threads). */
  cpu_us_per_req?: number;
  /** The same for the proxy's main thread alone (the event loop that serves requests). */
  main_thread_cpu_us_per_req?: number;
}

interface VariantResult {
  variant: Variant;
  body_bytes: number;
  latency: LatencyResult;
  added_p50_ms?: number;
  added_p99_ms?: number;
  saturation?: SaturationResult;
  rss_peak_mb?: number;
  rss_end_mb?: number;
  tee?: Record<string, unknown>;
}

// ---------------------------------------------------------------- child: the sidecar under test

interface ChildOptions {
  upstream: string;
  tee: boolean;
  brokers: string[];
  /** Tee publishes through the worker-thread Kafka producer (`sidecar.publishInWorker`). */
  publishInWorker: boolean;
}

async function childSidecar(opts: ChildOptions): Promise<void> {
  // The sidecar under test is the compiled dist/ (bench/shipped.ts). The child imports module files, not
  // folder indexes, so it loads what `modelwatch sidecar` needs and nothing else (no embedded
  // ClickHouse, no gRPC).
  const { InProcessBus } = await shipped<typeof import('../src/bus/in-process.js')>('bus/in-process.js');
  const { KafkaBus } = await shipped<typeof import('../src/bus/kafka.js')>('bus/kafka.js');
  const { silentLogger } = await shipped<typeof import('../src/common/logger.js')>('common/logger.js');
  const { configSchema } = await shipped<typeof import('../src/config/schema.js')>('config/schema.js');
  const { startSidecar } = await shipped<typeof import('../src/sidecar/sidecar.js')>('sidecar/sidecar.js');
  const { createStore } = await shipped<typeof import('../src/store/open.js')>('store/open.js');
  const config = configSchema.parse({
    logLevel: 'silent',
    sidecar: { listen: '127.0.0.1:0', upstream: opts.upstream, publishInWorker: opts.publishInWorker },
    kafka: { brokers: opts.brokers, topic: TOPIC },
  });
  const bus: Bus =
    opts.brokers.length > 0
      ? new KafkaBus({
          brokers: opts.brokers,
          topic: TOPIC,
          publishTimeoutMs: 5_000,
          connectionTimeoutMs: 1_000,
          requestTimeoutMs: 3_000,
        })
      : new InProcessBus();
  // The sidecar never touches the store; an HTTP client to nowhere opens no connection.
  const store = createStore({ url: 'http://127.0.0.1:9' });
  const sidecar = await startSidecar(
    { config, bus, store, logger: silentLogger, metrics: new Registry() },
    { tee: opts.tee },
  );
  process.stdout.write(`${JSON.stringify({ url: sidecar.url })}\n`);
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line === 'stats') process.stdout.write(`${JSON.stringify({ stats: sidecar.tee.stats() })}\n`);
    if (line === 'stop') break;
  }
  await sidecar.stop();
  await bus.close();
  process.stdout.write(`${JSON.stringify({ stopped: true, stats: sidecar.tee.stats() })}\n`);
  process.exit(0);
}

interface Child {
  url: string;
  pid: number;
  ask(cmd: string): Promise<Record<string, unknown>>;
  stop(): Promise<Record<string, unknown>>;
}

/**
 * Bundles this harness file alone into plain JavaScript (esbuild comes with tsx; packages and dist/
 * stay external), so the child runs on bare `node` without tsx's loader thread and helpers, and the
 * sidecar code it runs is the compiled dist/ loaded at run time (including dist/bus/kafka-worker-entry.js
 * for the worker-thread publisher). Without esbuild the harness runs through tsx; the sidecar code is
 * still dist/.
 */
async function buildChild(): Promise<string[]> {
  try {
    const esbuild = await import('esbuild');
    // Inside node_modules, so the bundle's package imports resolve; one directory per run.
    const cache = join(root, 'node_modules', '.cache');
    mkdirSync(cache, { recursive: true });
    const dir = mkdtempSync(join(cache, 'modelwatch-bench-sidecar-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    const outfile = join(dir, 'sidecar-child.mjs');
    await esbuild.build({
      entryPoints: [import.meta.filename],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      outfile,
      logLevel: 'warning',
    });
    return [outfile];
  } catch (err) {
    console.error(`sidecar bench: esbuild bundle failed (${String(err)}); running the child through tsx`);
    return ['--import', 'tsx', import.meta.filename];
  }
}

let childEntry: string[] | undefined;

async function spawnSidecar(opts: ChildOptions): Promise<Child> {
  childEntry ??= await buildChild();
  const child: ChildProcess = spawn(
    'taskset',
    [
      '-c',
      '0',
      process.execPath,
      // SIDECAR_BENCH_PROF=DIR writes a V8 CPU profile of each sidecar child there (hot-path work).
      ...(process.env.SIDECAR_BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.SIDECAR_BENCH_PROF] : []),
      ...childEntry,
      '--child-sidecar',
      JSON.stringify(opts),
    ],
    // The bundle lives outside bench/: tell bench/shipped.ts where the repository (and dist/) is.
    { stdio: ['pipe', 'pipe', 'inherit'], cwd: root, env: { ...process.env, MODELWATCH_BENCH_ROOT: repoRoot } },
  );
  const rl = createInterface({ input: child.stdout! });
  const waiting: ((v: Record<string, unknown>) => void)[] = [];
  rl.on('line', (line) => {
    try {
      const v = JSON.parse(line) as Record<string, unknown>;
      waiting.shift()?.(v);
    } catch {
      // not ours
    }
  });
  const next = (): Promise<Record<string, unknown>> => new Promise((resolve) => waiting.push(resolve));
  const first = await next();
  return {
    url: String(first.url),
    pid: child.pid!,
    ask: (cmd) => {
      const p = next();
      child.stdin!.write(`${cmd}\n`);
      return p;
    },
    stop: async () => {
      const p = next();
      child.stdin!.write('stop\n');
      const v = await p;
      await new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
      return v;
    },
  };
}

/** user + system CPU seconds of a process so far (/proc/PID/stat, clock ticks of 10 ms). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The same for a process's main thread only (/proc/PID/task/PID/stat). */
function mainThreadCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rssOf(pid: number): { peak: number; now: number } {
  // taskset execs node in place, so the pid is node's.
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { peak: kb('VmHWM') / 1024, now: kb('VmRSS') / 1024 };
}

// ---------------------------------------------------------------- nginx

interface Nginx {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function startNginx(name: string, cpu: number, server: (port: number) => string): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), `mw-nginx-${name}-`));
  const port = await freePort();
  const conf = `worker_processes 1;
daemon off;
master_process off;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  client_max_body_size 8m;
  client_body_buffer_size 128k;
${server(port)}
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child = spawn('taskset', ['-c', String(cpu), 'nginx', '-p', dir, '-c', join(dir, 'nginx.conf')], {
    stdio: 'inherit',
  });
  // Wait until it accepts connections.
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGQUIT');
      await new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- load

function requestBytes(port: number, body: Buffer): Buffer {
  const head = `POST ${INFER_PATH} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** A V2 JSON request of about `bytes` bytes (classifier input FP32 [n,4]). */
function v2Body(bytes: number): Buffer {
  const row = [0.123456, -1.234567, 2.345678, 0.987654];
  const make = (n: number): Buffer =>
    Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'input', shape: [n, 4], datatype: 'FP32', data: Array.from({ length: n }, () => row).flat() }],
      }),
    );
  let n = 1;
  while (make(n * 2).length <= bytes) n *= 2;
  let lo = n;
  let hi = n * 2;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (make(mid).length <= bytes) lo = mid;
    else hi = mid;
  }
  return make(lo);
}

class Conn {
  busy = false;
  private buf: Buffer = Buffer.alloc(0);
  private sentAt = 0n;
  private readonly socket: Socket;
  constructor(
    port: number,
    private readonly done: (c: Conn, status: number, ns: bigint) => void,
    private readonly fail: (c: Conn) => void,
  ) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.setNoDelay(true);
    this.socket.on('data', (d: Buffer) => this.onData(d));
    this.socket.on('error', () => this.fail(this));
  }
  ready(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
  }
  send(req: Buffer): void {
    this.busy = true;
    this.sentAt = process.hrtime.bigint();
    this.socket.write(req);
  }
  private onData(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    const end = this.buf.indexOf('\r\n\r\n');
    if (end === -1) return;
    const head = this.buf.subarray(0, end).toString('latin1');
    const status = Number(head.slice(9, 12));
    const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    let total: number;
    if (cl) total = end + 4 + Number(cl[1]);
    else {
      const term = this.buf.indexOf('\r\n0\r\n\r\n', end);
      if (term === -1) return;
      total = term + 7;
    }
    if (this.buf.length < total) return;
    const ns = process.hrtime.bigint() - this.sentAt;
    this.buf = this.buf.subarray(total);
    this.busy = false;
    this.done(this, status, ns);
  }
  close(): void {
    this.socket.destroy();
  }
}

/** Open-loop load: `rate` requests/s for `seconds`, spread over `CONNECTIONS` keep-alive sockets. */
async function openLoop(port: number, body: Buffer, rate: number, seconds: number): Promise<LatencyResult> {
  const req = requestBytes(port, body);
  const total = Math.round(rate * seconds);
  const lat = new Float64Array(total);
  let recorded = 0;
  let errors = 0;
  let sent = 0;
  let queued = 0;
  const backlog: number[] = [];
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const idle: Conn[] = [];
  const onDone = (c: Conn, status: number, ns: bigint): void => {
    lat[recorded++] = Number(ns) / 1e6;
    if (status !== 200) errors++;
    if (backlog.length > 0) {
      backlog.shift();
      c.send(req);
    } else idle.push(c);
    if (recorded === total) finish();
  };
  const onFail = (_c: Conn): void => {
    errors++;
    recorded++;
    if (recorded === total) finish();
  };
  const conns = Array.from({ length: CONNECTIONS }, () => new Conn(port, onDone, onFail));
  await Promise.all(conns.map((c) => c.ready()));
  idle.push(...conns);
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
      const due = Math.min(total, Math.floor(elapsed * rate) + 1);
      while (sent < due) {
        sent++;
        const c = idle.pop();
        if (c) c.send(req);
        else {
          queued++;
          backlog.push(sent);
        }
      }
      if (sent >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  const timeout = setTimeout(finish, 30_000);
  await finished;
  clearTimeout(timeout);
  for (const c of conns) c.close();
  const sorted = lat.subarray(0, recorded).sort();
  const q = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
  const mean = sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length);
  const r3 = (x: number): number => Math.round(x * 1000) / 1000;
  return {
    requests: recorded,
    errors: errors + (total - recorded),
    p50_ms: r3(q(0.5)),
    p90_ms: r3(q(0.9)),
    p99_ms: r3(q(0.99)),
    mean_ms: r3(mean),
    queued,
  };
}

function wrk(port: number, bodyFile: string, seconds: number): SaturationResult {
  const script = join(tmpdir(), `mw-wrk-${process.pid}.lua`);
  writeFileSync(
    script,
    `local f = io.open("${bodyFile}", "rb")\nwrk.method = "POST"\nwrk.body = f:read("*a")\nf:close()\nwrk.headers["Content-Type"] = "application/json"\n`,
  );
  const r = spawnSync(
    'taskset',
    [
      '-c',
      '1',
      'wrk',
      '-t1',
      `-c${CONNECTIONS}`,
      `-d${seconds}s`,
      '-s',
      script,
      `http://127.0.0.1:${port}${INFER_PATH}`,
    ],
    {
      encoding: 'utf8',
    },
  );
  rmSync(script, { force: true });
  const out = r.stdout ?? '';
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const sockErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return { req_per_s: Math.round(rps), errors: non2xx + sockErrors };
}

// ---------------------------------------------------------------- run

function ratio(a: number | undefined, b: number | undefined): number {
  if (a === undefined || b === undefined || !(b > 0)) return NaN;
  return Math.round((a / b) * 100) / 100;
}

/** Runs the benchmark and writes `bench/results/sidecar.json` and `.md`. */
export async function run(): Promise<void> {
  for (const bin of ['nginx', 'wrk', 'taskset']) {
    if (spawnSync('which', [bin]).status !== 0) throw new Error(`sidecar bench needs ${bin} (Debian package)`);
  }
  const load0 = loadavg();
  const upstream = await startNginx(
    'upstream',
    1,
    (port) => `  server {
    listen 127.0.0.1:${port};
    location / { default_type application/json; return 200 '${UPSTREAM_RESPONSE}'; }
  }`,
  );
  const proxy = await startNginx(
    'proxy',
    0,
    (port) => `  upstream up { server 127.0.0.1:${upstream.port}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
    }
  }`,
  );
  const { startKafkaMock } = await import('../test/support/kafka-mock.js');
  const kafka = await startKafkaMock({ topics: { [TOPIC]: 1 } });
  const upstreamUrl = `http://127.0.0.1:${upstream.port}`;
  const results: VariantResult[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'mw-bench-sidecar-'));
  try {
    for (const size of (process.env.SIDECAR_BENCH_SIZES ?? '1024,65536').split(',').map(Number)) {
      const body = v2Body(size);
      const bodyFile = join(tmp, `body-${size}.json`);
      writeFileSync(bodyFile, body);
      const measure = async (variant: Variant, port: number, child?: Child, pid?: number): Promise<VariantResult> => {
        await openLoop(port, body, RATE, WARMUP_S);
        const latency = await openLoop(port, body, RATE, LATENCY_S);
        const res: VariantResult = { variant, body_bytes: body.length, latency };
        if (variant !== 'direct' && pid !== undefined) {
          const cpu0 = cpuSeconds(pid);
          const main0 = child ? mainThreadCpuSeconds(pid) : 0;
          const sat = wrk(port, bodyFile, SATURATION_S);
          const cpu = cpuSeconds(pid) - cpu0;
          const requests = Math.max(1, sat.req_per_s * SATURATION_S);
          sat.cpu_us_per_req = Math.round((cpu * 1e6) / requests);
          if (child)
            sat.main_thread_cpu_us_per_req = Math.round(((mainThreadCpuSeconds(pid) - main0) * 1e6) / requests);
          res.saturation = sat;
        }
        if (child) {
          const rss = rssOf(child.pid);
          res.rss_peak_mb = Math.round(rss.peak);
          res.rss_end_mb = Math.round(rss.now);
          res.tee = (await child.ask('stats')).stats as Record<string, unknown>;
        }
        console.error(`sidecar bench: ${size} B ${variant}: ${JSON.stringify(res)}`);
        return res;
      };
      const direct = await measure('direct', upstream.port);
      results.push(direct);
      results.push(await measure('nginx', proxy.port, undefined, proxy.pid));
      for (const variant of ['tee_off', 'tee_on', 'tee_on_same_thread', 'tee_on_kafka_down'] as const) {
        const child = await spawnSidecar({
          upstream: upstreamUrl,
          tee: variant !== 'tee_off',
          brokers: kafka.brokers,
          publishInWorker: variant !== 'tee_on_same_thread',
        });
        const port = Number(new URL(child.url).port);
        if (variant === 'tee_on_kafka_down') await kafka.down(1);
        try {
          results.push(await measure(variant, port, child, child.pid));
        } finally {
          if (variant === 'tee_on_kafka_down') await kafka.up(1);
          const last = await child.stop();
          const r = results[results.length - 1]!;
          if (r.variant === variant) r.tee = { ...(last.stats as Record<string, unknown>) };
        }
      }
      for (const r of results) {
        if (r.body_bytes !== body.length || r.variant === 'direct') continue;
        r.added_p50_ms = Math.round((r.latency.p50_ms - direct.latency.p50_ms) * 1000) / 1000;
        r.added_p99_ms = Math.round((r.latency.p99_ms - direct.latency.p99_ms) * 1000) / 1000;
      }
    }
  } finally {
    await kafka.stop();
    await proxy.stop();
    await upstream.stop();
    rmSync(tmp, { recursive: true, force: true });
  }

  const load1 = loadavg();
  const targets = [1024, 64 * 1024].flatMap((size) => {
    const get = (v: Variant): VariantResult | undefined =>
      results.find((r) => r.variant === v && Math.abs(r.body_bytes - size) < size / 2);
    const nginx = get('nginx');
    const off = get('tee_off');
    const on = get('tee_on');
    const down = get('tee_on_kafka_down');
    const sidecars = [off, on, down].filter((x): x is VariantResult => x !== undefined);
    const rows = [
      {
        size,
        target: 'sidecar (tee on) added p99 ≤ 2.5× nginx added p99',
        value: ratio(on?.added_p99_ms, nginx?.added_p99_ms),
        limit: 2.5,
        met: ratio(on?.added_p99_ms, nginx?.added_p99_ms) <= 2.5,
      },
      {
        size,
        target: 'sidecar (tee on) saturation ≥ 0.35× nginx (one core each)',
        value: ratio(on?.saturation?.req_per_s, nginx?.saturation?.req_per_s),
        limit: 0.35,
        met: ratio(on?.saturation?.req_per_s, nginx?.saturation?.req_per_s) >= 0.35,
      },
      {
        size,
        target: '(same, from CPU time per request: nginx µs/req ÷ sidecar µs/req — less sensitive to other load)',
        value: ratio(nginx?.saturation?.cpu_us_per_req, on?.saturation?.cpu_us_per_req),
        limit: 0.35,
        met: ratio(nginx?.saturation?.cpu_us_per_req, on?.saturation?.cpu_us_per_req) >= 0.35,
      },
      {
        size,
        target: 'tee-on p99 ≤ 1.05× tee-off p99',
        value: ratio(on?.latency.p99_ms, off?.latency.p99_ms),
        limit: 1.05,
        met: ratio(on?.latency.p99_ms, off?.latency.p99_ms) <= 1.05,
      },
      {
        size,
        target: 'Kafka-down p99 ≤ 1.10× tee-off p99, zero errors',
        value: ratio(down?.latency.p99_ms, off?.latency.p99_ms),
        limit: 1.1,
        met:
          ratio(down?.latency.p99_ms, off?.latency.p99_ms) <= 1.1 &&
          down?.latency.errors === 0 &&
          down?.saturation?.errors === 0,
      },
      {
        size,
        target: 'sidecar peak RSS ≤ 150 MB',
        value: Math.max(...sidecars.map((s) => s.rss_peak_mb ?? NaN)),
        limit: 150,
        met: Math.max(...sidecars.map((s) => s.rss_peak_mb ?? NaN)) <= 150,
      },
    ];
    return rows;
  });

  const out = {
    generated_at: new Date().toISOString(),
    machine: {
      cpus: 2,
      load_average_start: load0.map((x) => Math.round(x * 100) / 100),
      load_average_end: load1.map((x) => Math.round(x * 100) / 100),
    },
    setup: {
      rate_req_per_s: RATE,
      connections: CONNECTIONS,
      latency_seconds: LATENCY_S,
      saturation_seconds: SATURATION_S,
      upstream: 'nginx 1 worker, fixed V2 JSON response (return 200), CPU 1',
      proxy_cpu: 0,
      load_generator: 'open-loop raw keep-alive sockets (latency), wrk -t1 -c16 (saturation), CPU 1',
      nginx_proxy:
        'worker_processes 1, proxy_pass with upstream keepalive 64, proxy_http_version 1.1, proxy_request_buffering off',
      kafka: 'librdkafka mock cluster, 1 broker; tee_on_kafka_down takes the broker down before the run',
    },
    results,
    targets,
  };
  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  writeFileSync(join(root, 'bench', 'results', 'sidecar.json'), `${JSON.stringify(out, null, 2)}\n`);
  const md: string[] = [
    '# Sidecar benchmark',
    '',
    `Generated ${out.generated_at}. ${RATE} req/s open loop over ${CONNECTIONS} keep-alive connections for ${LATENCY_S} s (after ${WARMUP_S} s warm-up); saturation with \`wrk -t1 -c${CONNECTIONS} -d${SATURATION_S}s\`. Proxy under test pinned to CPU 0, upstream (nginx \`return 200\`), load generators and Kafka mock on CPU 1. Load average at start ${out.machine.load_average_start.join(' / ')}, at end ${out.machine.load_average_end.join(' / ')} (2 cores shared with other work: numbers are noisy).`,
    '',
    '| body | variant | p50 ms | p99 ms | added p50 ms | added p99 ms | errors | saturation req/s | sat. errors | proxy CPU µs/req | main thread CPU µs/req | peak RSS MB |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.body_bytes} | ${r.variant} | ${r.latency.p50_ms} | ${r.latency.p99_ms} | ${r.added_p50_ms ?? ''} | ${r.added_p99_ms ?? ''} | ${r.latency.errors} | ${r.saturation?.req_per_s ?? ''} | ${r.saturation?.errors ?? ''} | ${r.saturation?.cpu_us_per_req ?? ''} | ${r.saturation?.main_thread_cpu_us_per_req ?? ''} | ${r.rss_peak_mb ?? ''} |`,
    ),
    '',
    '## Targets (issue 3)',
    '',
    '| body | target | measured | limit | met |',
    '|---:|---|---:|---:|---|',
    ...targets.map((t) => `| ${t.size} | ${t.target} | ${t.value} | ${t.limit} | ${t.met ? 'yes' : '**no**'} |`),
    '',
    '## Reading these numbers',
    '',
    '- The machine has 2 cores shared with other jobs (load average above). Every process here is',
    '  descheduled for milliseconds at a time, which dominates the p99 columns of every variant, nginx',
    '  included, and inflates CPU time per request. Compare variants within one run, and prefer p50 and',
    '  CPU µs/request over p99 and saturation req/s.',
    '- DESIGN §5 measured, on an idle machine, nginx at 72–75k req/s and an undici `Pool.stream` proxy',
    '  at 16–17.5k req/s (≈0.23×): a single-threaded Node proxy stays below the 0.35× saturation target',
    "  on one core; the sidecar's hot path (raw `node:http`, undici dispatch, no parsing, one Map lookup",
    '  per metric series) sits at that ceiling.',
    '- With the tee on, most of the extra CPU is kafkajs encoding and checksumming every record. `tee_on`',
    '  (and `tee_on_kafka_down`) run the producer in a worker thread (`sidecar.publishInWorker`, the',
    '  default); `tee_on_same_thread` runs it on the event loop that serves requests, as before. The whole',
    '  process is pinned to one core, so the worker (10 nicer than the main thread) competes for it: compare the',
    '  main-thread column (work on the request path) with the process column (all threads). Under',
    '  overload the flusher holds back (`maxLoopUtilization`) and the byte-bounded buffer overflows as',
    '  `buffer_full` instead of slowing requests: drops are counted, requests do not fail.',
    '- Peak RSS includes the tee buffer (`sidecar.maxTeeBufferBytes`, 64 MiB by default) and the Kafka',
    "  producer's batches; lower the buffer bound to trade capture completeness under overload for memory.",
    '',
    'Tee accounting per sidecar run (captured = sent + dropped + buffered):',
    '',
    ...results.filter((r) => r.tee).map((r) => `- ${r.body_bytes} B ${r.variant}: \`${JSON.stringify(r.tee)}\``),
    '',
  ];
  writeFileSync(join(root, 'bench', 'results', 'sidecar.md'), md.join('\n'));
  process.stdout.write(md.join('\n'));
}

if (process.argv[2] === '--child-sidecar') {
  await childSidecar(JSON.parse(process.argv[3] ?? '{}') as ChildOptions);
}
