import type { Command } from '../command.js';
import { loadProxyConfig } from '../proxy-flags.js';
import { upRoleSpecs } from '../roles.js';
import { serveRoles } from '../serve.js';
import { createLogger } from '../../common/logger.js';

const usage = `modelwatch up [--config FILE] [--upstream URL] [--grpc-upstream HOST:PORT --grpc-listen HOST:PORT]
  --config FILE              YAML or JSON config file (default: $MODELWATCH_CONFIG)
  --upstream URL             V2 inference server to proxy; starts the sidecar
  --grpc-upstream HOST:PORT  V2 gRPC server to proxy (with --grpc-listen)
  --grpc-listen HOST:PORT    where the gRPC proxy listens (with --grpc-upstream)`;

/** `modelwatch up`: every role in one process on embedded defaults. */
export const upCommand: Command = {
  summary: 'run all roles in one process (sidecar when an upstream is given, ingest, detect, API)',
  usage,
  async run(argv) {
    const config = loadProxyConfig(argv, usage, false);
    if (config === undefined) return 0;
    const logger = createLogger(config.logLevel);
    // Stop order: sidecar intake, ingest flush/commit, detect, api (the same list as `modelwatch demo`).
    // The proxies on their own event loop: ingest, detection and the API never delay a proxied request.
    const specs = upRoleSpecs(config, (role) => logger.warn('role not available in this build; skipped', { role }), {
      proxyThread: true,
    });
    return serveRoles(config, specs, { runtime: { logger } });
  },
};
