// Helpers of the sidecar benchmark: Debian's nginx as upstream and as the reverse-proxy baseline, V2
// bodies and answers, wrk for saturation, and per-process CPU and peak RSS from /proc.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The inference path every request of the benchmark goes to. */
export const INFER_PATH = '/v2/models/classifier/infer';

/** user + system CPU seconds of a process so far, every thread (/proc/PID/stat, clock ticks of 10 ms). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * How much the benchmark's own processes are favoured over other work on the machine: each one runs in
 * its own session (so in its own scheduler autogroup where the kernel groups by session, as this
 * machine's does) with the autogroup's and the process's nice value set to this (negative needs root;
 * refused silently otherwise). `SIDECAR_BENCH_NICE`, default -10; 0 keeps the normal priority.
 */
export const BENCH_NICE = Number(process.env.SIDECAR_BENCH_NICE ?? -10);

/** `SIDECAR_BENCH_RT`: run the bench's processes SCHED_RR at this priority (0: off). */
export const BENCH_RT_PRIORITY = Number(process.env.SIDECAR_BENCH_RT ?? 0);

/**
 * The command line running `cmd` pinned to `cpu` (a taskset CPU list), in a session of its own at
 * {@link BENCH_NICE}. Every step execs, so the spawned PID is the command's own.
 */
export function prioritized(cmd: string[], cpu: string): { file: string; args: string[] } {
  const nice = Number.isInteger(BENCH_NICE) ? Math.max(-20, Math.min(19, BENCH_NICE)) : 0;
  const pin = 'taskset -c "$0" "$@"';
  const niced =
    nice === 0 ? `exec ${pin}` : `echo ${nice} > /proc/self/autogroup 2>/dev/null; exec nice -n ${nice} ${pin}`;
  const script =
    BENCH_RT_PRIORITY > 0
      ? `if chrt -r ${BENCH_RT_PRIORITY} true 2>/dev/null; then exec chrt -r ${BENCH_RT_PRIORITY} ${pin}; fi; ${niced}`
      : niced;
  return { file: 'setsid', args: ['sh', '-c', script, cpu, ...cmd] };
}

/**
 * Pins the main thread of process `pid` (a Node process's event loop) to `loopCpu` and lets every other
 * thread of it (V8's compiler, marking and sweeping helpers, libuv's pool, worker threads) run on
 * `otherCpus`. Pinning the whole process to one core puts those threads on the event loop's core, where
 * a deployment with a second core would not: a concurrent compile or marking job then delays the loop
 * by its whole length. Threads started later inherit the main thread's CPU: call again.
 */
export function placeThreads(pid: number, loopCpu: string, otherCpus: string): void {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return;
  }
  for (const tid of tids) {
    spawnSync('taskset', ['-pc', tid === String(pid) ? loopCpu : otherCpus, tid], { stdio: 'ignore' });
  }
}

/** Scheduler counters of a process (/proc/PID/task/TID/schedstat), ns. */
export interface SchedStat {
  /** Time its main thread (the event loop) was runnable but waited for a CPU. */
  mainWaitNs: number;
  /** The same summed over every thread. */
  waitNs: number;
  /** CPU time of every thread. */
  runNs: number;
  /** CPU time of the main thread (the event loop). */
  mainRunNs: number;
  /**
   * CPU time of the threads whose nice value differs from the main thread's: the Kafka tee's publisher
   * worker lowers its own priority, and no other thread of a Node process does.
   */
  nicedRunNs: number;
}

/** The nice value of one thread (/proc/PID/task/TID/stat, field 19). */
function threadNice(pid: number, tid: string): number {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

/** {@link SchedStat} of `pid` now (threads that exited since are not counted). */
export function schedStat(pid: number): SchedStat {
  const out: SchedStat = { mainWaitNs: 0, waitNs: 0, runNs: 0, mainRunNs: 0, nicedRunNs: 0 };
  let tids: string[];
  let mainNice: number;
  try {
    tids = readdirSync(`/proc/${pid}/task`);
    mainNice = threadNice(pid, String(pid));
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(' ').map(Number);
      out.runNs += run ?? 0;
      out.waitNs += wait ?? 0;
      if (tid === String(pid)) {
        out.mainWaitNs = wait ?? 0;
        out.mainRunNs = run ?? 0;
      } else if (threadNice(pid, tid) !== mainNice) out.nicedRunNs += run ?? 0;
    } catch {
      // The thread exited.
    }
  }
  return out;
}

/** Peak resident set size (VmHWM) since the process started or since {@link resetRssPeak}, MB. */
export function rssPeakMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) / 1024);
}

