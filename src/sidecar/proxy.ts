import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { CapturedCall } from '../protocol/capture.js';
import { newId } from '../common/ids.js';
import { connectionTokens, dropPairs, HOP_BY_HOP, NEVER_CAPTURED } from './headers.js';
import type { SidecarMetrics, UpstreamErrorReason } from './metrics.js';
import { matchInferPath } from './route.js';
import type { Tee } from './tee.js';

/** What the request handler needs; built once by `startSidecar`. */
export interface ProxyDeps {
  /** Upstream dispatcher (an undici `Pool`). */
  dispatcher: Dispatcher;
  /** Path prefix of the upstream URL ('' for none). */
  basePath: string;
  metrics: SidecarMetrics;
  /** The tee, or `undefined` when capture is off. */
  tee: Tee | undefined;
  /** Capture rate of a model, 0..1. */
  samplingFor: (model: string) => number;
  maxCaptureBytes: number;
  /**
   * Response sizes seen per model: when a model's responses keep one size, a captured request is read
   * straight into a buffer laid out as the whole record. `undefined`: never.
   */
  responseSizes?: ResponseSizeHints | undefined;
  /** Lower-case request header names copied into captures (never the {@link NEVER_CAPTURED} ones). */
  captureHeaders: ReadonlySet<string>;
  /** Query parameter names kept in the captured route; every other one is dropped. */
  captureQueryParams: ReadonlySet<string>;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** Answers `GET /metrics` on the sidecar itself; `undefined` forwards it like any path. */
  serveMetrics: ((res: ServerResponse) => void) | undefined;
  /** Called when a request starts and when it is finished (in-flight accounting for shutdown). */
  onStart: () => void;
  onFinish: () => void;
}

/**
 * The route as captured: the request path with only the allow-listed query parameters (in their
 * original order and encoding), so a secret passed as `?api_key=` never reaches the bus, the store, a
 * log or a metric. The upstream still receives the full URL.
 */
export function captureRoute(url: string, keep: ReadonlySet<string>): string {
  const q = url.indexOf('?');
  if (q === -1) return url;
  const path = url.slice(0, q);
  if (keep.size === 0) return path;
  const kept: string[] = [];
  for (const pair of url.slice(q + 1).split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const rawName = eq === -1 ? pair : pair.slice(0, eq);
    let name: string;
    try {
      name = decodeURIComponent(rawName.replace(/\+/g, ' '));
    } catch {
      continue;
    }
    if (keep.has(name)) kept.push(pair);
  }
  return kept.length === 0 ? path : `${path}?${kept.join('&')}`;
}

/** A capped copy of a body, taken on the side while the body streams through. */
class BodyTap {
  private readonly chunks: Buffer[] = [];
  private captured = 0;
  /** Bytes seen on the wire. */
  size = 0;

  constructor(private readonly cap: number) {}

  add(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.captured >= this.cap) return;
    const take = Math.min(this.cap - this.captured, chunk.length);
    this.chunks.push(take === chunk.length ? chunk : chunk.subarray(0, take));
    this.captured += take;
  }

  get truncated(): boolean {
    return this.size > this.captured;
  }

  /** The captured bytes as the chunks they arrived in (not joined: the tee's encoder copies them once). */
  parts(): readonly Buffer[] {
    return this.chunks;
  }
}

/**
 * The captured response size of each model's last two responses. When they were equal, the next
 * captured request is read straight into one buffer laid out as the whole record
 * (`uint32BE(len(request)) ‖ request ‖ response`, the request part forwarded upstream as is), and a
 * response of that size is copied into its place: one allocation and one copy of each body per call,
 * instead of joining the request for the upstream and copying it again into the record. A response of
 * another size falls back to a new record (the first buffer is then wasted, hence two equal sizes
 * before guessing).
 */
export class ResponseSizeHints {
  private readonly seen = new Map<string, { size: number; stable: boolean }>();

  /** @param maxModels models remembered; later ones get no hint. */
  constructor(private readonly maxModels = 1024) {}

  /** The response size to expect for `model`, when its last two captured responses had it. */
  expect(model: string): number | undefined {
    const e = this.seen.get(model);
    return e !== undefined && e.stable ? e.size : undefined;
  }

  /** Records a captured response's size (`-1` for one that was truncated or not captured whole). */
  note(model: string, size: number): void {
    const e = this.seen.get(model);
    if (e === undefined) {
      if (this.seen.size < this.maxModels) this.seen.set(model, { size, stable: false });
      return;
    }
    e.stable = size >= 0 && e.size === size;
    e.size = size;
  }
}

