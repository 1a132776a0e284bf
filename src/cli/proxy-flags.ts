import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { UsageError, parseFlags } from './command.js';

/**
 * Parses the flags `modelwatch up` and `modelwatch sidecar` share (`--config`, `--upstream`,
 * `--grpc-upstream`/`--grpc-listen`, and `--listen` when `withListen`) and loads the config with them
 * applied last. Returns `undefined` after printing usage for `--help`.
 */
export function loadProxyConfig(argv: string[], usage: string, withListen: boolean): Config | undefined {
  const { help, values } = parseFlags(
    argv,
    {
      config: { type: 'string' },
      upstream: { type: 'string' },
      ...(withListen ? { listen: { type: 'string' as const } } : {}),
      'grpc-upstream': { type: 'string' },
      'grpc-listen': { type: 'string' },
    },
    usage,
  );
  if (help) {
    process.stdout.write(`usage: ${usage}\n`);
    return undefined;
  }
  if ((values['grpc-upstream'] === undefined) !== (values['grpc-listen'] === undefined)) {
    throw new UsageError('--grpc-upstream and --grpc-listen go together', usage);
  }
  const listen = (values as { listen?: string }).listen;
  return loadConfig({
    file: values.config,
    overrides: {
      'sidecar.upstream': values.upstream,
      'sidecar.listen': listen,
      'sidecar.grpcUpstream': values['grpc-upstream'],
      'sidecar.grpcListen': values['grpc-listen'],
    },
  });
}
