#!/usr/bin/env node
// Entry of the `modelwatch` binary. It runs the CLI inside this same process and spawns no child, so a
// signal sent to this PID (SIGTERM from systemd, Docker, Kubernetes or `kill`) reaches the server's own
// handlers, which stop every role and release the ports and the embedded store.
//
// An installed package (no src/) always runs the compiled dist/. In a development checkout, dist/ is
// used only when it is complete and newer than every file under src/; otherwise the TypeScript sources
// run through tsx (a development dependency), so a stale build is never run by mistake.
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'dist', 'cli', 'main.js');
// `modelwatch report` alone, bundled into one CommonJS script by the build (scripts/bundle-report.mjs): a
// fast start (see runReportBundle).
const reportBundle = join(root, 'dist', 'cli', 'report.bundle.cjs');
// Written last by `npm run build` (scripts/build.sh): its presence means the build finished.
const stamp = join(root, 'dist', 'build-stamp');
const source = join(root, 'src', 'cli', 'main.ts');

/** True when some file under `dir` (src/ by default) changed after the build finished (`ms`). */
function sourcesNewerThan(ms, dir = join(root, 'src')) {
  // A plain recursive walk: about half the time of `readdirSync(dir, { recursive: true })` here.
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory() ? sourcesNewerThan(ms, path) : statSync(path).mtimeMs > ms) return true;
  }
  return false;
}

/**
 * Runs the `report` bundle (a CommonJS script exporting `main(argv)`) and resolves with its exit code.
 * The script is compiled through `vm.Script` with a V8 code cache, which skips most of the parsing and
 * compiling of the bundle's ~1.4 MB. The cache is a file named by a hash of the bundle's text and the
 * Node.js version, in `.cache/` next to the bundle or, when that is not writable, in
 * `$XDG_CACHE_HOME/modelwatch` (`~/.cache/modelwatch`); it is written after a successful report when it
 * was missing or V8 rejected it, and any failure to read or write it is ignored (the script then compiles
 * from its text, as without a cache). `MODELWATCH_CODE_CACHE=0` turns the cache off.
 */
async function runReportBundle(file, argv) {
  const [{ Script }, { createHash }, { createRequire }, { homedir }] = await Promise.all([
    import('node:vm'),
    import('node:crypto'),
    import('node:module'),
    import('node:os'),
  ]);
  const source = readFileSync(file, 'utf8');
  const useCache = process.env.MODELWATCH_CODE_CACHE !== '0';
  const name = `report-${createHash('sha256').update(source).update(`${process.version} ${process.arch}`).digest('hex').slice(0, 32)}.v8`;
  const dirs = [
    join(dirname(file), '.cache'),
    join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'modelwatch'),
  ];
  let cachedData;
  if (useCache) {
    for (const dir of dirs) {
      try {
        cachedData = readFileSync(join(dir, name));
        break;
      } catch {
        // Not there: try the next place, or compile without a cache.
      }
    }
  }
  // The CommonJS wrapper on the script's first line, so stack traces keep the bundle's line numbers.
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: file,
    ...(cachedData !== undefined ? { cachedData } : {}),
  });
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file));
  const code = await module.exports.main(argv);
  const help = argv.includes('--help') || argv.includes('-h');
  if (useCache && code === 0 && !help && (cachedData === undefined || script.cachedDataRejected === true)) {
    // After a whole report, so the functions it compiled on the way are in the cache too.
    const data = script.createCachedData();
    for (const dir of dirs) {
      try {
        mkdirSync(dir, { recursive: true });
        const tmp = join(dir, `${name}.${process.pid}.tmp`);
        writeFileSync(tmp, data);
        renameSync(tmp, join(dir, name));
        break;
      } catch {
        // Not writable: try the next place, or go without a cache.
      }
    }
  }
  return code;
}

// `npx modelwatch` and `npm run` start this process through `sh -c`; a SIGTERM sent to npm's PID ends
// npm and that shell but never reaches this process, which would keep serving and holding its ports and
// the embedded store. So when npm started it, losing the parent counts as a SIGTERM (sent once: a second
// one means "exit without flushing").
if (process.env.npm_command !== undefined) {
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(watch);
    process.kill(process.pid, 'SIGTERM');
  }, 250);
  watch.unref();
}

const checkout = existsSync(source);
const buildUsable =
  existsSync(built) && (!checkout || (existsSync(stamp) && !sourcesNewerThan(statSync(stamp).mtimeMs)));

if (buildUsable) {
  if (process.argv[2] === 'report' && existsSync(reportBundle)) {
    const code = await runReportBundle(reportBundle, process.argv.slice(3));
    process.exitCode = code;
    // A stray handle (a library timer, a half-closed socket) must not keep a finished report alive.
    setTimeout(() => process.exit(code), 2_000).unref();
  } else {
    await import(pathToFileURL(built).href);
  }
} else if (checkout) {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    process.stderr.write(
      'modelwatch: dist/ is missing or older than src/, and tsx (a development dependency) is not installed.\n' +
        'Run `npm run build` (or `npm install` with development dependencies) first.\n',
    );
    process.exit(1);
  }
  register();
  await import(pathToFileURL(source).href);
} else {
  process.stderr.write('modelwatch: dist/cli/main.js is missing; this package was published without its build.\n');
  process.exit(1);
}
