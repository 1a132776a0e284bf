import { spawn } from 'node:child_process';
import { join } from 'node:path';

const repoRoot = join(import.meta.dirname, '..', '..');

/**
 * Runs a TypeScript file in a fresh Node process (through tsx, `NODE_OPTIONS` removed so the parent's flags do
 * not leak in) with `nodeFlags` before it and `args` after it; resolves with its stdout once it exits 0.
 */
export function runTsxChild(file: string, args: string[] = [], nodeFlags: string[] = []): Promise<string> {
  const { NODE_OPTIONS: _ignored, ...env } = process.env;
  const p = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', file, ...args], {
    cwd: repoRoot,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve, reject) =>
    p.on('close', (code) => {
      if (code !== 0) reject(new Error(`child exited ${code}: ${err}`));
      else resolve(out);
    }),
  );
}