/** Body metadata of a capture, gathered from headers. */
interface BodyMeta {
  contentType: string;
  contentEncoding: string;
  headerLength: number | undefined;
}

function emptyMeta(): BodyMeta {
  return { contentType: '', contentEncoding: '', headerLength: undefined };
}

const EMPTY = Buffer.alloc(0);

/**
 * Request bodies up to this size that carry a Content-Length are read whole and handed to undici as one
 * `Buffer` (DESIGN §4 rule 2): on undici's streamed request-body path, each young-generation collection
 * of the sidecar kept whole request graphs alive (~2.6 MB surviving, 5–8 ms pauses); with a buffer body
 * ~0.1 MB survives. Larger and chunked bodies keep streaming.
 */
export const WHOLE_BODY_MAX_BYTES = 64 * 1024;

function upstreamErrorKind(err: Error): { status: number; reason: UpstreamErrorReason; code: string } {
  const code = (err as { code?: unknown }).code;
  switch (code) {
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
    case 'ETIMEDOUT':
      return { status: 504, reason: 'timeout', code: 'upstream_timeout' };
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EAI_AGAIN':
      return { status: 502, reason: 'connect', code: 'upstream_unavailable' };
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
      return { status: 502, reason: 'reset', code: 'upstream_unavailable' };
    default:
      return { status: 502, reason: 'other', code: 'upstream_unavailable' };
  }
}

/**
 * One proxied request: the undici dispatch handler (legacy callback form, which undici's HTTP/1.1
 * client calls directly without a wrapper) plus the little state the tee needs.
 */
