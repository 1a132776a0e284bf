import { performance } from 'node:perf_hooks';
import { parseFlags, type Command } from '../command.js';
import { parseDuration, runDemo } from '../../demo/index.js';

const usage = `modelwatch demo [--duration 150s] [--config FILE]
  --duration D   exit (code 0) after D: 150s, 2m, or milliseconds; default: run until Ctrl-C
  --config FILE  YAML or JSON config file (default: $MODELWATCH_CONFIG)`;

/** `modelwatch demo`: a model server, the sidecar and every role, with traffic, drift, alerts and a shadow replay. */
export const demoCommand: Command = {
  summary: 'see the whole loop in two minutes: a model, traffic, drift, alerts and a shadow replay',
  usage,
  async run(argv) {
    const { help, values } = parseFlags(argv, { duration: { type: 'string' }, config: { type: 'string' } }, usage);
    if (help) {
      process.stdout.write(`usage: ${usage}\n`);
      return 0;
    }
    const durationMs = values.duration === undefined ? undefined : parseDuration(values.duration);
    // The duration counts from the process start, so `--duration 2m` means two minutes of wall time.
    return runDemo({ durationMs, configFile: values.config, startedAt: performance.timeOrigin });
  },
};
