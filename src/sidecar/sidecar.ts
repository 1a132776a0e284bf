import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import { modelLabelsOn } from '../common/metrics.js';
import type { RunningRole, RuntimeContext } from '../runtime/context.js';
import { SidecarMetrics } from './metrics.js';
import { createProxyHandler, ResponseSizeHints } from './proxy.js';
import type { Tee } from './tee.js';
import { acquireTee } from './shared-tee.js';
import { diagnosticsIntervalFromEnv, startDiagnosticsLog } from './diagnostics.js';
import { capYoungGeneration, scavengeOnCollectingThread } from './young-generation.js';
import { widenHeapGrowth } from '../common/heap-growth.js';

/** Options of {@link startSidecar}; unset values come from `ctx.config.sidecar`. */
export interface SidecarOptions {
  /** Upstream base URL (`http://host:port[/prefix]`). @default config.sidecar.upstream */
  upstream: string;
  /** `HOST:PORT` to listen on (port 0 picks a free port). @default config.sidecar.listen */
  listen: string;
  /** Capture inference calls into the tee. @default true */
  tee: boolean;
  /** Most upstream connections kept by the pool. @default 256 */
  connections: number;
  /** Idle upstream connections are closed after this long. @default 30000 */
  upstreamKeepAliveMs: number;
  /** Idle client connections are closed after this long. @default 65000 */
  clientKeepAliveMs: number;
  /** Serve Prometheus metrics at exactly `GET /metrics` on the sidecar listener. @default true */
  serveMetrics: boolean;
  /** Tee flush cadence. @default 20 */
  teeFlushIntervalMs: number;
  /** Largest tee batch per publish. @default 200 */
  teeMaxBatchMessages: number;
  /** A tee publish not settled after this long is failed and its records dropped. @default 5000 */
  teePublishTimeoutMs: number;
  /**
   * Log a `diagnostics` line (event-loop delay, GC pauses, CPU, memory) at level info every this many
   * ms; 0 turns it off. @default `$MODELWATCH_DIAGNOSTICS_INTERVAL_MS`, else 0
   */
  diagnosticsIntervalMs: number;
  /**
   * Cap on V8's young generation of this process, MB per semi-space (0: V8's own sizing, which grows
   * to 16 MB). A young generation that grew large lets dead request and response bodies pile up
   * between scavenges, which V8 answers with full collections; see {@link capYoungGeneration}. A
   * process started with its own young-generation flag keeps it. @default 2
   */
  youngGenerationSemiSpaceMb: number;
  /**
   * How much V8's old generation may grow between two full collections, % of what the last one left
   * alive (0: V8's own factor). The sidecar keeps little alive while request bodies come and go; with
   * V8's own factor, 64 KB bodies at 1,000 req/s set off a full collection every ~100 ms. Ingest's
   * bound (`ingest.heapGrowingPercent`) wins in a process that runs both; a process started with
   * `--heap-growing-percent` keeps its own; see {@link widenHeapGrowth}. @default 100
   */
  heapGrowingPercent: number;
  /**
   * Keep V8's parallel scavenges (true), or run each scavenge on the collecting thread alone (false),
   * which shortens the request thread's GC pauses when other work holds the other CPUs; the setting is
   * process-wide, and `modelwatch up`, whose ingest copies more per scavenge, keeps V8's default. A
   * process started with its own scavenge flag keeps it; see {@link scavengeOnCollectingThread}.
   * @default false
   */
  parallelScavenge: boolean;
}

const defaults = {
  tee: true,
  connections: 256,
  upstreamKeepAliveMs: 30_000,
  clientKeepAliveMs: 65_000,
  serveMetrics: true,
  teeFlushIntervalMs: 20,
  teeMaxBatchMessages: 200,
  teePublishTimeoutMs: 5_000,
  youngGenerationSemiSpaceMb: 2,
  heapGrowingPercent: 100,
  parallelScavenge: false,
} satisfies Omit<Required<SidecarOptions>, 'upstream' | 'listen' | 'diagnosticsIntervalMs'>;

/** A running sidecar. */
export interface RunningSidecar extends RunningRole {
  /** `http://host:port` the sidecar listens on. */
  url: string;
  /** The tee, for its `stats()`. */
  tee: Tee;
  /** Requests currently being proxied. */
  inFlight(): number;
}