class ProxyCall implements Dispatcher.DispatchHandler {
  private abortUpstream: ((err?: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;
  private readonly t0 = performance.now();
  private readonly startedAt: number;
  private status = 0;
  private bytesOut = 0;
  private done = false;
  private clientGone = false;
  private tapAttached = false;
  /** The request body streams to undici (`req` is the body); else it is read whole first. */
  private streamBody = false;
  private dispatched = false;
  /** Whole-body read: the first chunk, and the rest when there is more than one. */
  private firstChunk: Buffer | undefined;
  private moreChunks: Buffer[] | undefined;
  private bodyBytes = 0;
  /** The record's buffer, when the request was read straight into it (see {@link ResponseSizeHints}). */
  private record: Buffer | undefined;
  readonly reqTap: BodyTap | undefined;
  private readonly resTap: BodyTap | undefined;
  private readonly resMeta: BodyMeta | undefined;

  constructor(
    private readonly deps: ProxyDeps,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly model: string,
    private readonly version: string,
    private readonly requestId: string,
    private readonly path: string,
    private readonly headers: string[],
    private readonly hasBody: boolean,
    private readonly declaredLength: number,
    private readonly chunked: boolean,
    teed: boolean,
    private readonly reqMeta: BodyMeta | undefined,
    private readonly captured: Record<string, string> | undefined,
  ) {
    this.startedAt = teed ? Date.now() : 0;
    if (teed) {
      this.reqTap = new BodyTap(deps.maxCaptureBytes);
      this.resTap = new BodyTap(deps.maxCaptureBytes);
      this.resMeta = emptyMeta();
    }
    res.on('close', this.onResClose);
  }

  private readonly onResClose = (): void => {
    if (this.done) return;
    this.clientGone = true;
    this.deps.metrics.clientAbort();
    if (this.abortUpstream) this.abortUpstream(new Error('client closed the connection'));
    // Gone while its body was still being read: nothing was sent upstream, and nothing else will end it.
    // The capture keeps what had arrived.
    else if (!this.dispatched) {
      this.req.off('data', this.onWholeData);
      const tap = this.reqTap;
      if (tap !== undefined && this.firstChunk !== undefined) {
        if (this.moreChunks === undefined) tap.add(this.firstChunk);
        else for (const c of this.moreChunks) tap.add(c);
      }
      this.firstChunk = undefined;
      this.moreChunks = undefined;
      this.finish(499, 'client_aborted');
    }
  };

  private readonly onWholeData = (chunk: Buffer): void => {
    if (this.firstChunk === undefined) this.firstChunk = chunk;
    else (this.moreChunks ??= [this.firstChunk]).push(chunk);
    this.bodyBytes += chunk.length;
  };

  private readonly onWholeEnd = (): void => {
    this.req.off('data', this.onWholeData);
    const more = this.moreChunks;
    const hint =
      this.reqTap !== undefined && this.bodyBytes <= this.deps.maxCaptureBytes
        ? this.deps.responseSizes?.expect(this.model)
        : undefined;
    let body: Buffer;
    if (hint !== undefined) {
      // From the tee's bus when it keeps records in memory of its own (the Kafka publisher worker's ring).
      // The upstream request is written from this buffer. Its slot can be reused only after the record was
      // offered (once the response is complete) and the broker is done with it, so any request bytes still
      // unsent by then come after the upstream's complete answer: HTTP/1.1 has the upstream discard them or
      // close the connection, never read them as part of this or another request.
      const size = 4 + this.bodyBytes + hint;
      const record = this.deps.tee !== undefined ? this.deps.tee.allocateRecord(size) : Buffer.allocUnsafe(size);
      record.writeUInt32BE(this.bodyBytes, 0);
      let at = 4;
      if (more !== undefined) for (const c of more) at += c.copy(record, at);
      else if (this.firstChunk !== undefined) at += this.firstChunk.copy(record, at);
      body = record.subarray(4, at);
      this.record = record;
    } else body = more !== undefined ? Buffer.concat(more, this.bodyBytes) : (this.firstChunk ?? EMPTY);
    this.firstChunk = undefined;
    this.moreChunks = undefined;
    if (this.done || this.clientGone) {
      // Ended before the body was read (finish() ran without it): the record will not be offered.
      if (this.record !== undefined) this.deps.tee?.releaseRecord(this.record);
      this.record = undefined;
      return;
    }
    this.reqTap?.add(body);
    this.dispatch(body);
  };

  /**
   * Forwards the request: a body of at most {@link WHOLE_BODY_MAX_BYTES} with a Content-Length is read
   * whole first and sent as one buffer; any other body streams through.
   */
  start(): void {
    if (!this.hasBody) {
      this.dispatch(null);
      return;
    }
    if (this.declaredLength > 0 && this.declaredLength <= WHOLE_BODY_MAX_BYTES && !this.chunked) {
      this.req.on('data', this.onWholeData);
      this.req.once('end', this.onWholeEnd);
      return;
    }
    this.streamBody = true;
    this.dispatch(this.req);
  }

  private dispatch(body: Buffer | IncomingMessage | null): void {
    this.dispatched = true;
    const deps = this.deps;
    try {
      deps.dispatcher.dispatch(
        {
          path: this.path,
          method: this.req.method ?? 'GET',
          headers: this.headers,
          body,
          headersTimeout: deps.headersTimeoutMs,
          bodyTimeout: deps.bodyTimeoutMs,
        },
        this,
      );
    } catch (err) {
      // undici rejects some inputs synchronously (invalid method or header): answer 502 like any failure.
      this.onError(err instanceof Error ? err : new Error(String(err)));
    }
  }

  // Listeners that only some requests need (a slow client, a streamed body) are made on first use:
  // no closure is allocated per request for them.
  private onDrainFn: (() => void) | undefined;
  private onReqDataFn: ((chunk: Buffer) => void) | undefined;

  private get onDrain(): () => void {
    return (this.onDrainFn ??= () => {
      const r = this.resumeUpstream;
      if (r) r();
    });
  }

  private get onReqData(): (chunk: Buffer) => void {
    return (this.onReqDataFn ??= (chunk: Buffer) => {
      this.reqTap?.add(chunk);
    });
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortUpstream = abort;
    if (this.clientGone) {
      abort(new Error('client closed the connection'));
      return;
    }
    // undici starts reading the body right after onConnect in the same tick, so this listener sees
    // every chunk undici forwards (both listeners receive the same Buffer: no copy).
    if (this.reqTap && this.streamBody && !this.tapAttached) {
      this.tapAttached = true;
      this.req.on('data', this.onReqData);
    }
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[] | string[], resume: () => void, statusText: string): boolean {
    // 1xx informational responses are not relayed (undici answers 100-continue itself).
    if (statusCode < 200) return true;
    this.status = statusCode;
    this.resumeUpstream = resume;
    const out: string[] = [];
    let connection: string | undefined;
    let sawRequestId = false;
    const meta = this.resMeta;
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      const k = rawHeaders[i] as Buffer | string;
      const v = rawHeaders[i + 1] as Buffer | string;
      const name = typeof k === 'string' ? k : k.toString('latin1');
      const value = typeof v === 'string' ? v : v.toString('latin1');
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower)) {
        if (lower === 'connection') connection = value;
        continue;
      }
      if (lower === 'x-request-id') sawRequestId = true;
      if (meta !== undefined) {
        if (lower === 'content-type') meta.contentType = value;
        else if (lower === 'content-encoding') meta.contentEncoding = value;
        else if (lower === 'inference-header-content-length') {
          const n = Number(value);
          if (Number.isInteger(n) && n >= 0) meta.headerLength = n;
        }
      }
      out.push(name, value);
    }
    const extra = connectionTokens(connection);
    const headers = extra ? dropPairs(out, extra) : out;
    // Hand the client the id its capture is stored under, so it can post labels for it later.
    if (!sawRequestId) headers.push('x-request-id', this.requestId);
    if (this.res.destroyed) return false;
    this.res.writeHead(statusCode, statusText, headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.bytesOut += chunk.length;
    this.resTap?.add(chunk);
    if (this.res.write(chunk)) return true;
    if (this.res.destroyed) return true;
    this.res.once('drain', this.onDrain);
    return false;
  }