/** Resets a process's VmHWM to its current RSS (`5` into /proc/PID/clear_refs); false when refused. */
export function resetRssPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts connections on `port` (or after `timeoutMs`, false). */
export async function waitForPort(port: number, timeoutMs = 30_000): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/** A running nginx (its own process, one worker, no master). */
export interface Nginx {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** Starts Debian's nginx with `server` as the http block's servers, pinned to `cpu`. */
export async function startNginx(
  name: string,
  cpu: number,
  server: (port: number, dir: string) => string,
): Promise<Nginx> {
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
${server(port, dir)}
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const cmd = prioritized(['nginx', '-p', dir, '-c', join(dir, 'nginx.conf')], String(cpu));
  const child = spawn(cmd.file, cmd.args, { stdio: 'inherit' });
  if (!(await waitForPort(port, 10_000))) throw new Error(`nginx ${name} did not start (see ${dir}/error.log)`);
  return {
    port,
    // setsid, sh, nice and taskset exec nginx: same PID.
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGQUIT');
      await new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An nginx upstream answering each V2 request with a V2 response whose batch size matches the request's. */
export async function startUpstream(bodies: { body: Buffer; rows: number }[], cpu: number): Promise<Nginx> {
  // The answer is a static file chosen by the request's Content-Length (one per body, batch size
  // matching). nginx serves static files to GET only: `return 418` plus an `error_page` redirect
  // (which turns the method into GET) serves the file to the POST.
  return startNginx('upstream', cpu, (port, dir) => {
    mkdirSync(join(dir, 'answers'));
    for (const b of bodies) writeFileSync(join(dir, 'answers', `${b.body.length}.json`), v2Answer(b.rows));
    return `  open_file_cache max=16;
  open_file_cache_valid 1h;
  server {
    listen 127.0.0.1:${port};
    location = ${INFER_PATH} { error_page 418 =200 /answers/$http_content_length.json; return 418; }
    location /answers/ { internal; root ${dir}; default_type application/json; }
  }`;
  });
}

/** nginx as a reverse proxy to `upstreamPort`: keep-alive upstream, request body not buffered. */
export function startNginxProxy(upstreamPort: number, cpu: number): Promise<Nginx> {
  return startNginx(
    'proxy',
    cpu,
    (port) => `  upstream up { server 127.0.0.1:${upstreamPort}; keepalive 64; }
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
}

/**
 * A V2 JSON request (classifier input FP32 [rows,4]) of at most `bytes` bytes, and its row count;
 * `bytes` 0 gives the one-row request.
 */
export function v2Body(bytes: number): { body: Buffer; rows: number } {
  const row = [0.123456, -1.234567, 2.345678, 0.987654];
  const make = (n: number): Buffer =>
    Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'input', shape: [n, 4], datatype: 'FP32', data: Array.from({ length: n }, () => row).flat() }],
      }),
    );
  if (bytes === 0) return { body: make(1), rows: 1 };
  let n = 1;
  while (make(n * 2).length <= bytes) n *= 2;
  let lo = n;
  let hi = n * 2;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (make(mid).length <= bytes) lo = mid;
    else hi = mid;
  }
  return { body: make(lo), rows: lo };
}

/** The upstream's answer to a request of `rows` rows: probabilities FP32 [rows,2]. */
export function v2Answer(rows: number): string {
  return JSON.stringify({
    model_name: 'classifier',
    model_version: '1',
    outputs: [
      {
        name: 'probabilities',
        datatype: 'FP32',
        shape: [rows, 2],
        data: Array.from({ length: rows }, (_, i) => (i % 2 === 0 ? [0.25, 0.75] : [0.5, 0.5])).flat(),
      },
    ],
  });
}

/** What `wrk` measured. */
export interface SaturationResult {
  req_per_s: number;
  requests: number;
  errors: number;
}

/**
 * `wrk -t1 -cCONNECTIONS` POSTing the body in `bodyFile` for `seconds` (closed loop: saturation), on
 * `cpu` at {@link BENCH_NICE}. Asynchronous, so the bench keeps reading the proxies' diagnostics lines
 * (and stamping them with the time they arrived) while it runs.
 */
export async function wrk(
  port: number,
  bodyFile: string,
  seconds: number,
  connections: number,
  cpu: string,
): Promise<SaturationResult> {
  const script = join(tmpdir(), `mw-wrk-${process.pid}.lua`);
  writeFileSync(
    script,
    `local f = io.open("${bodyFile}", "rb")\nwrk.method = "POST"\nwrk.body = f:read("*a")\nf:close()\nwrk.headers["Content-Type"] = "application/json"\n`,
  );
  const cmd = prioritized(
    ['wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '-s', script, `http://127.0.0.1:${port}${INFER_PATH}`],
    cpu,
  );
  const child = spawn(cmd.file, cmd.args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  await new Promise<void>((resolve) => child.once('close', () => resolve()));
  rmSync(script, { force: true });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const sockErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return { req_per_s: Math.round(rps), requests, errors: non2xx + sockErrors };
}
