// `npm run bench [-- name]` (which builds dist/ first): runs bench/<name>.ts (each exports `run(): Promise<void>`,
// times the compiled dist/ through bench/shipped.ts and writes bench/results/<name>.json and .md). With no
// name or `all`, runs every known bench in turn.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const KNOWN = ['ingest', 'sidecar', 'drift', 'fleet', 'alerts', 'shadow', 'multivariate'] as const;

interface BenchModule {
  run(): Promise<void>;
}

function isBench(m: unknown): m is BenchModule {
  return typeof m === 'object' && m !== null && typeof (m as { run?: unknown }).run === 'function';
}

async function runOne(name: string): Promise<boolean> {
  const file = join(import.meta.dirname, `${name}.ts`);
  if (!/^[a-z][a-z0-9-]*$/.test(name) || !existsSync(file)) {
    console.error(`bench "${name}" not found: expected bench/${name}.ts exporting run() (known: ${KNOWN.join(', ')})`);
    return false;
  }
  const mod: unknown = await import(pathToFileURL(file).href);
  if (!isBench(mod)) {
    console.error(`bench/${name}.ts does not export run(): Promise<void>`);
    return false;
  }
  const started = Date.now();
  console.error(`== bench ${name}`);
  await mod.run();
  console.error(`== bench ${name} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return true;
}

async function main(): Promise<void> {
  const arg = process.argv[2] ?? 'all';
  if (arg !== 'all') {
    process.exitCode = (await runOne(arg)) ? 0 : 1;
    return;
  }
  // One child process per bench: chdb allows one ClickHouse engine per process.
  let ok = true;
  for (const name of KNOWN) {
    if (!existsSync(join(import.meta.dirname, `${name}.ts`))) {
      console.error(`bench "${name}" not present (bench/${name}.ts); skipped`);
      continue;
    }
    const r = spawnSync(process.execPath, [...process.execArgv, import.meta.filename, name], { stdio: 'inherit' });
    ok = r.status === 0 && ok;
  }
  process.exitCode = ok ? 0 : 1;
}

await main();
