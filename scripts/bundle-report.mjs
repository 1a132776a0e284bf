// Part of `npm run build` (scripts/build.sh), after tsc: bundles the `modelwatch report` command
// (dist/cli/report-main.js and everything it imports, npm packages included) into one CommonJS script,
// dist/cli/report.bundle.cjs, which bin/modelwatch.js compiles through `vm.Script` with a V8 code cache and
// runs for `modelwatch report`. One file instead of ~450 modules makes the command start several times
// faster, and a CommonJS script (unlike an ES module on Node 20) can be compiled from a code cache
// (bin/cached-script.js).
// onnxruntime-node stays external, and so does chdb's native addon (its JavaScript is bundled: see
// chdbJsBundled). Each bundled module keeps its own
// `import.meta.url` (rewritten to its dist/ file, relative to the bundle's own file URL), so worker entries
// and files it locates relative to itself are found as before. The worker entries the report starts are
// bundled in place as ES modules. Without esbuild (a development dependency), the bundle is skipped and
// `report` runs unbundled.
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const outfile = join(dist, 'cli', 'report.bundle.cjs');

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

/**
 * Rewrites `import.meta.url` in each module of dist/ to that module's own URL, relative to `bundle`'s URL
 * (`base`: the expression giving it, `import.meta.url` in an ES module).
 */
const ownUrlOf = (bundle, base = 'import.meta.url', patch = (_path, text) => text) => ({
  name: 'own-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.js$/ }, async (args) => {
      if (!args.path.startsWith(dist)) return undefined;
      const text = patch(args.path, await readFile(args.path, 'utf8'));
      if (!text.includes('import.meta.url')) return { contents: text, loader: 'js' };
      const rel = relative(dirname(bundle), args.path).split('\\').join('/');
      return {
        contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, ${base}).href`),
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

/**
 * chdb's JavaScript (its connection class, its session layer and its copy of @clickhouse/client-common,
 * ~50 modules, about a third of the time `modelwatch report` spends opening the embedded store) goes into
 * the bundle too, so it is compiled from the code cache; only the native addon stays outside. The store
 * loads chdb lazily (`requireLazy('chdb/connection')` in dist/store/client.js, so that store-less roles never
 * load the engine); in the bundle that call becomes a plain `require`, which esbuild turns into a bundled
 * module that still runs only when first called. chdb's own native loader (dist/loader.js, which finds the
 * addon through its per-platform package, relative to chdb's own directory) is not bundled: the bundle
 * loads it from wherever `chdb` resolves at run time, exactly as the unbundled code does.
 */
const chdbJsBundled = {
  name: 'chdb-js-bundled',
  setup(build) {
    build.onLoad({ filter: /[\\/]node_modules[\\/]chdb[\\/]dist[\\/]loader\.js$/ }, () => ({
      contents:
        "const { createRequire } = require('node:module');\n" +
        "module.exports = createRequire(require.resolve('chdb/package.json'))('./dist/loader.js');\n",
      loader: 'js',
    }));
  },
};

/** dist/store/client.js's lazy load of chdb's connection module, as a `require` that esbuild bundles. */
function requireChdbInBundle(path, text) {
  if (!path.endsWith(join('dist', 'store', 'client.js'))) return text;
  const lazy = "requireLazy('chdb/connection')";
  if (!text.includes(lazy)) {
    process.stderr.write(`build: ${lazy} not found in dist/store/client.js; chdb's JavaScript stays unbundled\n`);
    return text;
  }
  return text.replace(lazy, "require('chdb/connection')");
}

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
  logLevel: 'warning',
};

// The command: a CommonJS script. `__mwBundleUrl` (the bundle's own file URL) stands for `import.meta.url`
// of any bundled module the plugin does not rewrite (npm packages).
await esbuild.build({
  ...common,
  format: 'cjs',
  entryPoints: [join(dist, 'cli', 'report-main.js')],
  outfile,
  banner: { js: "'use strict'; const __mwBundleUrl = require('node:url').pathToFileURL(__filename).href;" },
  define: { 'import.meta.url': '__mwBundleUrl' },
  // typescript: an optional peer of chdb's code generator, which `require`s it only when called.
  external: ['onnxruntime-node', 'typescript', 'chdb/package.json'],
  plugins: [chdbJsBundled, ownUrlOf(outfile, '__mwBundleUrl', requireChdbInBundle), englishOnlyLocales],
});
// The bundle ASCII-only, so bin/cached-script.js decodes it as Latin-1 (several times faster than UTF-8 for
// ~1.7 MB): esbuild escapes non-ASCII characters in code, and what remains is in comments, where the
// characters are replaced. Anything non-ASCII outside a comment line is left alone (the script is then
// decoded as UTF-8, as before).
{
  const text = await readFile(outfile, 'utf8');
  const lines = text.split('\n');
  const comment = /^\s*(?:\/\/|\/\*|\*)/;
  const nonAscii = /[^\x00-\x7f]/;
  const outside = lines.filter((l) => nonAscii.test(l) && !comment.test(l));
  if (outside.length === 0) {
    const ascii = lines.map((l) => (nonAscii.test(l) ? l.replace(/[^\x00-\x7f]/g, '?') : l)).join('\n');
    if (ascii !== text) await writeFile(outfile, ascii);
  } else {
    process.stderr.write(
      `build: ${outside.length} non-ASCII line(s) outside comments; the report bundle stays UTF-8\n`,
    );
  }
}
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
