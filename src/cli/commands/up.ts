import type { Command } from '../command.js';
import { loadProxyConfig } from '../proxy-flags.js';
import { kserveIntake, roles } from '../roles.js';
import { serveRoles, type RoleSpec } from '../serve.js';
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
    // Stop order (DESIGN §4 rule 10): sidecar intake, ingest flush/commit, detect, api.
    const specs: RoleSpec[] = [];
    const add = (name: string, start: RoleSpec['start'] | undefined): void => {
      if (start === undefined) logger.warn('role not available in this build; skipped', { role: name });
      else specs.push({ name, start });
    };
    add('kserve-intake', kserveIntake);
    if (config.sidecar.upstream !== undefined) add('sidecar', roles.sidecar);
    if (config.sidecar.grpcUpstream !== undefined) add('grpc', roles.grpc);
    add('ingest', roles.ingest);
    if (config.shadow.candidates.length > 0) add('shadow', roles.shadow);
    add('detect', roles.detect);
    add('api', roles.api);
    return serveRoles(config, specs, { runtime: { logger } });
  },
};
