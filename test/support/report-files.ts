import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import type { SqlPort } from '../../src/store/index.js';
import { expect } from 'vitest';

/** Folder of the drift oracle fixtures (CSV samples + expected.json from make_fixtures.py). */
export const driftFixtureDir = join(import.meta.dirname, '..', 'fixtures', 'drift');

/** Repository root. */
export const repoRoot = join(import.meta.dirname, '..', '..');

interface TestValue {
  statistic: number;
  p_value: number;
}

/** One oracle case of `expected.json` (the fields the report tests compare). */
export interface OracleCase {
  name: string;
  kind: 'numeric' | 'categorical';
  reference_rows: number;
  current_rows: number;
  method: string;
  threshold: number;
  score: number;
  drifted: boolean;
  ks?: TestValue & { method: string };
  chi_square?: TestValue;
  wasserstein?: number;
  wasserstein_norm?: number;
  psi: number;
  jensen_shannon: number;
  hellinger: number;
  quality: Record<string, number | string[]>;
}

/** All oracle cases. */
export function loadOracleCases(): OracleCase[] {
  const raw = JSON.parse(readFileSync(join(driftFixtureDir, 'expected.json'), 'utf8')) as { cases: OracleCase[] };
  return raw.cases;
}

/** ClickHouse type of the fixture column `x` for a case kind. */
export function fixtureType(kind: OracleCase['kind']): string {
  return kind === 'numeric' ? 'Nullable(Float64)' : 'Nullable(String)';
}

/**
 * Writes a fixture CSV as Parquet, TSV or JSONL with chdb (`INSERT INTO FUNCTION file(...)`), keeping NULL,
 * NaN and ±Inf as they are where the format can hold them.
 */
export async function convertFixture(
  store: SqlPort,
  csvPath: string,
  kind: OracleCase['kind'],
  outPath: string,
  format: 'Parquet' | 'JSONEachRow' | 'TSVWithNames',
): Promise<void> {
  await store.command(
    `INSERT INTO FUNCTION file({out:String}, {fmt:String}) SELECT x FROM file({src:String}, 'CSVWithNames', {structure:String})`,
    {
      params: { out: outPath, fmt: format, src: csvPath, structure: `x ${fixtureType(kind)}` },
      settings: { engine_file_truncate_on_insert: 1, output_format_json_quote_denormals: 0 },
    },
  );
}

/** |actual − expected| ≤ rel·|expected| (plus a tiny absolute floor for values at 0). */
export function expectRel(actual: unknown, expected: number, rel: number, label: string): void {
  expect(typeof actual, label).toBe('number');
  const a = actual as number;
  const tol = rel * Math.abs(expected) + 1e-12;
  expect(Math.abs(a - expected), `${label}: got ${a}, expected ${expected}`).toBeLessThanOrEqual(tol);
}

/** |actual − expected| ≤ tol. */
export function expectAbs(actual: unknown, expected: number, tol: number, label: string): void {
  expect(typeof actual, label).toBe('number');
  const a = actual as number;
  expect(Math.abs(a - expected), `${label}: got ${a}, expected ${expected}`).toBeLessThanOrEqual(tol);
}

/** Result of running the CLI as a child process. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/modelwatch.js ...args` from the repository root. */
export function runCli(args: readonly string[], timeoutMs = 120_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'bin', 'modelwatch.js'), ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
