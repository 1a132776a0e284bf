// Benchmarks time the compiled JavaScript that ships (dist/, made by `npm run build`), not the TypeScript
// sources under tsx. A bench loads every module it measures through `shipped()`; its types come from the
// matching source module (`typeof import('../src/…')`), which is what dist/ was compiled from.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * The repository root: `MODELWATCH_BENCH_ROOT` when set (a bench child bundled outside bench/), else the
 * nearest directory above this file holding `src/` and `package.json`.
 */
function findRoot(): string {
  const given = process.env.MODELWATCH_BENCH_ROOT;
  if (given !== undefined && given !== '') return given;
  let dir = import.meta.dirname;
  while (!(existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'src')))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`bench: no repository root above ${import.meta.dirname}`);
    dir = up;
  }
  return dir;
}

/** Absolute path of the repository root. */
export const repoRoot = findRoot();
/** Absolute path of the build output. */
export const distDir = join(repoRoot, 'dist');

let checked = false;

/** Throws unless dist/ holds a finished build that is newer than every file under src/. */
export function assertFreshBuild(): void {
  if (checked) return;
  const stamp = join(distDir, 'build-stamp');
  if (!existsSync(stamp))
    throw new Error('bench: dist/ has no finished build; run `npm run build` (`npm run bench` does)');
  const builtAt = statSync(stamp).mtimeMs;
  const src = join(repoRoot, 'src');
  for (const e of readdirSync(src, { recursive: true, withFileTypes: true })) {
    const file = join(e.parentPath, e.name);
    if (e.isFile() && statSync(file).mtimeMs > builtAt) {
      throw new Error(`bench: ${file} changed after the last build; run \`npm run build\` (\`npm run bench\` does)`);
    }
  }
  checked = true;
}

/**
 * Imports `dist/<path>` (e.g. `bus/index.js`), the compiled counterpart of `src/<path>`. `T` is the
 * source module's type: `shipped<typeof import('../src/bus/index.js')>('bus/index.js')`.
 */
export async function shipped<T>(path: string): Promise<T> {
  assertFreshBuild();
  return (await import(pathToFileURL(join(distDir, path)).href)) as T;
}
