import { createLogger } from '../../common/logger.js';
import { loadConfig } from '../../config/load.js';
import { startDetector } from '../../drift/detector.js';
import { createRuntime } from '../../runtime/create.js';
import { parseFlags, type Command } from '../command.js';
import { roles } from '../roles.js';
import { singleRoleCommand } from './single-role.js';

const usage = `modelwatch detect [--config FILE] [--once]
  --config FILE  YAML or JSON config file (default: $MODELWATCH_CONFIG)
  --once         run detection once for every model (configured or with traffic in the window), print the
                 runs as JSON on stdout and exit; without it, run every detect.intervalMs until SIGINT/SIGTERM
Each run stores drift, performance, metric series and change points in ClickHouse.`;

const loop = singleRoleCommand(
  'detect',
  'run drift, performance and change detection per model on a cadence',
  () => roles.detect,
);

/** `modelwatch detect`: the detect role alone (`--once` for a single run printed as JSON). */
export const detectCommand: Command = {
  summary: loop.summary,
  usage,
  async run(argv) {
    const { help, values } = parseFlags(argv, { config: { type: 'string' }, once: { type: 'boolean' } }, usage);
    if (help) {
      process.stdout.write(`usage: ${usage}\n`);
      return 0;
    }
    if (values.once !== true) {
      // The detector's timers are unref'ed (they must not hold `up` open); alone, nothing else keeps the
      // process alive, so hold it until the role is stopped by a signal.
      const keepAlive = setInterval(() => undefined, 2 ** 30);
      try {
        return await loop.run(values.config === undefined ? [] : ['--config', values.config]);
      } finally {
        clearInterval(keepAlive);
      }
    }
    const config = loadConfig({ file: values.config });
    const runtime = await createRuntime(config, { logger: createLogger(config.logLevel) });
    try {
      const detector = await startDetector(runtime);
      const runs = await detector.runNow();
      await detector.stop();
      process.stdout.write(`${JSON.stringify({ runs }, null, 2)}\n`);
      return 0;
    } finally {
      await runtime.close();
    }
  },
};
