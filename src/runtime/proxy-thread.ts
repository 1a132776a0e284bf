import type { Worker } from 'node:worker_threads';
import type { Metric, MetricObjectWithValues, MetricValue } from 'prom-client';
import { isBridgePublish, serveBridgePublish } from '../bus/thread-bridge.js';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import { startWorker, workerEntryUrl } from '../common/worker.js';
import type { RunningRole, RuntimeContext } from './context.js';
import { yieldToThread } from './thread-priority.js';
import type { FromProxyThread, PostedError, ProxyThreadRole, ToProxyThread } from './proxy-thread-protocol.js';

export { ProxyThreadRoles, type ProxyThreadRole } from './proxy-thread-protocol.js';

type MetricJson = MetricObjectWithValues<MetricValue<string>>;

/** Options of {@link ProxyThread}. */
export interface ProxyThreadOptions {
  /** How long a start, stop or metrics request may wait for the thread's answer. @default 30000 */
  answerTimeoutMs?: number;
  /** How long `close` lets the thread finish before it is terminated. @default 5000 */
  closeTimeoutMs?: number;
  /** URL of the thread's entry module. @default the `proxy-thread-entry` module next to this one */
  entryUrl?: URL;
  /**
   * How many steps nicer every other thread of the process becomes once the proxy thread runs (Linux), so a
   * proxied request wins a contended core over ingest, the detectors and the embedded engine, which then
   * fall behind first (captures they cannot take are counted drops); 0 leaves priorities alone. @default 10
   */
  othersNice?: number;
}

const defaults = {
  answerTimeoutMs: 30_000,
  closeTimeoutMs: 5_000,
  othersNice: 10,
} satisfies Omit<Required<ProxyThreadOptions>, 'entryUrl'>;

interface Waiter {
  resolve: (m: FromProxyThread) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

function rebuilt(e: PostedError): ModelwatchError {
  return new ModelwatchError(e.code, e.message, e.field === undefined ? {} : { field: e.field });
}

/**
 * The proxy roles of `modelwatch up` (REST sidecar, gRPC proxy) on an event loop of their own: a worker
 * thread of this process, so decoding, row encoding, the API and the detectors on the main thread never
 * delay a proxied request. The thread's tee publishes to the main thread's bus (`ctx.bus`, the in-process
 * bus) through a {@link BridgeBus}: batches of captures in one transferred buffer, acknowledged once the bus
 * accepted them. A refusal (`bus_full`) or a main thread too slow to answer makes the tee drop and count,
 * as with any bus; the proxy never waits. The thread's metrics are served by `ctx.metrics` (read from the
 * thread at each scrape), and the sidecar's own `GET /metrics` serves `ctx.metrics`, as on one thread. Roles started on one instance share the thread and its tee; the last stop closes it.
 */
export class ProxyThread {
  private readonly opts: typeof defaults & Pick<ProxyThreadOptions, 'entryUrl'>;
  private worker: Worker | undefined;
  private ready: Promise<void> | undefined;
  private readonly waiters = new Map<string, Waiter>();
  private readonly running = new Set<ProxyThreadRole>();
  private gone: Error | undefined;
  private nextMetricsId = 1;
  private snapshotting: Promise<MetricJson[]> | undefined;
  private lastSnapshot: MetricJson[] = [];
  private closing: Promise<void> | undefined;
  private tid: number | undefined;

  constructor(
    private readonly ctx: RuntimeContext,
    options: ProxyThreadOptions = {},
  ) {
    this.opts = { ...defaults, ...options };
    const nice = this.opts.othersNice;
    if (!(Number.isInteger(nice) && nice >= 0 && nice <= 19)) {
      throw new RangeError(`ProxyThreadOptions.othersNice must be an integer in 0..19, got ${nice}`);
    }
  }

  /** The thread's operating-system id once it started (Linux), else `undefined`. */
  get threadId(): number | undefined {
    return this.tid;
  }

  /** Starts `role` in the thread (starting the thread first when needed) and gives its handle. */
  async start(role: ProxyThreadRole): Promise<RunningRole> {
    if (this.running.has(role)) {
      throw new ModelwatchError(ErrorCodes.internal, `proxy thread already runs ${role}`);
    }
    await this.boot();
    const answer = await this.request(`start:${role}`, { type: 'start', role });
    if (answer.type === 'start-failed') {
      if (this.running.size === 0) await this.close();
      throw rebuilt(answer.error);
    }
    const [name, urls] = answer.type === 'started' ? [answer.name, answer.urls] : [role, []];
    this.running.add(role);
    await this.mirrorMetrics();
    let stopping: Promise<void> | undefined;
    return { name, urls, stop: () => (stopping ??= this.stopRole(role)) };
  }

  private boot(): Promise<void> {
    this.ready ??= new Promise<void>((resolve, reject) => {
      const url = this.opts.entryUrl ?? workerEntryUrl(import.meta.url, './proxy-thread-entry');
      const worker = startWorker(url, { config: this.ctx.config });
      this.worker = worker;
      this.waiters.set('ready', {
        resolve: () => resolve(),
        reject,
        timer: setTimeout(
          () => this.settle('ready', undefined, new ModelwatchError(ErrorCodes.timeout, 'proxy thread did not start')),
          this.opts.answerTimeoutMs,
        ),
      });
      worker.on('message', (m: unknown) => this.onMessage(m));
      worker.on('error', (err) => {
        this.ctx.logger.error('proxy thread failed', { error: errorMessage(err) });
        this.fail(err);
      });
      worker.on('exit', (code) => {
        if (this.closing === undefined) this.ctx.logger.error('proxy thread exited; the proxies are down', { code });
        this.fail(new ModelwatchError(ErrorCodes.internal, `proxy thread exited (code ${code})`));
      });
    });
    return this.ready;
  }

