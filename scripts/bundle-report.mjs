// Part of `npm run build` (scripts/build.sh), after tsc: bundles the `modelwatch report` command
// (dist/cli/report-main.js and everything it imports, npm packages included) into one ES module,
// dist/cli/report.bundle.js, which bin/modelwatch.js loads for `modelwatch report`. One file instead of
// ~450 modules makes the command start several times faster. Packages with native code (chdb,
// onnxruntime-node) stay external. Each bundled module keeps its own `import.meta.url` (rewritten to its
// dist/ file), so worker entries and files it locates relative to itself are found as before. The worker
// entries the report starts are bundled in place the same way. Without
// esbuild (a development dependency), the bundle is skipped and `report` runs unbundled.
import { readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const outfile = join(dist, 'cli', 'report.bundle.js');

let esbuild;
try {
  esbuild = await import('esbuild');
} catch {
  process.stderr.write('build: esbuild not installed; `modelwatch report` will run unbundled\n');
  process.exit(0);
}

/** Worker entries bundled in place. */
const workerEntries = [
  'drift/exact/worker-entry.js',
  'drift/mv-worker-entry.js',
  'drift/multivariate/kernel-worker-entry.js',
];

/** Rewrites `import.meta.url` in each module of dist/ to that module's own URL, relative to `bundle`. */
const ownUrlOf = (bundle) => ({
  name: 'own-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.js$/ }, async (args) => {
      if (!args.path.startsWith(dist)) return undefined;
      const text = await readFile(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return { contents: text, loader: 'js' };
      const rel = relative(dirname(bundle), args.path).split('\\').join('/');
      return {
        contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, import.meta.url).href`),
        loader: 'js',
      };
    });
  },
});

/**
 * zod re-exports every message locale (`z.locales`, ~400 KB, a quarter of the bundle); modelwatch uses only
 * the default English one, which zod loads on its own. The bundle gets a `z.locales` holding `en` only, so
 * the command compiles less code at start.
 */
const englishOnlyLocales = {
  name: 'zod-english-only',
  setup(build) {
    build.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]v4[\\/](?:classic|core)$/.test(args.resolveDir)
        ? { path: join(args.resolveDir, '..', 'locales', 'en.js'), namespace: 'zod-locales' }
        : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'zod-locales' }, (args) => ({
      contents: `export { default as en } from ${JSON.stringify(args.path)};`,
      loader: 'js',
      resolveDir: dirname(args.path),
    }));
  },
};

const banner =
  "import { createRequire as __mwCreateRequire } from 'node:module'; const require = __mwCreateRequire(import.meta.url);";

const common = {
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['chdb', 'onnxruntime-node'],
  // CommonJS packages in the bundle call require() for Node built-ins.
  banner: { js: banner },
  plugins: [ownUrlOf(outfile)],
  logLevel: 'warning',
};

await esbuild.build({
  ...common,
  entryPoints: [join(dist, 'cli', 'report-main.js')],
  outfile,
  plugins: [ownUrlOf(outfile), englishOnlyLocales],
});
// Worker entries the report starts, bundled in place (same file, same behaviour, one module to load).
for (const entry of workerEntries) {
  const file = join(dist, entry);
  // Already bundled (the script ran twice on one build): leave it.
  if ((await readFile(file, 'utf8')).startsWith(banner)) continue;
  await esbuild.build({
    ...common,
    entryPoints: [file],
    outfile: file,
    allowOverwrite: true,
    plugins: [ownUrlOf(file)],
  });
}
