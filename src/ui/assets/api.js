// The API client: bearer token from sessionStorage (asked for once on a 401), JSON errors as ApiError, and the
// list of routes this server serves (from /openapi.json) so optional panels never call a route that is absent.

const TOKEN_KEY = 'modelwatch.apiToken';

/** An API answer that was not 2xx: `status`, `code` and the server's message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

let tokenPrompt = null;

function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? '';
  } catch {
    return '';
  }
}

/** Asks for the token in the page's dialog; concurrent 401s share one prompt. */
function askToken(rejected) {
  tokenPrompt ??= new Promise((resolve) => {
    const dialog = document.getElementById('token-dialog');
    const form = document.getElementById('token-form');
    const input = document.getElementById('token-input');
    document.getElementById('token-error').hidden = !rejected;
    input.value = '';
    const done = (e) => {
      e.preventDefault();
      const value = input.value.trim();
      if (value === '') return;
      form.removeEventListener('submit', done);
      sessionStorage.setItem(TOKEN_KEY, value);
      dialog.close();
      tokenPrompt = null;
      resolve(value);
    };
    form.addEventListener('submit', done);
    dialog.addEventListener('cancel', (e) => e.preventDefault());
    dialog.showModal();
    input.focus();
  });
  return tokenPrompt;
}

async function errorOf(res) {
  let code = 'http_' + res.status;
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    if (body?.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
    }
  } catch {
    // Not JSON: keep the status line.
  }
  return new ApiError(res.status, code, message);
}

/**
 * Calls the API. `opts`: `method`, `body` (JSON-encoded), `query` (object, undefined values skipped), `signal`,
 * `text` (return the body as text). Resolves with the parsed body; rejects with ApiError.
 */
export async function call(path, opts = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(opts.query ?? {}))
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
  let rejected = false;
  for (;;) {
    const headers = { accept: opts.text ? 'text/html, */*' : 'application/json' };
    const t = token();
    if (t !== '') headers.authorization = `Bearer ${t}`;
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(url, {
      method: opts.method ?? 'GET',
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
      credentials: 'omit',
    });
    if (res.status === 401) {
      // Ask once per missing/refused token, then retry with it.
      if (t !== '') rejected = true;
      sessionStorage.removeItem(TOKEN_KEY);
      await askToken(rejected);
      continue;
    }
    if (!res.ok) throw await errorOf(res);
    if (res.status === 204) return null;
    return opts.text ? res.text() : res.json();
  }
}

let routesPromise = null;

/** `METHOD /path/{param}` of every operation in /openapi.json (fetched once). */
export function routes() {
  routesPromise ??= fetch('/openapi.json', { credentials: 'omit' })
    .then((r) => (r.ok ? r.json() : { paths: {} }))
    .then((doc) => {
      const set = new Set();
      for (const [path, ops] of Object.entries(doc.paths ?? {}))
        for (const m of Object.keys(ops)) set.add(`${m.toUpperCase()} ${path}`);
      return set;
    })
    .catch(() => new Set());
  return routesPromise;
}

/** Whether the server documents `method path` (e.g. `GET /api/v1/alerts`). */
export async function has(method, path) {
  return (await routes()).has(`${method.toUpperCase()} ${path}`);
}

/** `/api/v1/models/{name}…` with the name encoded. */
export function modelPath(name, rest = '') {
  return `/api/v1/models/${encodeURIComponent(name)}${rest}`;
}
