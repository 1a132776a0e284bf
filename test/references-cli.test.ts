import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { DriftDetection } from '../src/drift/index.js';
import { repoRoot } from './support/report-files.js';
import { referenceExpectations, referenceFixtureDir } from './support/reference-fixtures.js';

const bin = join(repoRoot, 'bin', 'modelwatch.js');
const child = join(repoRoot, 'test', 'support', 'reference-store-child.ts');
const dir = mkdtempSync(join(tmpdir(), 'mw-reference-cli-'));
const chdb = join(dir, 'chdb');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HOUR = 3_600_000;
const T0 = Math.floor(Date.now() / HOUR) * HOUR - 10 * HOUR;
const CUR = T0 + 5 * HOUR;
const expected = referenceExpectations();

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], cwd = dir): Promise<Result> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MODELWATCH_')));
  const p = spawn(process.execPath, args, {
    cwd,
    env: { ...clean, MODELWATCH_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // Each start compiles the sources through tsx (no fresh dist/) and opens chdb: slow on a loaded machine.
  const kill = setTimeout(() => p.kill('SIGKILL'), 240_000);
  return new Promise((resolve) =>
    p.on('close', (code) => {
      clearTimeout(kill);
      resolve({ code, stdout, stderr });
    }),
  );
}

const config = join(dir, 'config.yaml');
writeFileSync(config, `clickhouse:\n  url: chdb:${chdb}\n`);
const cli = (...args: string[]): Promise<Result> => run([bin, 'reference', ...args, '--config', config]);

async function drift(): Promise<DriftDetection> {
  // From the repository, where `--import tsx` resolves.
  const r = await run(
    ['--import', 'tsx', child, 'drift', chdb, 'm', String(CUR), String(CUR + HOUR), String(CUR + 2 * HOUR)],
    repoRoot,
  );
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as DriftDetection;
}

function expectScipy(d: DriftDetection, which: 'default' | 'window' | 'cli'): void {
  const e = expected.references[which];
  expect(d.reference.rows).toBe(e.rows);
  const x = d.features.find((f) => f.name === 'x')!;
  const c = d.features.find((f) => f.name === 'c')!;
  expect(x.method).toBe('ks');
  expect(x.stats.ks?.statistic).toBeCloseTo(e.x.statistic, 12);
  expect(Math.abs(x.stats.ks!.p_value - e.x.p_value)).toBeLessThanOrEqual(1e-9 * e.x.p_value + 1e-15);
  expect(c.method).toBe('chi_square');
  expect(Math.abs(c.stats.chi_square!.p_value - e.c.p_value)).toBeLessThanOrEqual(1e-9 * e.c.p_value + 1e-15);
}

describe('modelwatch reference', () => {
  it('create --file, create --from/--to --no-activate, list and activate each change the next comparison', async () => {
    const ins = await run(['--import', 'tsx', child, 'insert', chdb, 'm', String(T0)], repoRoot);
    expect(ins.code, ins.stderr).toBe(0);
    expectScipy(await drift(), 'default');

    const file = await cli('create', '--model', 'm', '--file', join(referenceFixtureDir, 'cli_ref.csv'));
    expect(file.code, file.stderr).toBe(0);
    const fileRef = JSON.parse(file.stdout) as {
      id: string;
      active: boolean;
      source: string;
      methods: Array<{ name: string; method: string }>;
    };
    expect(fileRef).toMatchObject({ active: true, source: 'file' });
    expect(fileRef.methods.map((m) => m.method).sort()).toEqual(['chi_square', 'ks']);
    expectScipy(await drift(), 'cli');

    const win = await cli(
      'create',
      '--model',
      'm',
      '--from',
      new Date(T0 + HOUR).toISOString(),
      '--to',
      String(T0 + HOUR + 400_000),
      '--no-activate',
    );
    expect(win.code, win.stderr).toBe(0);
    const winRef = JSON.parse(win.stdout) as { id: string; active: boolean; rows: number };
    expect(winRef).toMatchObject({ active: false, rows: 400 });
    expectScipy(await drift(), 'cli');

    const list = await cli('list', '--model', 'm');
    expect(list.code, list.stderr).toBe(0);
    const listed = JSON.parse(list.stdout) as { references: Array<{ id: string; active: boolean; kind: string }> };
    expect(listed.references.map((r) => [r.id, r.active])).toEqual([
      [winRef.id, false],
      [fileRef.id, true],
      [expect.any(String), false],
    ]);

    const act = await cli('activate', '--model', 'm', '--id', winRef.id);
    expect(act.code, act.stderr).toBe(0);
    expect(JSON.parse(act.stdout)).toMatchObject({ id: winRef.id, active: true });
    expectScipy(await drift(), 'window');
  }, 600_000);

  it('answers usage and input errors with one line and exit 2', async () => {
    const both = await cli('create', '--model', 'm', '--file', 'x.csv', '--from', '1');
    expect(both.code).toBe(2);
    const missing = await cli('create', '--model', 'm', '--file', join(dir, 'nope.csv'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^modelwatch reference: .*no such file/m);
    const unknown = await cli('activate', '--model', 'm', '--id', 'nope');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/reference not found/);
  }, 300_000);
});
