/**
 * The demo talks to modelwatch the way a user would: over its REST API (with the bearer token when
 * `api.token` is set), never by reaching into the roles.
 */
import { errorMessage } from '../common/errors.js';

/** An API answer: the status and the parsed JSON body (`undefined` when not JSON). */
export interface ApiAnswer {
  status: number;
  body: unknown;
}

/** Options of {@link ApiClient}. */
export interface ApiClientOptions {
  /** Base URL of the API, e.g. `http://127.0.0.1:9400`. */
  baseUrl: string;
  /** Bearer token (`api.token`). @default undefined */
  token?: string | undefined;
  /** Deadline of one request. @default 15000 */
  timeoutMs?: number;
  /** Aborts every request in flight and every later one (the demo is stopping). @default undefined */
  signal?: AbortSignal | undefined;
}

/** A small JSON client of the modelwatch API. */
export class ApiClient {
  private readonly base: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  private readonly signal: AbortSignal | undefined;

  constructor(options: ApiClientOptions) {
    this.base = options.baseUrl.replace(/\/+$/, '');
    this.token = options.token;
    this.timeoutMs = options.timeoutMs ?? 15_000;
    this.signal = options.signal;
  }

  /** Base URL of the API. */
  get baseUrl(): string {
    return this.base;
  }

  /**
   * Sends one request. Resolves with the status and body for any HTTP answer; a network failure or a
   * timeout or an abort resolves with status 0 and `{ error }`, so pollers carry on.
   */
  async request(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<ApiAnswer> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    try {
      const res = await fetch(`${this.base}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal:
          this.signal === undefined
            ? AbortSignal.timeout(this.timeoutMs)
            : AbortSignal.any([this.signal, AbortSignal.timeout(this.timeoutMs)]),
      });
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = text === '' ? undefined : JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      return { status: res.status, body: parsed };
    } catch (err) {
      return { status: 0, body: { error: errorMessage(err) } };
    }
  }

  /** GET. */
  get(path: string): Promise<ApiAnswer> {
    return this.request('GET', path);
  }

  /** POST with a JSON body. */
  post(path: string, body: unknown): Promise<ApiAnswer> {
    return this.request('POST', path, body);
  }
}

/** The error message of an API answer (`{"error":{"message"}}` or `{"error":"..."}`), else the status. */
export function answerError(a: ApiAnswer): string {
  const e = typeof a.body === 'object' && a.body !== null ? (a.body as { error?: unknown }).error : undefined;
  if (typeof e === 'string') return e;
  if (typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string') {
    return (e as { message: string }).message;
  }
  return a.status === 0 ? 'no answer' : `HTTP ${a.status}`;
}
