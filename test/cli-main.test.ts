import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { repoRoot } from './support/report-files.js';
import { freePort } from './support/api.js';

const bin = join(repoRoot, 'bin', 'modelwatch.js');
// Each test spawns the CLI through tsx; on a loaded machine one start-up can take tens of seconds.
vi.setConfig({ testTimeout: 180_000 });

const dir = mkdtempSync(join(tmpdir(), 'mw-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The parent's environment without MODELWATCH_* (so a developer's settings cannot leak in), plus `extra`. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MODELWATCH_')));
  return { ...clean, MODELWATCH_LOG_LEVEL: 'warn', ...extra };
}

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function start(
  args: string[],
  extraEnv: Record<string, string> = {},
): { child: ChildProcess; done: Promise<Result>; out: () => string } {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: dir,
    env: env(extraEnv),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Result>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done, out: () => stdout };
}

async function run(args: string[], extraEnv: Record<string, string> = {}): Promise<Result> {
  const { child, done } = start(args, extraEnv);
  const timer = setTimeout(() => child.kill('SIGKILL'), 150_000);
  const r = await done;
  clearTimeout(timer);
  return r;
}

/** Resolves with the first stdout line matching `re`; rejects if the process exits first or after 150 s. */
function waitForLine(p: ReturnType<typeof start>, re: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const m = re.exec(p.out());
      if (m) {
        cleanup();
        resolve(m);
      }
      return m !== null;
    };
    const onData = (): void => void check();
    const onExit = (): void => {
      cleanup();
      reject(new Error(`exited before printing ${re}: ${p.out()}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out waiting for ${re}`));
    }, 150_000);
    const cleanup = (): void => {
      clearTimeout(timer);
      p.child.stdout?.off('data', onData);
      p.child.off('exit', onExit);
    };
    p.child.stdout?.on('data', onData);
    p.child.once('exit', onExit);
    check();
  });
}

describe('cli: usage', () => {
  it('--help lists the commands and exits 0', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: modelwatch <command>/);
    for (const c of ['up', 'ingest', 'api']) expect(r.stdout).toMatch(new RegExp(`^  ${c} +\\S`, 'm'));
    expect(r.stderr).toBe('');
  });

  it("help COMMAND and COMMAND --help print that command's usage", async () => {
    const a = await run(['help', 'up']);
    expect(a.code).toBe(0);
    expect(a.stdout).toContain('modelwatch up [--config FILE] [--upstream URL]');
    const b = await run(['api', '--help']);
    expect(b.code).toBe(0);
    expect(b.stdout).toContain('modelwatch api [--config FILE]');
  });

  it('--version prints the package version', async () => {
    const r = await run(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('modelwatch 0.1.0\n');
  });

  it.each([
    [['frobnicate'], 'unknown command "frobnicate"'],
    [['--frobnicate'], 'unknown flag "--frobnicate"'],
    [[], 'no command given'],
  ])('%j prints usage on stderr and exits 2', async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr).toContain('usage: modelwatch <command>');
    expect(r.stdout).toBe('');
  });

  it.each([
    [['up', '--nope'], "Unknown option '--nope'"],
    [['up', '--upstream'], "Option '--upstream <value>' argument missing"],
    [['up', 'extra'], 'positional'],
    [['up', '--grpc-upstream', '127.0.0.1:9000'], '--grpc-upstream and --grpc-listen go together'],
  ])('%j is a usage error (exit 2)', async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr).toContain('usage: modelwatch up');
  });
});

describe('cli: bad configuration exits 2 with one line naming the key', () => {
  it.each([
    ['an unknown key in the file', 'api:\n  lissen: 1\n', {}, 'unknown key api.lissen'],
    ['a bad value in the file', 'sidecar:\n  sampling: 7\n', {}, 'sidecar.sampling'],
    ['a bad environment variable', '', { MODELWATCH_API_LISTEN: 'everywhere' }, 'MODELWATCH_API_LISTEN'],
  ])('%s', async (_what, text, extraEnv: Record<string, string>, key) => {
    const path = join(dir, `bad-${key}.yaml`);
    writeFileSync(path, text);
    const r = await run(['up', '--config', path], extraEnv);
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(key);
    expect(r.stdout).toBe('');
  });

  it('names the listen key when the API port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const addr = blocker.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
    try {
      const r = await run(['api'], {
        MODELWATCH_CLICKHOUSE_URL: `chdb:${join(dir, 'chdb-busy')}`,
        MODELWATCH_API_LISTEN: `127.0.0.1:${port}`,
      });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/api\.listen: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});

describe('cli: serving', () => {
  it.each([
    ['up', 'SIGTERM'],
    ['api', 'SIGINT'],
  ] as const)('%s prints the API URL, serves it, and exits 0 on %s', async (command, signal) => {
    const port = await freePort();
    const p = start([command], {
      MODELWATCH_CLICKHOUSE_URL: `chdb:${join(dir, `chdb-${command}`)}`,
      MODELWATCH_API_LISTEN: `127.0.0.1:${port}`,
    });
    try {
      const m = await waitForLine(p, /^api: (http:\/\/\S+)$/m);
      expect(m[1]).toBe(`http://127.0.0.1:${port}`);
      const health = await fetch(`${m[1]}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok' });
      expect((await fetch(`${m[1]}/readyz`)).status).toBe(200);
      expect(await (await fetch(`${m[1]}/api/v1/models`)).json()).toEqual({ models: [] });
      const stopAt = Date.now();
      p.child.kill(signal);
      const r = await p.done;
      expect(r.signal).toBeNull();
      expect(r.code).toBe(0);
      expect(Date.now() - stopAt).toBeLessThan(60_000);
      // The port is free again: the server was closed, not abandoned.
      const again = createServer();
      await new Promise<void>((resolve, reject) => {
        again.once('error', reject);
        again.listen(port, '127.0.0.1', resolve);
      });
      await new Promise((resolve) => again.close(resolve));
    } finally {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    }
  });
});
