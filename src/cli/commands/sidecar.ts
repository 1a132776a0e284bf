import { createLogger } from '../../common/logger.js';
import { startSidecar } from '../../sidecar/sidecar.js';
import { UsageError, type Command } from '../command.js';
import { loadProxyConfig } from '../proxy-flags.js';
import { serveRoles, type RoleSpec } from '../serve.js';

const usage = `modelwatch sidecar --upstream URL [--listen HOST:PORT] [--grpc-upstream HOST:PORT --grpc-listen HOST:PORT] [--config FILE]
  --upstream URL             V2 REST inference server to proxy (default: $MODELWATCH_UPSTREAM)
  --listen HOST:PORT         where the sidecar listens (default: $MODELWATCH_SIDECAR_LISTEN or 127.0.0.1:9401)
  --grpc-upstream HOST:PORT  V2 gRPC server to proxy as well (with --grpc-listen)
  --grpc-listen HOST:PORT    where the gRPC proxy listens (with --grpc-upstream)
  --config FILE              YAML or JSON config file (default: $MODELWATCH_CONFIG)`;

/**
 * `modelwatch sidecar`: the REST proxy (and the gRPC proxy when asked) alone. Captures go to the
 * configured bus; run it with `MODELWATCH_KAFKA_BROKERS` so a separate `modelwatch ingest` stores them.
 */
export const sidecarCommand: Command = {
  summary: 'run the V2 proxy that tees inference calls to the bus (REST, and gRPC when asked)',
  usage,
  async run(argv) {
    const config = loadProxyConfig(argv, usage, true);
    if (config === undefined) return 0;
    if (config.sidecar.upstream === undefined) throw new UsageError('--upstream URL is required', usage);
    const logger = createLogger(config.logLevel);
    if (config.kafka.brokers.length === 0) {
      logger.warn(
        'no Kafka brokers configured: captures stay in the in-process bus, which nothing consumes in this process; set MODELWATCH_KAFKA_BROKERS',
      );
    }
    // Stop order: the gRPC proxy, then the REST sidecar (whose stop flushes the tee).
    const specs: RoleSpec[] = [];
    // Neither proxy touches the store: it is not opened (nor migrated) by this command.
    if (config.sidecar.grpcUpstream !== undefined) {
      specs.push({
        name: 'grpc',
        start: async (ctx) => (await import('../../sidecar/grpc-proxy.js')).startGrpcProxy(ctx),
        usesStore: false,
      });
    }
    specs.push({ name: 'sidecar', start: (ctx) => startSidecar(ctx), usesStore: false });
    return serveRoles(config, specs, { runtime: { logger } });
  },
};
