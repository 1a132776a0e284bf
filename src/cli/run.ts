import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, errorMessage, isModelwatchError } from '../common/errors.js';
import { UsageError, type Command } from './command.js';

/**
 * Commands whose module is imported alone, without the table of every command (which loads every role):
 * `modelwatch report` starts without the server, bus, ingest or sidecar code, and `modelwatch sidecar`
 * without the report, detection, shadow, alerting and API code (less memory beside every inference pod).
 */
const standalone: Record<string, () => Promise<Command>> = {
  report: async () => (await import('./commands/report.js')).reportCommand,
  sidecar: async () => (await import('./commands/sidecar.js')).sidecarCommand,
};

async function loadCommands(): Promise<Record<string, Command>> {
  return (await import('./commands/index.js')).commands;
}

/** Streams the CLI writes to (tests pass their own). */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** The package version, read from the nearest `package.json` named `modelwatch` above this file. */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'modelwatch' && typeof pkg.version === 'string') return pkg.version;
    }
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}

/** The top-level help text over the command table (`commands` of `./commands/index.js`). */
export function helpText(commands: Record<string, Command>): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'usage: modelwatch <command> [flags]',
    '',
    'commands:',
    ...lines,
    '',
    'modelwatch <command> --help   flags of one command',
    'modelwatch --version          print the version',
    '',
    'Every setting can also come from the config file (--config, MODELWATCH_CONFIG) or MODELWATCH_* variables.',
  ].join('\n');
}

/**
 * Runs the CLI on `argv` (without `node` and the script) and resolves with the exit code:
 * 0 success, 1 runtime failure, 2 usage or configuration error.
 */
export async function runCli(
  argv: string[],
  io: CliIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const [first, ...rest] = argv;
  const light = first !== undefined && Object.hasOwn(standalone, first) ? standalone[first] : undefined;
  if (light !== undefined) return runCommand(first!, await light(), rest, io);
  const commands = await loadCommands();
  if (first === '--help' || first === '-h') {
    io.stdout.write(helpText(commands) + '\n');
    return 0;
  }
  if (first === 'help') {
    const target = rest[0];
    if (target === undefined) {
      io.stdout.write(helpText(commands) + '\n');
      return 0;
    }
    const c = commands[target];
    if (c === undefined) {
      io.stderr.write(`modelwatch: unknown command "${target}"\n\n${helpText(commands)}\n`);
      return 2;
    }
    io.stdout.write(`usage: ${c.usage}\n`);
    return 0;
  }
  if (first === '--version' || first === '-V') {
    io.stdout.write(`modelwatch ${packageVersion()}\n`);
    return 0;
  }
  if (first === undefined) {
    io.stderr.write(`modelwatch: no command given\n\n${helpText(commands)}\n`);
    return 2;
  }
  const command = Object.hasOwn(commands, first) ? commands[first] : undefined;
  if (command === undefined) {
    const what = first.startsWith('-') ? `unknown flag "${first}"` : `unknown command "${first}"`;
    io.stderr.write(`modelwatch: ${what}\n\n${helpText(commands)}\n`);
    return 2;
  }
  return runCommand(first, command, rest, io);
}

/** Runs one command and maps its failure to an exit code and one line on stderr. */
export async function runCommand(first: string, command: Command, rest: string[], io: CliIo): Promise<number> {
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`modelwatch ${first}: ${err.message}\nusage: ${err.usage}\n`);
      return 2;
    }
    const oneLine = errorMessage(err).replace(/\s*\n\s*/g, ' ');
    if (isModelwatchError(err, ErrorCodes.configInvalid)) {
      io.stderr.write(`modelwatch: ${oneLine}\n`);
      return 2;
    }
    io.stderr.write(`modelwatch ${first}: ${oneLine}\n`);
    return 1;
  }
}
