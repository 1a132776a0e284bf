// Stopping the process a user or supervisor started stops the server: SIGTERM to the PID of
// `node bin/modelwatch.js up` (what the Dockerfile, compose and a systemd unit run) and to the PID of
// `npx modelwatch up` (npm does not pass the signal on to its child) both end with the ports free and
// the embedded store released, so a second start on the same store works.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { sleep } from '../src/common/index.js';
import { freePort } from './support/api.js';
import { repoRoot } from './support/report-files.js';

// Each start loads chdb (and, without a build, tsx); on a loaded machine that takes tens of seconds.
vi.setConfig({ testTimeout: 240_000 });

const dir = mkdtempSync(join(tmpdir(), 'mw-sigterm-'));
const storeUrl = `chdb:${join(dir, 'chdb')}`;

/** PIDs of live processes whose environment names this file's store: only processes these tests started. */
function ourProcesses(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (
        readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(`MODELWATCH_CLICKHOUSE_URL=${storeUrl}`)
      ) {
        pids.push(Number(name));
      }
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

afterAll(() => {
  // A failed assertion must not leave a server behind.
  for (const pid of ourProcesses()) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface Started {
  child: ChildProcess;
  exited: Promise<number | null>;
  output: () => string;
}

function start(command: string, args: string[], ports: { api: number; sidecar: number }): Started {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('MODELWATCH_') && !k.startsWith('npm_')),
  );
  const child = spawn(command, args, {
    cwd: repoRoot,
    env: {
      ...clean,
      MODELWATCH_LOG_LEVEL: 'warn',
      MODELWATCH_CLICKHOUSE_URL: storeUrl,
      MODELWATCH_API_LISTEN: `127.0.0.1:${ports.api}`,
      MODELWATCH_SIDECAR_LISTEN: `127.0.0.1:${ports.sidecar}`,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => out };
}

async function until(
  what: string,
  fn: () => Promise<boolean>,
  s: Started | undefined,
  timeoutMs = 150_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; output:\n${s?.output() ?? ''}`);
    if (s && s.child.exitCode !== null)
      throw new Error(`exited ${s.child.exitCode} before ${what}; output:\n${s.output()}`);
    await sleep(100);
  }
}

/** True when nothing listens on the port (a listener can bind it again). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

async function apiServes(api: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${api}/api/v1/models`);
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

async function ports(): Promise<{ api: number; sidecar: number; upstream: number }> {
  return { api: await freePort(), sidecar: await freePort(), upstream: await freePort() };
}

function nodeUp(p: { api: number; sidecar: number; upstream: number }): Started {
  const bin = join(repoRoot, 'bin', 'modelwatch.js');
  return start(process.execPath, [bin, 'up', '--upstream', `http://127.0.0.1:${p.upstream}`], p);
}

/** Starts `node bin/modelwatch.js up` on the shared store, checks it serves, stops it with SIGTERM. */
async function startServeAndTerm(): Promise<void> {
  const p = await ports();
  const s = nodeUp(p);
  await until('the API to answer', () => apiServes(p.api), s);
  // The URLs are printed once every role has started, which may be after the API already answers.
  await until(
    'the URLs to be printed',
    () => Promise.resolve(s.output().includes(`sidecar: http://127.0.0.1:${p.sidecar}\n`)),
    s,
  );
  s.child.kill('SIGTERM');
  expect(await s.exited).toBe(0);
  expect(await portFree(p.api)).toBe(true);
  expect(await portFree(p.sidecar)).toBe(true);
}

describe('SIGTERM stops the server', () => {
  it('node bin/modelwatch.js up exits 0 on SIGTERM, frees its ports, and a second start opens the same store', async () => {
    await startServeAndTerm();
    await startServeAndTerm();
    expect(ourProcesses()).toEqual([]);
  });

  it('SIGTERM to the PID of `npx modelwatch up` stops the server npm started', async () => {
    const p = await ports();
    const npx = start('npx', ['--yes', 'modelwatch', 'up', '--upstream', `http://127.0.0.1:${p.upstream}`], p);
    await until('the API to answer', () => apiServes(p.api), npx);
    // npm, the shell it runs and the node server: the server is not npm's PID.
    expect(ourProcesses().length).toBeGreaterThanOrEqual(2);
    npx.child.kill('SIGTERM');
    await npx.exited;
    await until('the server to stop', () => Promise.resolve(ourProcesses().length === 0), undefined, 60_000);
    expect(await portFree(p.api)).toBe(true);
    expect(await portFree(p.sidecar)).toBe(true);
    // The store lock went with it.
    await startServeAndTerm();
  });
});
