// Where `modelwatch up`'s CPU goes per captured 1-row request, by thread: the process under a paced load
// through its sidecar (nginx upstream answering with a matching 1-row V2 response), CPU time of every
// thread read from /proc/PID/task/TID/stat over the steady phase, grouped by thread name.
//
//   npx tsx bench/ingest/up-threads.ts [rate=1000] [seconds=8] [warm-up seconds=3]
//
// UP_THREADS_ROOT runs `bin/modelwatch.js` of another checkout (e.g. a copy of the build before a change, for
// alternating A/B runs); UP_THREADS_NODE_FLAGS adds node flags (space-separated, e.g. `--cpu-prof`);
// UP_THREADS_CONFIG (JSON) is merged into the config file, one level deep (e.g. `{"ingest":{"lingerRecords":3000}}`).
//
// Prints one line per thread group (µs of CPU per request) and a JSON summary. Run after `npm run build`
// (bin/modelwatch.js runs dist/ when it is fresh).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { freePort, INFER_PATH, startUpstream, v2Body, waitForPort } from '../sidecar/procs.js';

const repoRoot = process.env.UP_THREADS_ROOT ?? join(import.meta.dirname, '..', '..');
const nodeFlags = (process.env.UP_THREADS_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '');
const extraConfig = JSON.parse(process.env.UP_THREADS_CONFIG ?? '{}') as Record<string, Record<string, unknown>>;
const rate = Number(process.argv[2] ?? 1000);
const seconds = Number(process.argv[3] ?? 8);
const warmup = Number(process.argv[4] ?? 3);
const ticks = 100; // USER_HZ

interface TaskCpu {
  name: string;
  ticks: number;
}

function tasks(pid: number): Map<number, TaskCpu> {
  const out = new Map<number, TaskCpu>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), { name, ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/** CPU ticks of the whole process, threads that already ended included (utime + stime of /proc/PID/stat). */
function processTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** Thread groups: the main thread, each other thread named `node` (worker threads) alone, others by name. */
function group(pid: number, tid: number, name: string): string {
  if (tid === pid) return 'main (ingest, API, detect)';
  if (name === 'node' || name.startsWith('WorkerThread')) return `${name} tid ${tid} (worker thread)`;
  return name.replace(/[0-9]+$/, '');
}

async function main(): Promise<void> {
  const one = v2Body(0);
  const upstream = await startUpstream([one], 1);
  const dir = mkdtempSync(join(tmpdir(), 'mw-up-threads-'));
  const port = await freePort();
  const apiPort = await freePort();
  const config = join(dir, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      ...extraConfig,
      logLevel: 'warn',
      clickhouse: { ...extraConfig.clickhouse, url: `chdb:${join(dir, 'chdb')}` },
      sidecar: { ...extraConfig.sidecar, upstream: `http://127.0.0.1:${upstream.port}`, listen: `127.0.0.1:${port}` },
      api: { ...extraConfig.api, listen: `127.0.0.1:${apiPort}` },
    }),
  );
  const child = spawn(
    process.execPath,
    [...nodeFlags, join(repoRoot, 'bin', 'modelwatch.js'), 'up', '--config', config],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const pid = child.pid!;
  try {
    if (!(await waitForPort(port, 120_000))) throw new Error('modelwatch up did not listen');
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 16 });
    let done = 0;
    let failed = 0;
    const fire = (): void => {
      pool
        .request({ path: INFER_PATH, method: 'POST', headers: { 'content-type': 'application/json' }, body: one.body })
        .then(async (r) => {
          await r.body.dump();
          if (r.statusCode === 200) done++;
          else failed++;
        })
        .catch(() => failed++);
    };
    const pace = async (s: number): Promise<void> => {
      const t0 = performance.now();
      let sent = 0;
      while (performance.now() - t0 < s * 1000) {
        const due = Math.floor(((performance.now() - t0) / 1000) * rate);
        while (sent < due) {
          fire();
          sent++;
        }
        await new Promise((r) => setTimeout(r, 1));
      }
    };
    process.stderr.write(`warm-up ${warmup} s\n`);
    await pace(warmup);
    const scrape = async (): Promise<(name: string) => number> => {
      const text = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
      return (name) => Number(text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm'))?.[1] ?? NaN);
    };
    const m0 = await scrape();
    const before = tasks(pid);
    const processBefore = processTicks(pid);
    const doneBefore = done;
    const load0 = loadavg()[0]!;
    process.stderr.write(`steady ${seconds} s at ${rate} req/s\n`);
    await pace(seconds);
    const after = tasks(pid);
    const processTotal = processTicks(pid) - processBefore;
    const m1 = await scrape();
    // What ingest did during the phase: a run where it fell behind stored less, and its CPU per request is lower.
    const during = (name: string): number => m1(name) - m0(name);
    const requests = done - doneBefore;
    const groups = new Map<string, number>();
    for (const [tid, t] of after) {
      const d = t.ticks - (before.get(tid)?.ticks ?? 0);
      if (d <= 0) continue;
      const g = group(pid, tid, t.name);
      groups.set(g, (groups.get(g) ?? 0) + d);
    }
    const usPerReq = (tk: number): number => Math.round(((tk / ticks) * 1e6) / Math.max(1, requests));
    let total = 0;
    const rows = [...groups.entries()].sort((a, b) => b[1] - a[1]);
    for (const [g, tk] of rows) {
      total += tk;
      process.stdout.write(`${String(usPerReq(tk)).padStart(6)} µs/req  ${g}\n`);
    }
    // Threads that ended during the phase (the engine's pool lets idle threads go) are missing from the
    // per-thread sum; the process total keeps their CPU.
    const ended = Math.max(0, processTotal - total);
    process.stdout.write(`${String(usPerReq(ended)).padStart(6)} µs/req  threads that ended during the phase\n`);
    process.stdout.write(
      `${String(usPerReq(processTotal)).padStart(6)} µs/req  process total (${requests} requests, ${failed} failed; ` +
        `during the phase: ${during('modelwatch_tee_captured_total')} captured, ` +
        `${during('modelwatch_ingest_rows_inserted_total')} rows stored in ${during('modelwatch_ingest_batches_total')} batches)\n`,
    );
    process.stdout.write(
      JSON.stringify({
        rate,
        seconds,
        requests,
        failed,
        load1: [load0, loadavg()[0]],
        total_us_per_req: usPerReq(processTotal),
        ended_threads_us_per_req: usPerReq(ended),
        groups: Object.fromEntries(rows.map(([g, tk]) => [g, usPerReq(tk)])),
        ingest_batches: during('modelwatch_ingest_batches_total'),
        ingest_rows: during('modelwatch_ingest_rows_inserted_total'),
        tee_captured: during('modelwatch_tee_captured_total'),
      }) + '\n',
    );
    await pool.close();
  } finally {
    child.kill('SIGTERM');
    await new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
    await upstream.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
