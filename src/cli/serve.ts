import { errorMessage } from '../common/errors.js';
import type { Config } from '../config/schema.js';
import type { RunningRole, RuntimeContext } from '../runtime/context.js';
import { createRuntime, type CreateRuntimeOptions } from '../runtime/create.js';
import { startMetricsListener } from '../runtime/metrics-listener.js';

/** A role to run: its name and how to start it. */
export interface RoleSpec {
  name: string;
  start: (ctx: RuntimeContext) => Promise<RunningRole>;
  /** Whether the role reads or writes the store. When no role does, the store is never opened. @default true */
  usesStore?: boolean;
}

/** Options of {@link serveRoles}. */
export interface ServeRolesOptions {
  /** Where the served URLs are printed (`role: URL`, one per line). @default process.stdout */
  out?: NodeJS.WritableStream;
  /** Signals that start a clean shutdown. @default ['SIGINT', 'SIGTERM'] */
  signals?: NodeJS.Signals[];
  /** Passed to {@link createRuntime}. @default {} */
  runtime?: CreateRuntimeOptions;
}

const defaults = {
  out: process.stdout,
  signals: ['SIGINT', 'SIGTERM'],
  runtime: {},
} satisfies Required<ServeRolesOptions>;

async function stopAll(ctx: RuntimeContext, running: RunningRole[]): Promise<boolean> {
  let ok = true;
  for (const role of running) {
    try {
      await role.stop();
      ctx.logger.info('role stopped', { role: role.name });
    } catch (err) {
      ok = false;
      ctx.logger.error('role stop failed', { role: role.name, error: errorMessage(err) });
    }
  }
  return ok;
}

/**
 * Runs roles in one process until SIGINT/SIGTERM. `roles` are listed in **stop order** (DESIGN §4 rule 10:
 * sidecar intake, ingest flush/commit, detect, api) and started in reverse, so consumers are up before
 * intake begins. Prints each served URL, then on a signal stops every role in order and closes the bus
 * and store. Resolves with the exit code (0 after a clean stop). A role that fails to start stops the
 * ones already started and rethrows.
 */
export async function serveRoles(config: Config, roles: RoleSpec[], options: ServeRolesOptions = {}): Promise<number> {
  const opts = { ...defaults, ...options };
  if (roles.length === 0) throw new RangeError('serveRoles needs at least one role');
  // Listen for signals from the start: one arriving while roles start up shuts down right after.
  let received: NodeJS.Signals | undefined;
  let onSignal: ((s: NodeJS.Signals) => void) | undefined;
  const handlers = opts.signals.map((s) => {
    const h = (): void => {
      if (received !== undefined) {
        // A second signal during shutdown means "now": exit without waiting for flushes.
        process.exit(130);
      }
      received = s;
      onSignal?.(s);
    };
    process.on(s, h);
    return [s, h] as const;
  });
  try {
    const withStore = roles.some((r) => r.usesStore ?? true);
    const runtime = await createRuntime(config, { withStore, ...opts.runtime });
    const started: RunningRole[] = [];
    try {
      // `metrics.listen`: /metrics for roles without a listener of their own; stopped last.
      if (config.metrics.listen !== undefined) started.push(await startMetricsListener(runtime, config.metrics.listen));
      for (const spec of [...roles].reverse()) {
        if (received !== undefined) break;
        const role = await spec.start(runtime);
        started.unshift(role);
      }
    } catch (err) {
      await stopAll(runtime, started);
      await runtime.close();
      throw err;
    }
    if (received === undefined) {
      for (const role of started) for (const url of role.urls) opts.out.write(`${role.name}: ${url}\n`);
      runtime.logger.info('modelwatch running', { roles: started.map((r) => r.name) });
    }
    const signal =
      received ??
      (await new Promise<NodeJS.Signals>((resolve) => {
        onSignal = resolve;
      }));
    runtime.logger.info('shutting down', { signal });
    const ok = await stopAll(runtime, started);
    await runtime.close();
    return ok ? 0 : 1;
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
  }
}
