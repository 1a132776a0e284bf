import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from './support/report-files.js';

const bin = join(repoRoot, 'bin', 'modelwatch.js');
const dir = mkdtempSync(join(tmpdir(), 'mw-detect-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; with `stopOn`, sends SIGTERM once stderr matches it (the process logs at debug level then). */
function run(args: string[], stopOn?: RegExp): Promise<Result> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MODELWATCH_')));
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: dir,
    env: { ...clean, MODELWATCH_LOG_LEVEL: stopOn ? 'debug' : 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  let termSent = false;
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stopOn && !termSent && stopOn.test(stderr)) {
      termSent = true;
      child.kill('SIGTERM');
    }
  });
  const kill = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(kill);
      resolve({ code, stdout, stderr });
    }),
  );
}

describe('modelwatch detect', () => {
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      `clickhouse:`,
      `  url: chdb:${join(dir, 'chdb')}`,
      `detect:`,
      `  intervalMs: 200`,
      `models:`,
      `  churn:`,
      `    task: binary`,
      `    prediction: { tensor: prob }`,
      '',
    ].join('\n'),
  );

  it('--help prints the usage', async () => {
    const r = await run(['detect', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--once');
  });

  it('--once runs every configured model once and prints the runs as JSON', async () => {
    const r = await run(['detect', '--once', '--config', config]);
    expect(r.stderr).not.toContain('"level":"error"');
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout) as {
      runs: Array<{ model: string; status: string; rows: number; performance: unknown }>;
    };
    expect(body.runs.map((x) => x.model)).toEqual(['churn']);
    // No traffic yet: the run records an empty window.
    expect(body.runs[0]).toMatchObject({ status: 'no_data', rows: 0, performance: null });
  });

  it('runs on its cadence and exits 0 on SIGTERM', async () => {
    // Wait for two runs (one per 200 ms interval; no traffic yet, so no_data) before stopping.
    const r = await run(['detect', '--config', config], /"msg":"detect run"[\s\S]*"msg":"detect run"/);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('shutting down');
    expect(r.stderr).not.toContain('"level":"error"');
  });

  it('rejects an unknown flag', async () => {
    const r = await run(['detect', '--nope']);
    expect(r.code).not.toBe(0);
  });
});
