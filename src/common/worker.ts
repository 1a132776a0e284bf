import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, type ResourceLimits } from 'node:worker_threads';

/**
 * URL of a worker entry module next to the calling module: `NAME.ts` when the caller runs from source
 * (tsx, vitest), `NAME.js` when it runs compiled from `dist/`.
 * @param callerUrl the caller's `import.meta.url`
 * @param name the entry's file name without extension, e.g. `'./pool-worker'`
 */
export function workerEntryUrl(callerUrl: string, name: string): URL {
  return new URL(`${name}${callerUrl.endsWith('.ts') ? '.ts' : '.js'}`, callerUrl);
}

/** URL of tsx's ESM `tsx/esm/api` entry (its export map's `import` condition; `require.resolve` gives the CJS one). */
function tsxEsmApiUrl(): string {
  const require = createRequire(import.meta.url);
  const pkgPath = require.resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as {
    exports?: Record<string, { import?: { default?: string } | string }>;
  };
  const target = pkg.exports?.['./esm/api']?.import;
  const rel = typeof target === 'string' ? target : target?.default;
  if (rel === undefined) throw new Error('tsx does not export tsx/esm/api for import');
  return pathToFileURL(join(dirname(pkgPath), rel)).href;
}

// Registers tsx's ESM hooks inside the worker, then loads the entry: hooks registered in the parent do not
// reach a worker thread on Node 20.
const tsxBoot = [
  "const { workerData } = require('node:worker_threads');",
  'import(workerData.tsxApi)',
  '  .then((m) => { (m.register ?? m.default.register)(); return import(workerData.entry); })',
  '  .catch((err) => { setImmediate(() => { throw err; }); });',
].join('\n');

/**
 * Starts a `worker_threads` worker on `url`. A `.ts` entry (running from source) is loaded through a small
 * bootstrap that registers tsx inside the worker first; a `.js` entry (the compiled build) is loaded directly.
 * `workerData` must be an object; the bootstrap adds its own two keys (`tsxApi`, `entry`) to it.
 * `resourceLimits`, when given, bound the worker's V8 heap (e.g. a smaller young generation: less RSS).
 */
export function startWorker(
  url: URL,
  workerData: object,
  transferList: ArrayBuffer[] = [],
  resourceLimits?: ResourceLimits,
): Worker {
  const limits = resourceLimits === undefined ? {} : { resourceLimits };
  if (url.pathname.endsWith('.ts')) {
    return new Worker(tsxBoot, {
      eval: true,
      execArgv: [],
      workerData: { ...workerData, tsxApi: tsxEsmApiUrl(), entry: url.href },
      transferList,
      ...limits,
    });
  }
  return new Worker(fileURLToPath(url), { workerData, transferList, ...limits });
}
