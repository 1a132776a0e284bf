// Worker-thread entry of the proxy thread of `modelwatch up` (proxy-thread.ts): runs the REST sidecar and
// the gRPC proxy on an event loop of their own, teeing captures to the main thread's in-process bus through
// a BridgeBus. Started by proxy-thread.ts; not imported anywhere else.
import { parentPort, workerData } from 'node:worker_threads';
import { Registry } from 'prom-client';
import { BridgeBus, isBridgeAnswer } from '../bus/thread-bridge.js';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import { startGrpcProxy, startSidecar } from '../sidecar/index.js';
import type { RunningRole } from './context.js';
import { createRuntime } from './create.js';
import { currentThreadId } from './thread-priority.js';
import type {
  FromProxyThread,
  PostedError,
  ProxyThreadData,
  ProxyThreadRole,
  ToProxyThread,
} from './proxy-thread-protocol.js';

const port = parentPort;
if (!port) throw new Error('proxy-thread-entry must run in a worker thread');
const { config } = workerData as ProxyThreadData;

function send(m: FromProxyThread): void {
  port?.postMessage(m);
}

function posted(err: unknown): PostedError {
  if (err instanceof ModelwatchError) return { code: err.code, message: err.message, field: err.field };
  return { code: ErrorCodes.internal, message: errorMessage(err) };
}

/**
 * The thread's registry. Its own metrics reach the main thread's registry through `getMetricsAsJSON`; its
 * text exposition (the sidecar's `GET /metrics`) is the main thread's, which covers every role of the process.
 */
class ProcessRegistry extends Registry {
  private nextScrape = 1;
  readonly scrapes = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void }>();

  override metrics(): Promise<string> {
    const id = this.nextScrape++;
    return new Promise<string>((resolve, reject) => {
      this.scrapes.set(id, { resolve, reject });
      send({ type: 'scrape', id });
    });
  }

  answer(id: number, text: string | undefined, error: string | undefined): void {
    const s = this.scrapes.get(id);
    if (s === undefined) return;
    this.scrapes.delete(id);
    if (text !== undefined) s.resolve(text);
    else s.reject(new ModelwatchError(ErrorCodes.internal, error ?? 'metrics unavailable'));
  }
}

const bus = new BridgeBus(port, config.kafka.topic);
const registry = new ProcessRegistry();
const runtime = await createRuntime(config, { withStore: false, defaultMetrics: false, bus, metrics: registry });
const running = new Map<ProxyThreadRole, RunningRole>();
const starters: Record<ProxyThreadRole, () => Promise<RunningRole>> = {
  // V8's flags are process-wide: `up`'s ingest, on the main thread, keeps V8's parallel scavenges.
  sidecar: () => startSidecar(runtime, { parallelScavenge: true }),
  grpc: () => startGrpcProxy(runtime),
};

async function handle(m: ToProxyThread): Promise<void> {
  switch (m.type) {
    case 'start':
      try {
        const role = await starters[m.role]();
        running.set(m.role, role);
        send({ type: 'started', role: m.role, name: role.name, urls: role.urls });
      } catch (err) {
        send({ type: 'start-failed', role: m.role, error: posted(err) });
      }
      return;
    case 'stop': {
      const role = running.get(m.role);
      running.delete(m.role);
      try {
        await role?.stop();
        send({ type: 'stopped', role: m.role });
      } catch (err) {
        send({ type: 'stopped', role: m.role, error: posted(err) });
      }
      return;
    }
    case 'scraped':
      registry.answer(m.id, m.text, m.error);
      return;
    case 'metrics': {
      const metrics = await runtime.metrics.getMetricsAsJSON();
      send({ type: 'metrics', id: m.id, metrics });
      return;
    }
    case 'close':
      for (const role of running.values()) await role.stop().catch(() => undefined);
      running.clear();
      await runtime.close();
      await bus.close();
      send({ type: 'closed' });
      port?.close();
      return;
  }
}

port.on('message', (m: unknown) => {
  if (isBridgeAnswer(m)) bus.answer(m);
  else
    handle(m as ToProxyThread).catch((err: unknown) =>
      runtime.logger.error('proxy thread request failed', { error: errorMessage(err) }),
    );
});
const tid = currentThreadId();
send(tid === undefined ? { type: 'ready' } : { type: 'ready', tid });
