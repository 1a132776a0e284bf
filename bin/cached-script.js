// Runs a CommonJS script that exports `main(argv)` (dist/cli/report.bundle.cjs, the `modelwatch report`
// bundle) with a V8 code cache, which skips most of the parsing and compiling of its text: Node 20 can take
// a code cache for a script compiled through `vm.Script`, not for an ES module.
//
// The cache is one file named by a hash of the script's text, the Node.js version and the architecture,
// kept in the first writable of: `.cache/` next to the script, then `$XDG_CACHE_HOME/modelwatch`
// (`~/.cache/modelwatch`). It is written after a run whose `main` resolved with 0 (not for `--help`), when
// it was missing or V8 rejected it, so it holds the functions a whole run compiled. A cache that cannot be
// read, written or used is ignored: the script then compiles from its text, as it would without one.
// `MODELWATCH_CODE_CACHE=0` turns the cache off. With `MODELWATCH_PROFILE=1`, the time to load the script is
// printed to stderr like the command's other stages.
import { isAscii } from 'node:buffer';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

/**
 * Where the cache of `file` may be kept, in order of preference.
 * @param {string} file
 * @param {NodeJS.ProcessEnv} env
 * @returns {string[]}
 */
export function cacheDirs(file, env = process.env) {
  const home = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return [join(dirname(file), '.cache'), join(home, 'modelwatch')];
}

/**
 * Runs `main(argv)` of the CommonJS script `file` and resolves with its exit code and what happened to the
 * cache (see the module comment).
 * @param {string} file absolute path of the script
 * @param {string[]} argv passed to `main`
 * @param {{ env?: NodeJS.ProcessEnv, dirs?: string[] }} [options] `dirs`: where the cache may be kept
 *   (default {@link cacheDirs})
 * @returns {Promise<{ code: number, cache: 'off' | 'hit' | 'miss' | 'rejected', written: string | undefined }>}
 */
export async function runCachedScript(file, argv, options = {}) {
  const started = performance.now();
  const env = options.env ?? process.env;
  const dirs = options.dirs ?? cacheDirs(file, env);
  // The bytes are hashed as they are (hashing the decoded text would encode it again), and an ASCII-only
  // script (the build makes the bundle so) is decoded as Latin-1: the same text, several times faster than
  // UTF-8 decoding, and a one-byte string for V8.
  const bytes = readFileSync(file);
  const source = bytes.toString(isAscii(bytes) ? 'latin1' : 'utf8');
  const useCache = env.MODELWATCH_CODE_CACHE !== '0';
  const hash = createHash('sha256').update(bytes).update(`\0${process.version}\0${process.arch}`).digest('hex');
  const name = `${file.split(/[\\/]/).pop()}-${hash.slice(0, 32)}.v8`;
  /** @type {Buffer | undefined} */
  let cachedData;
  if (useCache) {
    for (const dir of dirs) {
      try {
        cachedData = readFileSync(join(dir, name));
        break;
      } catch {
        // Not there: the next place, or no cache.
      }
    }
  }
  // The CommonJS wrapper on the script's first line, so stack traces keep the script's line numbers.
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: file,
    ...(cachedData !== undefined ? { cachedData } : {}),
  });
  const cache = !useCache ? 'off' : cachedData === undefined ? 'miss' : script.cachedDataRejected ? 'rejected' : 'hit';
  const module = { exports: /** @type {{ main?: (argv: string[]) => Promise<number> }} */ ({}) };
  script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file));
  if (typeof module.exports.main !== 'function') throw new Error(`${file} does not export main()`);
  if (env.MODELWATCH_PROFILE === '1') {
    const now = performance.now();
    const name = `load bundle (code cache ${cache})`;
    process.stderr.write(
      `profile: ${name.padEnd(40)} ${(now - started).toFixed(1).padStart(8)} ms  (at ${now.toFixed(1)} ms)\n`,
    );
  }
  const code = await module.exports.main(argv);
  let written;
  const help = argv.includes('--help') || argv.includes('-h');
  if ((cache === 'miss' || cache === 'rejected') && code === 0 && !help) {
    // After the whole run, so the functions it compiled on the way are in the cache too.
    const data = script.createCachedData();
    for (const dir of dirs) {
      const tmp = join(dir, `${name}.${process.pid}.tmp`);
      try {
        mkdirSync(dir, { recursive: true });
        writeFileSync(tmp, data);
        renameSync(tmp, join(dir, name));
        written = join(dir, name);
        break;
      } catch {
        // Not writable: the next place, or no cache.
        try {
          rmSync(tmp, { force: true });
        } catch {
          // Nothing was written there.
        }
      }
    }
  }
  return { code, cache, written };
}
