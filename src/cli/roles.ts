import { startAlerting } from '../alerts/index.js';
import { startApi } from '../api/server.js';
import type { Config } from '../config/schema.js';
import { startDetector } from '../drift/index.js';
import { kserveReceiverOf, startIngest, startSeldonBridge } from '../ingest/index.js';
import type { RunningRole, RuntimeContext } from '../runtime/context.js';
import { proxyThreadStarters } from '../runtime/proxy-thread.js';
import { startLiveShadow } from '../shadow/live.js';
import { startGrpcProxy, startSidecar } from '../sidecar/index.js';
import type { RoleSpec } from './serve.js';

/** Starts one role on a runtime context. */
export type RoleStart = (ctx: RuntimeContext) => Promise<RunningRole>;

/**
 * Ingest, plus the Seldon Core 2 bridge when `kafka.seldonTopics` is set: the bridge is intake for
 * the same bus, so it starts first and stops first (its published calls reach the bus before ingest drains).
 */
async function startIngestWithBridges(ctx: RuntimeContext): Promise<RunningRole> {
  const seldon = ctx.config.kafka.seldonTopics.length > 0 ? await startSeldonBridge(ctx) : undefined;
  let ingest: RunningRole;
  try {
    ingest = await startIngest(ctx);
  } catch (err) {
    await seldon?.stop();
    throw err;
  }
  return {
    name: 'ingest',
    urls: ingest.urls,
    stop: async () => {
      await seldon?.stop();
      await ingest.stop();
    },
  };
}

/** The detect loop plus the alert evaluator over what it stores (`modelwatch up` and `modelwatch detect`). */
async function startDetectWithAlerts(ctx: RuntimeContext): Promise<RunningRole> {
  const detector = await startDetector(ctx);
  let alerts: RunningRole;
  try {
    alerts = await startAlerting(ctx);
  } catch (err) {
    await detector.stop();
    throw err;
  }
  return {
    name: 'detect',
    urls: [],
    // The detector first: its next tick must not start (and be cancelled) while alerts drain.
    stop: async () => {
      await detector.stop();
      await alerts.stop();
    },
  };
}

/**
 * The role starters the CLI knows, in one place. A role whose module is not in this build yet is
 * `undefined`: `modelwatch up` skips it with a warning and its own command exits 1.
 */
export const roles: {
  sidecar?: RoleStart;
  grpc?: RoleStart;
  ingest?: RoleStart;
  detect?: RoleStart;
  /** Live shadow of `shadow.candidates` (started by `modelwatch up` when any are configured). */
  shadow?: RoleStart;
  api: RoleStart;
} = {
  // `up` runs ingest in the same process, whose scavenges gain from V8's helper threads (SidecarOptions.parallelScavenge).
  sidecar: (ctx) => startSidecar(ctx, { parallelScavenge: true }),
  grpc: (ctx) => startGrpcProxy(ctx),
  ingest: startIngestWithBridges,
  detect: startDetectWithAlerts,
  shadow: (ctx) => startLiveShadow(ctx),
  api: startApi,
};

/**
 * A stop hook for the KServe CloudEvents receiver mounted on the API: it is intake, so `modelwatch up`
 * stops it (publishing unpaired events to the bus) before ingest drains, although the API itself
 * stops last. Started after the API, when the receiver exists.
 */
export const kserveIntake: RoleStart = (ctx) =>
  Promise.resolve({
    name: 'kserve-intake',
    urls: [],
    stop: () => kserveReceiverOf(ctx)?.stop() ?? Promise.resolve(),
  });

/** Options of {@link upRoleSpecs}. */
export interface UpRoleOptions {
  /**
   * Run the REST sidecar and the gRPC proxy on a worker thread of their own (one event loop for the
   * proxies, another for ingest, detection and the API), teeing to the in-process bus through a bridge.
   * Applies only on the in-process bus (no `kafka.brokers`). @default false
   */
  proxyThread?: boolean;
}

/**
 * The roles `modelwatch up` runs for `config`, in stop order (sidecar intake, ingest, detect, api): the
 * KServe intake hook, the sidecar when `sidecar.upstream` is set, the gRPC proxy when
 * `sidecar.grpcUpstream` is set, ingest, detect and the API. A role missing from this build is passed
 * to `onMissing` and left out. `modelwatch demo` starts the same set.
 */
export function upRoleSpecs(
  config: Config,
  onMissing: (role: string) => void,
  options: UpRoleOptions = {},
): RoleSpec[] {
  const specs: RoleSpec[] = [];
  const threaded =
    (options.proxyThread ?? false) && config.kafka.brokers.length === 0 && roles.sidecar !== undefined
      ? proxyThreadStarters()
      : undefined;
  const add = (name: string, start: RoleStart | undefined): void => {
    if (start === undefined) onMissing(name);
    else specs.push({ name, start });
  };
  add('kserve-intake', kserveIntake);
  if (config.sidecar.upstream !== undefined) add('sidecar', threaded?.sidecar ?? roles.sidecar);
  if (config.sidecar.grpcUpstream !== undefined) add('grpc', threaded?.grpc ?? roles.grpc);
  add('ingest', roles.ingest);
  if (config.shadow.candidates.length > 0) add('shadow', roles.shadow);
  add('detect', roles.detect);
  add('api', roles.api);
  return specs;
}
