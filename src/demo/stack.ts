/**
 * Every role of `modelwatch up` in this process, started and stopped like `up` does (same role list,
 * same order), but under the demo's control instead of waiting for a signal.
 */
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { Config } from '../config/schema.js';
import { upRoleSpecs } from '../cli/roles.js';
import type { RunningRole } from '../runtime/context.js';
import { createRuntime, type Runtime } from '../runtime/create.js';

/** The running roles of the demo. */
export interface DemoStack {
  runtime: Runtime;
  /** Base URL of the API. */
  apiUrl: string;
  /** Base URL of the sidecar. */
  sidecarUrl: string;
  /** Names of the roles running, in stop order. */
  roles: string[];
  /** Stops every role in order (intake first), then closes the bus and the store. Resolves false if a stop failed. */
  stop(): Promise<boolean>;
}

async function stopAll(logger: Logger, running: RunningRole[]): Promise<boolean> {
  let ok = true;
  for (const role of running) {
    try {
      await role.stop();
    } catch (err) {
      ok = false;
      logger.error('role stop failed', { role: role.name, error: errorMessage(err) });
    }
  }
  return ok;
}

/**
 * Starts the roles `modelwatch up` runs for `config` (which must name a sidecar upstream), consumers
 * before intake. A role that fails to start stops the ones already started and rethrows.
 */
export async function startDemoStack(config: Config, logger: Logger): Promise<DemoStack> {
  const specs = upRoleSpecs(config, (role) => logger.warn('role not available in this build; skipped', { role }));
  const runtime = await createRuntime(config, { logger });
  const started: RunningRole[] = [];
  try {
    for (const spec of [...specs].reverse()) started.unshift(await spec.start(runtime));
  } catch (err) {
    await stopAll(logger, started);
    await runtime.close();
    throw err;
  }
  const urlOf = (name: string): string => {
    const url = started.find((r) => r.name === name)?.urls[0];
    if (url === undefined) throw new Error(`the ${name} role did not start`);
    return url.replace(/\/+$/, '');
  };
  let apiUrl: string;
  let sidecarUrl: string;
  try {
    apiUrl = urlOf('api');
    sidecarUrl = urlOf('sidecar');
  } catch (err) {
    await stopAll(logger, started);
    await runtime.close();
    throw err;
  }
  let stopping: Promise<boolean> | undefined;
  return {
    runtime,
    apiUrl,
    sidecarUrl,
    roles: started.map((r) => r.name),
    stop: () => {
      stopping ??= (async () => {
        const ok = await stopAll(logger, started);
        await runtime.close();
        return ok;
      })();
      return stopping;
    },
  };
}
