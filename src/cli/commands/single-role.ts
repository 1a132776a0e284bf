import { ErrorCodes, ModelwatchError } from '../../common/errors.js';
import { createLogger } from '../../common/logger.js';
import { loadConfig } from '../../config/load.js';
import { parseFlags, type Command } from '../command.js';
import type { RoleStart } from '../roles.js';
import { serveRoles } from '../serve.js';

/**
 * A command that runs one role alone (`modelwatch ingest`, `modelwatch api`, ...) with only `--config`.
 * `start` is looked up at run time so a role wired later in `roles.ts` is picked up.
 */
export function singleRoleCommand(name: string, summary: string, start: () => RoleStart | undefined): Command {
  const usage = `modelwatch ${name} [--config FILE]
  --config FILE  YAML or JSON config file (default: $MODELWATCH_CONFIG)`;
  return {
    summary,
    usage,
    async run(argv) {
      const { help, values } = parseFlags(argv, { config: { type: 'string' } }, usage);
      if (help) {
        process.stdout.write(`usage: ${usage}\n`);
        return 0;
      }
      const config = loadConfig({ file: values.config });
      const fn = start();
      if (fn === undefined)
        throw new ModelwatchError(ErrorCodes.internal, `the ${name} role is not available in this build`);
      return serveRoles(config, [{ name, start: fn }], { runtime: { logger: createLogger(config.logLevel) } });
    },
  };
}