function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  const port = Number(listen.slice(i + 1));
  let host = listen.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ModelwatchError(ErrorCodes.configInvalid, `sidecar listen address ${listen} is not HOST:PORT`, {
      field: 'sidecar.listen',
    });
  }
  return { host, port };
}

function checkPositive(opts: Record<string, unknown>, keys: string[]): void {
  for (const k of keys) {
    const v = opts[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new ModelwatchError(ErrorCodes.configInvalid, `sidecar option ${k} must be a positive number`, {
        field: k,
      });
    }
  }
}

/**
 * Starts the REST sidecar: a `node:http` listener that forwards every request to the upstream through
 * an undici keep-alive pool, streaming bodies both ways, and tees inference calls to `ctx.bus`
 * (DESIGN §4 rules 1–5). `GET /metrics` is answered by the sidecar itself (when `serveMetrics`).
 * `stop()` stops accepting, lets in-flight requests finish, flushes the tee within
 * `config.sidecar.shutdownDeadlineMs`, then closes the pool.
 */
export async function startSidecar(
  ctx: RuntimeContext,
  options: Partial<SidecarOptions> = {},
): Promise<RunningSidecar> {
  const sc = ctx.config.sidecar;
  const upstream = options.upstream ?? sc.upstream;
  if (upstream === undefined || upstream === '') {
    throw new ModelwatchError(
      ErrorCodes.configInvalid,
      'the sidecar needs an upstream URL (--upstream or MODELWATCH_UPSTREAM)',
      {
        field: 'sidecar.upstream',
      },
    );
  }
  let upstreamUrl: URL;
  try {
    upstreamUrl = new URL(upstream);
  } catch (err) {
    throw new ModelwatchError(ErrorCodes.configInvalid, `sidecar upstream ${upstream} is not a URL`, {
      field: 'sidecar.upstream',
      cause: err,
    });
  }
  if (upstreamUrl.protocol !== 'http:' && upstreamUrl.protocol !== 'https:') {
    throw new ModelwatchError(
      ErrorCodes.configInvalid,
      `sidecar upstream must be http(s), got ${upstreamUrl.protocol}`,
      {
        field: 'sidecar.upstream',
      },
    );
  }
  const opts = {
    ...defaults,
    diagnosticsIntervalMs: diagnosticsIntervalFromEnv(),
    heapGrowingPercent: sc.heapGrowingPercent,
    ...options,
    upstream,
    listen: options.listen ?? sc.listen,
  };
  if (!(Number.isInteger(opts.diagnosticsIntervalMs) && opts.diagnosticsIntervalMs >= 0)) {
    throw new ModelwatchError(ErrorCodes.configInvalid, 'sidecar option diagnosticsIntervalMs must be an integer ≥ 0', {
      field: 'diagnosticsIntervalMs',
    });
  }
  if (!(Number.isInteger(opts.youngGenerationSemiSpaceMb) && opts.youngGenerationSemiSpaceMb >= 0)) {
    throw new ModelwatchError(
      ErrorCodes.configInvalid,
      'sidecar option youngGenerationSemiSpaceMb must be an integer ≥ 0',
      { field: 'youngGenerationSemiSpaceMb' },
    );
  }
  if (!(Number.isInteger(opts.heapGrowingPercent) && opts.heapGrowingPercent >= 0)) {
    throw new ModelwatchError(ErrorCodes.configInvalid, 'sidecar option heapGrowingPercent must be an integer ≥ 0', {
      field: 'heapGrowingPercent',
    });
  }
  checkPositive(opts, [
    'connections',
    'upstreamKeepAliveMs',
    'clientKeepAliveMs',
    'teeFlushIntervalMs',
    'teeMaxBatchMessages',
    'teePublishTimeoutMs',
  ]);
  const { host, port } = splitListen(opts.listen);
  const basePath = upstreamUrl.pathname.replace(/\/+$/, '');

  const pool = new Pool(upstreamUrl.origin, {
    connections: opts.connections,
    pipelining: 1,
    keepAliveTimeout: opts.upstreamKeepAliveMs,
    keepAliveMaxTimeout: Math.max(opts.upstreamKeepAliveMs, 600_000),
    connect: { timeout: sc.upstreamConnectTimeoutMs },
    headersTimeout: sc.upstreamTimeoutMs,
    bodyTimeout: sc.upstreamTimeoutMs,
  });
  // A pool error outside a request (e.g. a socket failing while idle) must not crash the process.
  pool.on('connectionError', () => undefined);

  const metrics = new SidecarMetrics(ctx.metrics, modelLabelsOn(ctx.metrics, ctx.config.metrics));
  const lease = acquireTee(ctx, {
    maxBufferBytes: sc.maxTeeBufferBytes,
    flushIntervalMs: opts.teeFlushIntervalMs,
    maxBatchMessages: opts.teeMaxBatchMessages,
    publishTimeoutMs: opts.teePublishTimeoutMs,
  });
  const tee = lease.tee;
  const rates = new Map<string, number>();
  for (const [name, m] of Object.entries(ctx.config.models)) if (m.sampling !== undefined) rates.set(name, m.sampling);
  const defaultRate = sc.sampling;

  let inFlight = 0;
  let idle: (() => void) | undefined;
  const serveMetrics = opts.serveMetrics
    ? (res: ServerResponse): void => {
        ctx.metrics.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': ctx.metrics.contentType, 'content-length': Buffer.byteLength(text) });
            res.end(text);
          },
          (err: unknown) => {
            const body = JSON.stringify({ error: { code: ErrorCodes.internal, message: errorMessage(err) } });
            res.writeHead(500, { 'content-type': 'application/json' });
            res.end(body);
          },
        );
      }
    : undefined;

  const handler = createProxyHandler({
    dispatcher: pool,
    basePath,
    metrics,
    tee: opts.tee ? tee : undefined,
    samplingFor: (model) => rates.get(model) ?? defaultRate,
    maxCaptureBytes: sc.maxCaptureBytes,
    responseSizes: opts.tee ? new ResponseSizeHints() : undefined,
    captureHeaders: new Set(sc.captureHeaders.map((h) => h.toLowerCase())),
    captureQueryParams: new Set(sc.captureQueryParams),
    headersTimeoutMs: sc.upstreamTimeoutMs,
    bodyTimeoutMs: sc.upstreamTimeoutMs,
    serveMetrics,
    onStart: () => {
      inFlight++;
    },
    onFinish: () => {
      inFlight--;
      if (inFlight === 0 && idle) idle();
    },
  });

  const server: Server = createServer({ keepAliveTimeout: opts.clientKeepAliveMs }, handler);
  // A malformed request line or header never reaches the handler: answer 400 and close, as Node does by default.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (socket.writable && err.code !== 'ECONNRESET')
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    // Could not listen (address in use, …): give back the shared tee and the pool before failing.
    await lease.release(0);
    await pool.destroy().catch(() => undefined);
    throw err;
  }
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${shownHost}:${addr.port}`;
  const youngGeneration = capYoungGeneration(opts.youngGenerationSemiSpaceMb);
  const heapGrowth = widenHeapGrowth(opts.heapGrowingPercent);
  const scavenges = scavengeOnCollectingThread(opts.parallelScavenge);
  ctx.logger.info('sidecar listening', {
    url,
    upstream: upstreamUrl.origin + basePath,
    tee: opts.tee,
    youngGeneration,
    heapGrowth,
    scavenges,
  });
  const diagnostics =
    opts.diagnosticsIntervalMs > 0 ? startDiagnosticsLog(ctx.logger, opts.diagnosticsIntervalMs) : undefined;

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const deadline = Date.now() + sc.shutdownDeadlineMs;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      if (inFlight > 0) {
        let t: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => {
            idle = resolve;
          }),
          new Promise<void>((resolve) => {
            t = setTimeout(resolve, Math.max(0, deadline - Date.now()));
          }),
        ]);
        clearTimeout(t);
      }
      // Finished responses may still be draining to their clients: close connections as they go idle and
      // only cut the rest when the deadline has passed.
      server.closeIdleConnections();
      const sweep = setInterval(() => server.closeIdleConnections(), 25);
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([
        closed,
        new Promise<void>((resolve) => {
          grace = setTimeout(resolve, Math.max(0, deadline - Date.now()));
        }),
      ]);
      clearInterval(sweep);
      clearTimeout(grace);
      server.closeAllConnections();
      await closed;
      await lease.release(Math.max(0, deadline - Date.now()));
      await pool.destroy().catch(() => undefined);
      diagnostics?.stop();
      ctx.logger.info('sidecar stopped', { tee: tee.stats() });
    })();
    return stopping;
  };

  return { name: 'sidecar', urls: [url], url, tee, inFlight: () => inFlight, stop };
}
