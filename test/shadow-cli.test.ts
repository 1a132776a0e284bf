// `modelwatch shadow` as a user runs it: traffic stored in an embedded store by ingest, then the CLI (a
// child process on the same chdb path) replays it through candidate files and prints JSON or a table.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLogisticRegression } from '../src/shadow/index.js';
import { createStore } from '../src/store/index.js';
import { modelsFixture } from './fixtures/shadow/load.js';
import { repoRoot } from './support/report-files.js';
import { ingestCalls, productionCalls } from './support/shadow.js';

const bin = join(repoRoot, 'bin', 'modelwatch.js');
const dir = mkdtempSync(join(tmpdir(), 'mw-shadow-cli-'));
const fx = modelsFixture();
const config = join(dir, 'config.yaml');

beforeAll(async () => {
  writeFileSync(join(dir, 'lr.onnx'), buildLogisticRegression(fx.params.lr));
  writeFileSync(join(dir, 'lr-perturbed.onnx'), buildLogisticRegression(fx.params.lr_perturbed));
  writeFileSync(join(dir, 'corrupt.onnx'), Buffer.from('not a model'));
  writeFileSync(config, [`clickhouse:`, `  url: chdb:${join(dir, 'chdb')}`, `shadow:`, `  sessions: 1`, ''].join('\n'));
  const store = createStore({ url: `chdb:${join(dir, 'chdb')}` });
  await store.migrate();
  const { calls } = await productionCalls(
    'lr',
    buildLogisticRegression(fx.params.lr),
    fx.inputs.rows,
    Date.now() - 3_600_000,
  );
  await ingestCalls(store, calls);
  await store.close();
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MODELWATCH_')));
  const child = spawn(process.execPath, [bin, 'shadow', '--config', config, ...args], {
    cwd: dir,
    env: { ...clean, MODELWATCH_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const kill = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(kill);
      resolve({ code, stdout, stderr });
    }),
  );
}

describe('modelwatch shadow', () => {
  it('--format json carries the documented fields; a perturbed candidate is rejected at the fixture rate', async () => {
    const r = await run(['--model', 'lr', '--candidate', 'lr-perturbed.onnx', '--format', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    for (const k of [
      'run_id',
      'model',
      'candidate',
      'execution_provider',
      'rows',
      'skipped',
      'agreement',
      'differences',
      'performance',
      'latency_ms',
      'verdict',
      'reasons',
    ])
      expect(j, k).toHaveProperty(k);
    expect(j.rows).toBe(fx.inputs.rows.length);
    expect(j.skipped).toBe(0);
    expect(j.agreement).toBeCloseTo(fx.compare.lr.agreement, 12);
    expect(j.execution_provider).toBe('cpu');
    expect(j.verdict).toBe('reject');
    expect(r.stderr).toMatch(/shadow: 100% of calls read, 999 rows compared/);
  }, 120_000);

  it('prints a table with --limit and a time range', async () => {
    const r = await run([
      '--model',
      'lr',
      '--candidate',
      'lr.onnx',
      '--limit',
      '300',
      '--from',
      new Date(Date.now() - 86_400_000).toISOString(),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^rows\s+300 compared, 0 skipped/m);
    expect(r.stdout).toMatch(/^agreement\s+1$/m);
    expect(r.stdout).toMatch(/^verdict\s+PROMOTE$/m);
  }, 120_000);

  it('usage errors exit 2; a corrupt candidate exits non-zero naming it', async () => {
    expect((await run(['--model', 'lr'])).code).toBe(2);
    expect((await run(['--model', 'lr', '--candidate', 'lr.onnx', '--format', 'xml'])).code).toBe(2);
    const bad = await run(['--model', 'lr', '--candidate', 'corrupt.onnx']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/could not be loaded/);
  }, 120_000);
});
