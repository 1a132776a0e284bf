import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createAdaptorServer } from '@hono/node-server';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import { parseListen } from '../config/parse.js';
import type { RunningRole, RuntimeContext } from '../runtime/context.js';
import { kserveReceiverOf } from '../ingest/index.js';
import { createApiApp } from './app.js';

/** A started API server. */
export interface RunningApi extends RunningRole {
  /** The bound base URL, e.g. `http://127.0.0.1:9400` (the real port when `:0` was configured). */
  url: string;
}

/**
 * Serves the API on `config.api.listen` (port 0 picks a free port). Resolves once listening; rejects
 * with `config_invalid` naming `api.listen` when the address cannot be bound.
 */
export async function startApi(ctx: RuntimeContext): Promise<RunningApi> {
  const { host, port } = parseListen({ key: 'api.listen', value: ctx.config.api.listen });
  const app = createApiApp(ctx);
  const server = createAdaptorServer({ fetch: app.fetch, hostname: host }) as Server;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(
        new ModelwatchError(
          ErrorCodes.configInvalid,
          `api.listen: cannot listen on ${host}:${port}: ${errorMessage(err)}`,
          {
            field: 'api.listen',
            cause: err,
          },
        ),
      );
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => ctx.logger.error('api server error', { error: errorMessage(err) }));
  const addr = server.address() as AddressInfo;
  const hostText = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${hostText}:${addr.port}`;
  ctx.logger.info('api listening', { url });
  let stopping: Promise<void> | undefined;
  return {
    name: 'api',
    url,
    urls: [url],
    stop: () => {
      stopping ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          // Idle keep-alive sockets would hold close() open; in-flight requests still finish.
          server.closeIdleConnections();
        });
        // Events the KServe receiver still holds unpaired are published now (no-op when already stopped).
        await kserveReceiverOf(ctx)?.stop();
      })();
      return stopping;
    },
  };
}