  onComplete(): void {
    this.res.end();
    this.finish(this.status, '');
  }

  onError(err: Error): void {
    if (this.done) return;
    if (this.clientGone) {
      this.finish(this.status === 0 ? 499 : this.status, 'client_aborted');
      return;
    }
    const kind = upstreamErrorKind(err);
    this.deps.metrics.upstreamError(kind.reason);
    if (!this.res.headersSent && !this.res.destroyed) {
      const req = this.req;
      if (this.reqTap && this.streamBody && !this.tapAttached && !req.readableEnded && !req.destroyed) {
        // undici never read the body (no connection was made): read it now so the failed call is
        // captured with its input (DESIGN §4 rule 3), then answer. Node discards an unread body once the
        // response ends, so the answer has to wait for it.
        this.tapAttached = true;
        req.on('data', this.onReqData);
        let answered = false;
        const answer = (): void => {
          if (answered) return;
          answered = true;
          this.respondError(kind, err);
        };
        req.once('end', answer);
        req.once('close', answer);
        return;
      }
      this.respondError(kind, err);
      return;
    }
    // Headers already went out: the only honest signal left is to cut the client connection.
    this.res.destroy();
    this.finish(this.status, `${kind.reason}: ${err.message}`);
  }

  private respondError(kind: { status: number; code: string; reason: UpstreamErrorReason }, err: Error): void {
    if (this.done) return;
    if (this.res.headersSent || this.res.destroyed) {
      this.finish(
        this.clientGone ? 499 : kind.status,
        this.clientGone ? 'client_aborted' : `${kind.reason}: ${err.message}`,
      );
      return;
    }
    const body = JSON.stringify({ error: { code: kind.code, message: `upstream: ${err.message}` } });
    this.res.writeHead(kind.status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'x-request-id': this.requestId,
    });
    this.res.end(body);
    this.bytesOut = Buffer.byteLength(body);
    this.finish(kind.status, `${kind.reason}: ${err.message}`);
  }

  private finish(status: number, error: string): void {
    if (this.done) return;
    this.done = true;
    // Let go of undici's request (its abort closure holds the request and the body it forwarded) and of
    // this call (the response's 'close' listener): the response object lives on until its last bytes
    // are flushed and the connection's next request, and anything it reaches then survives a scavenge
    // and is promoted; at 64 KB that was a forwarded body per call, freed only by a full collection.
    this.abortUpstream = undefined;
    this.resumeUpstream = undefined;
    this.res.off('close', this.onResClose);
    if (this.tapAttached && this.onReqDataFn !== undefined) this.req.off('data', this.onReqDataFn);
    const deps = this.deps;
    const latencyMs = performance.now() - this.t0;
    const reqTap = this.reqTap;
    const bytesIn = reqTap ? reqTap.size : this.streamBody ? this.declaredLength : this.bodyBytes;
    deps.metrics.observe(this.model, this.version, status, latencyMs / 1000, bytesIn, this.bytesOut);
    deps.onFinish();
    if (reqTap === undefined || deps.tee === undefined) return;
    const resTap = this.resTap as BodyTap;
    const reqMeta = this.reqMeta ?? emptyMeta();
    const resMeta = this.resMeta ?? emptyMeta();
    const call: CapturedCall = {
      eventId: newId(),
      requestId: this.requestId,
      source: 'rest',
      model: this.model,
      version: this.version,
      route: captureRoute(this.req.url ?? '', deps.captureQueryParams),
      method: this.req.method ?? 'POST',
      status,
      startedAt: this.startedAt,
      latencyMs: Math.round(latencyMs * 1000) / 1000,
      // The bodies go to the tee as chunk lists (below), copied once into the record.
      request: {
        body: EMPTY,
        size: reqTap.size,
        truncated: reqTap.truncated,
        contentType: reqMeta.contentType,
        contentEncoding: reqMeta.contentEncoding,
        headerLength: reqMeta.headerLength,
      },
      response: {
        body: EMPTY,
        size: resTap.size,
        truncated: resTap.truncated,
        contentType: resMeta.contentType,
        contentEncoding: resMeta.contentEncoding,
        headerLength: resMeta.headerLength,
      },
      headers: this.captured ?? {},
      error,
    };
    deps.responseSizes?.note(this.model, resTap.truncated ? -1 : resTap.size);
    const record = this.record;
    this.record = undefined;
    if (record !== undefined && !resTap.truncated && record.length === 4 + reqTap.size + resTap.size) {
      // The request is in place already (it was forwarded from this buffer); the response goes after it.
      let at = 4 + reqTap.size;
      for (const c of resTap.parts()) at += c.copy(record, at);
      deps.tee.offer(call, { value: record });
      return;
    }
    deps.tee.offer(call, { request: reqTap.parts(), response: resTap.parts() });
    // The guess was wrong: the record's buffer was only the forwarded request (copied by the encoder above).
    if (record !== undefined) deps.tee.releaseRecord(record);
  }
}

