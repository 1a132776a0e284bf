#!/usr/bin/env node
// Entry of the `modelwatch` binary. It runs the CLI inside this same process and spawns no child, so a
// signal sent to this PID (SIGTERM from systemd, Docker, Kubernetes or `kill`) reaches the server's own
// handlers, which stop every role and release the ports and the embedded store.
//
// An installed package (no src/) always runs the compiled dist/. In a development checkout, dist/ is
// used only when it is complete and newer than every file under src/; otherwise the TypeScript sources
// run through tsx (a development dependency), so a stale build is never run by mistake.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'dist', 'cli', 'main.js');
// `modelwatch report` alone, bundled into one CommonJS script by the build (scripts/bundle-report.mjs): a
// fast start, compiled from a V8 code cache (bin/cached-script.js).
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

// `modelwatch sidecar` keeps V8's young generation small (see src/sidecar/young-generation.ts, which lets
// it grow again up to its cap once the proxy starts): loading the CLI's modules would otherwise grow it to
// its 16 MB maximum before the proxy serves a request, and V8 does not shrink it on request. A
// young-generation flag given on the command line or in NODE_OPTIONS is left alone.
if (
  process.argv[2] === 'sidecar' &&
  ![...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((f) =>
    /^--(max|min)[-_]semi[-_]space[-_]size|^--semi[-_]space[-_]growth[-_]factor|^--max[-_]young/.test(f),
  )
) {
  (await import('node:v8')).setFlagsFromString('--semi-space-growth-factor=1');
}

const checkout = existsSync(source);
const buildUsable =
  existsSync(built) && (!checkout || (existsSync(stamp) && !sourcesNewerThan(statSync(stamp).mtimeMs)));

if (buildUsable) {
  if (process.argv[2] === 'report' && existsSync(reportBundle)) {
    const { runCachedScript } = await import('./cached-script.js');
    const { code } = await runCachedScript(reportBundle, process.argv.slice(3));
    process.exitCode = code;
    // The report is written and the store closed: exit as soon as stdout and stderr have taken everything
    // written to them. A natural exit would first wait for V8's background compile jobs and then free the
    // whole heap, ~50–100 ms that a one-shot command does not need; a stray handle (a library timer, a
    // half-closed socket) cannot keep the process alive either. `process.exit` still runs the 'exit'
    // handlers (the engine's own cleanup included).
    const flushed = (stream) => new Promise((resolve) => stream.write('', () => resolve()));
    await Promise.race([
      Promise.all([flushed(process.stdout), flushed(process.stderr)]),
      new Promise((resolve) => setTimeout(resolve, 2_000).unref()),
    ]);
    process.exit(code);
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
