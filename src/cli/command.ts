import { parseArgs, type ParseArgsConfig } from 'node:util';

/** One CLI command: `run` returns the process exit code. */
export interface Command {
  /** One line for `modelwatch --help`. */
  summary: string;
  /** Usage text (first line `modelwatch NAME [flags]`, then one line per flag). */
  usage: string;
  run(argv: string[]): Promise<number>;
}

/** A command line that does not parse: printed with the command's usage on stderr, exit 2. */
export class UsageError extends Error {
  /** Usage text of the command concerned. */
  readonly usage: string;

  constructor(message: string, usage: string) {
    super(message);
    this.name = 'UsageError';
    this.usage = usage;
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Strict `node:util` `parseArgs` over a command's flags (no positionals); every command also takes
 * `-h/--help`. Unknown flags and missing values throw {@link UsageError}.
 */
export function parseFlags<O extends Options>(
  argv: string[],
  options: O,
  usage: string,
): {
  help: boolean;
  values: ReturnType<typeof parseArgs<{ options: O; strict: true; allowPositionals: false }>>['values'];
} {
  const all = { ...options, help: { type: 'boolean', short: 'h' } } as O;
  try {
    const parsed = parseArgs({ args: argv, options: all, strict: true, allowPositionals: false });
    const help = (parsed.values as Record<string, unknown>).help === true;
    return { help, values: parsed.values };
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err), usage);
  }
}
