/**
 * Serves the web UI: the single page at `/` and every `/ui/...` deep link (the client routes on the path), our
 * hand-written assets from `assets/` and uPlot's browser build from the installed `uplot` package. Nothing is
 * fetched from a CDN; the page holds no data (it calls `/api/v1/*` with the user's token), so these GETs sit
 * outside the token. Assets are read once, on first request, into memory; only files found there are served,
 * so no request path ever reaches the file system.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Context, MiddlewareHandler } from 'hono';
import { ErrorCodes, ModelwatchError } from '../common/errors.js';

/** URL prefix of every asset. */
export const UI_ASSETS_PREFIX = '/ui/assets/';

/** Options of {@link uiMiddleware}. */
export interface UiOptions {
  /** Folder of the hand-written assets (index.html, *.js, *.css). @default {@link resolveUiAssetsDir}() */
  assetsDir?: string;
  /** Folder of uPlot's `dist/` build. @default the installed `uplot` package's `dist/` */
  uplotDistDir?: string;
}

/**
 * The assets folder: `assets/` beside this module (`src/ui/assets` under tsx, `dist/ui/assets` once the build
 * copied it), else `src/ui/assets` of the package (compiled code run without the copy).
 */
export function resolveUiAssetsDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'assets'), join(here, '..', '..', 'src', 'ui', 'assets')];
  const found = candidates.find((d) => existsSync(join(d, 'index.html')));
  if (found === undefined) {
    throw new ModelwatchError(ErrorCodes.internal, `web UI assets not found (looked in ${candidates.join(', ')})`);
  }
  return found;
}

/** `dist/` of the installed uplot package. */
export function resolveUplotDistDir(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('uplot/package.json')), 'dist');
}

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

function asset(file: string): Asset {
  const body = readFileSync(file);
  const type = contentTypes[extname(file)] ?? 'application/octet-stream';
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

/** Every servable file by URL path (`/ui/assets/app.js`, `/ui/assets/vendor/uPlot.iife.min.js`). */
function loadAssets(assetsDir: string, uplotDir: string): Map<string, Asset> {
  const out = new Map<string, Asset>();
  for (const file of walk(assetsDir)) {
    if (!(extname(file) in contentTypes)) continue;
    out.set(UI_ASSETS_PREFIX + relative(assetsDir, file).split(sep).join('/'), asset(file));
  }
  for (const name of ['uPlot.iife.min.js', 'uPlot.min.css']) {
    out.set(`${UI_ASSETS_PREFIX}vendor/${name}`, asset(join(uplotDir, name)));
  }
  return out;
}

/**
 * Same-origin only: scripts, styles, fetches and images come from this server. uPlot sizes its elements through
 * the CSSOM (`el.style.x = …`), which `style-src 'self'` allows.
 */
const securityHeaders = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; " +
    "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

function send(c: Context, a: Asset, cache: string): Response {
  const headers: Record<string, string> = { ...securityHeaders, etag: a.etag, 'cache-control': cache };
  if (c.req.header('if-none-match') === a.etag) return new Response(null, { status: 304, headers });
  headers['content-type'] = a.type;
  headers['content-length'] = String(a.body.length);
  return new Response(c.req.method === 'HEAD' ? null : new Uint8Array(a.body), { status: 200, headers });
}

/** True for the paths the page answers: `/`, `/ui` and anything under `/ui/`. */
export function isUiPath(path: string): boolean {
  return path === '/' || path === '/ui' || path.startsWith('/ui/');
}

/**
 * Middleware answering GET/HEAD of `/`, `/ui`, `/ui/*` (the page, for client-side routing) and
 * `/ui/assets/*` (the files, 404 when unknown); every other request passes through. Mounted with `app.use`, so
 * it is not an API operation and stays out of the OpenAPI document.
 */
export function uiMiddleware(options: UiOptions = {}): MiddlewareHandler {
  let assets: Map<string, Asset> | undefined;
  const load = (): Map<string, Asset> =>
    (assets ??= loadAssets(options.assetsDir ?? resolveUiAssetsDir(), options.uplotDistDir ?? resolveUplotDistDir()));
  return async (c, next) => {
    const path = c.req.path;
    if ((c.req.method !== 'GET' && c.req.method !== 'HEAD') || !isUiPath(path)) return next();
    const files = load();
    if (path.startsWith(UI_ASSETS_PREFIX)) {
      const a = files.get(path);
      if (a === undefined) {
        return c.json({ error: { code: ErrorCodes.notFound, message: `no asset ${path}` } }, 404);
      }
      return send(c, a, 'no-cache');
    }
    const page = files.get(`${UI_ASSETS_PREFIX}index.html`);
    if (page === undefined) throw new ModelwatchError(ErrorCodes.internal, 'web UI index.html missing');
    return send(c, page, 'no-cache');
  };
}
