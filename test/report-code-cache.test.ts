// bin/cached-script.js, which runs the `modelwatch report` bundle with a V8 code cache: the cache is written
// after a successful run, used on the next, keyed by the script's text, and ignored when it is corrupt,
// unwritable or turned off, always with the script's own result. Each run is its own node process, as each
// `modelwatch report` is (within one process V8 reuses its in-memory compilation and never reads the file).
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheDirs, type CachedScriptRun } from '../bin/cached-script.js';

const loader = pathToFileURL(join(import.meta.dirname, '..', 'bin', 'cached-script.js')).href;

/** What the script's main() saw, as it reports it on stdout. */
interface Call {
  argv: string[];
  file: string;
  variant: string;
  sum: number;
}

/** runCachedScript in a fresh node process: its result and the script's calls. */
function runCachedScript(
  file: string,
  argv: string[],
  options: { dirs: string[]; env?: Record<string, string> },
): Promise<CachedScriptRun & { calls: Call[] }> {
  const code = `
    import { runCachedScript } from ${JSON.stringify(loader)};
    globalThis.__cachedScriptCalls = [];
    const r = await runCachedScript(${JSON.stringify(file)}, ${JSON.stringify(argv)}, { dirs: ${JSON.stringify(options.dirs)} });
    process.stdout.write(JSON.stringify({ ...r, written: r.written ?? null, calls: globalThis.__cachedScriptCalls }));`;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', code],
      { env: { ...process.env, MODELWATCH_CODE_CACHE: '1', ...options.env } },
      (err, stdout, stderr) => {
        if (err !== null) return reject(new Error(`${err.message}\n${stderr}`));
        const r = JSON.parse(stdout) as CachedScriptRun & { written: string | null; calls: Call[] };
        resolve({ ...r, written: r.written ?? undefined });
      },
    );
  });
}

let dir: string;

/** A CommonJS script exporting main(argv): resolves with argv[0] as a number, after some real work. */
function scriptText(variant: string): string {
  return `'use strict';
const { basename } = require('node:path');
function work(n) {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(i) * ${variant.length + 1};
  return a.sort().reduce((s, v) => s + v, 0);
}
exports.main = async function main(argv) {
  globalThis.__cachedScriptCalls.push({ argv, file: basename(__filename), variant: ${JSON.stringify(variant)}, sum: work(1000) });
  return Number(argv[0] ?? 0);
};
`;
}

function fresh(name: string, variant = 'a'): { file: string; dirs: string[] } {
  const sub = join(dir, name);
  mkdirSync(sub, { recursive: true });
  const file = join(sub, 'script.cjs');
  writeFileSync(file, scriptText(variant));
  return { file, dirs: [join(sub, 'cache-1'), join(sub, 'cache-2')] };
}