  private onMessage(m: unknown): void {
    if (isBridgePublish(m)) {
      if (this.worker !== undefined) serveBridgePublish(this.ctx.bus, this.worker, m);
      return;
    }
    const msg = m as FromProxyThread;
    switch (msg.type) {
      case 'ready':
        if (msg.tid !== undefined) {
          this.tid = msg.tid;
          if (this.opts.othersNice > 0) {
            const changed = yieldToThread(msg.tid, this.opts.othersNice);
            this.ctx.logger.debug('proxy thread has priority', { threads: changed.length, nice: this.opts.othersNice });
          }
        }
        this.settle('ready', msg);
        return;
      case 'started':
      case 'start-failed':
        this.settle(`start:${msg.role}`, msg);
        return;
      case 'stopped':
        this.settle(`stop:${msg.role}`, msg);
        return;
      case 'metrics':
        this.settle(`metrics:${msg.id}`, msg);
        return;
      case 'closed':
        this.settle('close', msg);
        return;
      case 'scrape':
        this.ctx.metrics.metrics().then(
          (text) => this.post({ type: 'scraped', id: msg.id, text }),
          (err: unknown) => this.post({ type: 'scraped', id: msg.id, error: errorMessage(err) }),
        );
        return;
    }
  }

  private post(m: ToProxyThread): void {
    if (this.gone === undefined) this.worker?.postMessage(m);
  }

  private settle(key: string, m: FromProxyThread | undefined, err?: Error): void {
    const w = this.waiters.get(key);
    if (w === undefined) return;
    this.waiters.delete(key);
    clearTimeout(w.timer);
    if (err !== undefined || m === undefined) w.reject(err ?? new Error(key));
    else w.resolve(m);
  }

  /** The thread is gone: every waiter fails, and later requests fail at once. */
  private fail(err: Error): void {
    this.gone ??= err;
    for (const key of [...this.waiters.keys()]) this.settle(key, undefined, err);
  }

  private request(key: string, m: ToProxyThread): Promise<FromProxyThread> {
    const worker = this.worker;
    if (this.gone !== undefined || worker === undefined) {
      return Promise.reject(this.gone ?? new ModelwatchError(ErrorCodes.internal, 'proxy thread not started'));
    }
    return new Promise<FromProxyThread>((resolve, reject) => {
      this.waiters.set(key, {
        resolve,
        reject,
        timer: setTimeout(
          () =>
            this.settle(key, undefined, new ModelwatchError(ErrorCodes.timeout, `proxy thread: no answer to ${key}`)),
          this.opts.answerTimeoutMs,
        ),
      });
      worker.postMessage(m);
    });
  }

  private async stopRole(role: ProxyThreadRole): Promise<void> {
    this.running.delete(role);
    try {
      const answer = await this.request(`stop:${role}`, { type: 'stop', role });
      if (answer.type === 'stopped' && answer.error !== undefined) throw rebuilt(answer.error);
    } finally {
      if (this.running.size === 0) await this.close();
    }
  }

  /** Closes the thread (its roles stop first); idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const worker = this.worker;
      if (worker === undefined) return;
      if (this.gone === undefined) {
        // The final metrics stay readable after the thread is gone.
        await this.snapshot();
        await Promise.race([
          this.request('close', { type: 'close' }).catch(() => undefined),
          new Promise((resolve) => setTimeout(resolve, this.opts.closeTimeoutMs).unref()),
        ]);
      }
      await worker.terminate();
    })();
    return this.closing;
  }

  /** The thread's metrics now (or the last ones read, once it is gone); one request serves concurrent readers. */
  private snapshot(): Promise<MetricJson[]> {
    if (this.gone !== undefined || this.closing !== undefined) return Promise.resolve(this.lastSnapshot);
    this.snapshotting ??= (async () => {
      try {
        const id = this.nextMetricsId++;
        const answer = await this.request(`metrics:${id}`, { type: 'metrics', id });
        if (answer.type === 'metrics') this.lastSnapshot = answer.metrics;
      } catch (err) {
        this.ctx.logger.warn('proxy thread metrics unavailable', { error: errorMessage(err) });
      } finally {
        this.snapshotting = undefined;
      }
      return this.lastSnapshot;
    })();
    return this.snapshotting;
  }

  /**
   * Registers on `ctx.metrics`, once per name, a metric that reads its values from the thread. A name the
   * main thread already registers itself keeps the main thread's metric (none overlap in `modelwatch up`).
   */
  private async mirrorMetrics(): Promise<void> {
    const registry = this.ctx.metrics;
    for (const m of await this.snapshot()) {
      if (registry.getSingleMetric(m.name) !== undefined) continue;
      const { name, help, type } = m;
      const mirror = {
        name,
        help,
        type,
        aggregator: m.aggregator,
        get: async (): Promise<MetricJson> => {
          const now = (await this.snapshot()).find((x) => x.name === name);
          return now ?? ({ name, help, type, aggregator: m.aggregator, values: [] } as unknown as MetricJson);
        },
      };
      registry.registerMetric(mirror as unknown as Metric);
    }
  }
}

/**
 * Role starters for the proxy roles of `modelwatch up` sharing one {@link ProxyThread}, created on the
 * first start (with that start's runtime context).
 */
export function proxyThreadStarters(
  options: ProxyThreadOptions = {},
): Record<ProxyThreadRole, (ctx: RuntimeContext) => Promise<RunningRole>> {
  let thread: ProxyThread | undefined;
  const on = (ctx: RuntimeContext): ProxyThread => (thread ??= new ProxyThread(ctx, options));
  return {
    sidecar: (ctx) => on(ctx).start('sidecar'),
    grpc: (ctx) => on(ctx).start('grpc'),
  };
}