/**
 * Builds the `node:http` request listener of the sidecar: forwards every method and path to the
 * upstream and taps inference calls for the tee. Responses stream; request bodies up to
 * {@link WHOLE_BODY_MAX_BYTES} with a Content-Length are read whole and sent as one buffer, larger or
 * chunked ones stream (DESIGN §4 rule 2). No body is parsed here (DESIGN §4 rule 5).
 */
export function createProxyHandler(deps: ProxyDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = req.url ?? '/';
    const method = req.method ?? 'GET';
    if (deps.serveMetrics !== undefined && url === '/metrics' && method === 'GET') {
      deps.serveMetrics(res);
      return;
    }
    const target = matchInferPath(method, url);
    let teed = false;
    if (target !== undefined && deps.tee !== undefined) {
      const rate = deps.samplingFor(target.model);
      if (rate >= 1 || (rate > 0 && Math.random() < rate)) teed = true;
      else deps.tee.noteSampledOut();
    }
    const raw = req.rawHeaders;
    const fwd: string[] = [];
    let requestId: string | undefined;
    let ceId: string | undefined;
    let connection: string | undefined;
    let hasBody = false;
    let chunked = false;
    let declaredLength = 0;
    const reqMeta = teed ? emptyMeta() : undefined;
    let captured: Record<string, string> | undefined;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i] as string;
      const value = raw[i + 1] as string;
      const lower = name.toLowerCase();
      switch (lower) {
        case 'host':
        case 'expect':
          // undici sets Host for the upstream and handles 100-continue itself.
          continue;
        case 'connection':
          connection = value;
          continue;
        case 'transfer-encoding':
          hasBody = true;
          chunked = true;
          continue;
        case 'keep-alive':
        case 'proxy-connection':
        case 'te':
        case 'upgrade':
          continue;
        case 'content-length':
          declaredLength = Number(value);
          hasBody = declaredLength > 0;
          break;
        case 'x-request-id':
          requestId = value;
          break;
        case 'ce-id':
          ceId = value;
          break;
      }
      fwd.push(name, value);
      if (reqMeta !== undefined) {
        if (lower === 'content-type') reqMeta.contentType = value;
        else if (lower === 'content-encoding') reqMeta.contentEncoding = value;
        else if (lower === 'inference-header-content-length') {
          const n = Number(value);
          if (Number.isInteger(n) && n >= 0) reqMeta.headerLength = n;
        }
        if (deps.captureHeaders.has(lower) && !NEVER_CAPTURED.has(lower)) (captured ??= {})[lower] = value;
      }
    }
    const extra = connectionTokens(connection);
    const headers = extra ? dropPairs(fwd, extra) : fwd;
    if (requestId === undefined) {
      requestId = ceId ?? newId();
      headers.push('x-request-id', requestId);
    }
    deps.onStart();
    new ProxyCall(
      deps,
      req,
      res,
      target?.model ?? '',
      target?.version ?? '',
      requestId,
      deps.basePath === '' ? url : deps.basePath + url,
      headers,
      hasBody,
      Number.isFinite(declaredLength) ? declaredLength : 0,
      chunked,
      teed,
      reqMeta,
      captured,
    ).start();
  };
}