const cacheFiles = (d: string): string[] => (existsSync(d) ? readdirSync(d).filter((f) => f.endsWith('.v8')) : []);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mw-code-cache-'));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('runCachedScript', () => {
  it('writes the cache after a successful run and uses it on the next, with the same result', async () => {
    const { file, dirs } = fresh('hit');
    const first = await runCachedScript(file, ['0', '--x'], { dirs });
    expect(first.cache).toBe('miss');
    expect(first.code).toBe(0);
    expect(first.written).toBeDefined();
    expect(cacheFiles(dirs[0]!)).toHaveLength(1);
    const second = await runCachedScript(file, ['0', '--x'], { dirs });
    expect(second).toMatchObject({ code: 0, cache: 'hit', written: undefined });
    expect(first.calls).toHaveLength(1);
    expect(second.calls).toEqual(first.calls);
    expect(first.calls[0]!.argv).toEqual(['0', '--x']);
    expect(first.calls[0]!.file).toBe('script.cjs');
  });

  it('runs a script with non-ASCII text as UTF-8, with and without its cache (ASCII-only ones are read as Latin-1)', async () => {
    const { file, dirs } = fresh('utf8', 'température ✓');
    const first = await runCachedScript(file, ['0'], { dirs });
    const second = await runCachedScript(file, ['0'], { dirs });
    expect([first.cache, second.cache]).toEqual(['miss', 'hit']);
    for (const run of [first, second]) expect(run.calls[0]!.variant).toBe('température ✓');
  });

  it('keys the cache by the script text: a changed script misses and gets a cache of its own', async () => {
    const { file, dirs } = fresh('changed', 'a');
    await runCachedScript(file, ['0'], { dirs });
    writeFileSync(file, scriptText('bb'));
    const changed = await runCachedScript(file, ['0'], { dirs });
    expect(changed.cache).toBe('miss');
    expect(changed.calls[0]!.variant).toBe('bb');
    expect(cacheFiles(dirs[0]!)).toHaveLength(2);
    expect((await runCachedScript(file, ['0'], { dirs })).cache).toBe('hit');
  });

  it('ignores a corrupt cache file, runs the script from its text and replaces the file', async () => {
    const { file, dirs } = fresh('corrupt');
    const { written } = await runCachedScript(file, ['0'], { dirs });
    writeFileSync(written!, Buffer.from('not a V8 code cache at all, just some bytes'));
    const run = await runCachedScript(file, ['0'], { dirs });
    expect(run.cache).toBe('rejected');
    expect(run.code).toBe(0);
    expect(run.written).toBe(written);
    expect(run.calls).toHaveLength(1);
    expect((await runCachedScript(file, ['0'], { dirs })).cache).toBe('hit');
  });

  it('falls back to the next place when the first is not writable, and runs without a cache when none is', async () => {
    const { file } = fresh('unwritable');
    // A directory cannot be made under a regular file (whoever runs the test, root included).
    const blocker = join(dir, 'unwritable', 'a-file');
    writeFileSync(blocker, '');
    const second = join(dir, 'unwritable', 'second');
    const fallback = await runCachedScript(file, ['0'], { dirs: [join(blocker, 'cache'), second] });
    expect(fallback.written?.startsWith(second)).toBe(true);
    expect((await runCachedScript(file, ['0'], { dirs: [join(blocker, 'cache'), second] })).cache).toBe('hit');
    const none = await runCachedScript(file, ['3'], { dirs: [join(blocker, 'cache')] });
    expect(none).toMatchObject({ code: 3, cache: 'miss', written: undefined });
    const noneAgain = await runCachedScript(file, ['0'], { dirs: [join(blocker, 'cache')] });
    expect(noneAgain).toMatchObject({ code: 0, cache: 'miss', written: undefined });
    expect(noneAgain.calls).toHaveLength(1);
  });

  it('writes nothing after a failed run, for --help, or with MODELWATCH_CODE_CACHE=0', async () => {
    const { file, dirs } = fresh('nowrite');
    expect(await runCachedScript(file, ['2'], { dirs })).toMatchObject({ code: 2, cache: 'miss', written: undefined });
    expect(await runCachedScript(file, ['0', '--help'], { dirs })).toMatchObject({
      code: 0,
      cache: 'miss',
      written: undefined,
    });
    const off = await runCachedScript(file, ['0'], { dirs, env: { MODELWATCH_CODE_CACHE: '0' } });
    expect(off).toMatchObject({ code: 0, cache: 'off', written: undefined });
    expect(off.calls).toHaveLength(1);
    expect(cacheFiles(dirs[0]!)).toEqual([]);
    expect(cacheFiles(dirs[1]!)).toEqual([]);
  });

  it('keeps the cache next to the script first, then in the user cache directory', () => {
    expect(cacheDirs('/opt/mw/dist/cli/report.bundle.cjs', { XDG_CACHE_HOME: '/var/cache/u' })).toEqual([
      '/opt/mw/dist/cli/.cache',
      '/var/cache/u/modelwatch',
    ]);
  });
});
