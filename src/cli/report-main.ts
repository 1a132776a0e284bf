import { z } from 'zod';
import { reportCommand } from './commands/report.js';
import { runCommand } from './run.js';

// Entry of `modelwatch report` alone: scripts/bundle-report.mjs bundles this module and everything it
// imports into dist/cli/report.bundle.cjs, which bin/modelwatch.js compiles (with a V8 code cache) and
// runs for `modelwatch report`. No top-level await, so the bundle can be a CommonJS script.

/**
 * Runs `modelwatch report` with `argv` (the flags after `report`) and resolves with the exit code
 * (0 done, 1 runtime failure, 2 usage or input error).
 */
export function main(argv: string[]): Promise<number> {
  // A report parses each schema about once (the config, a few records): zod's compiled fast path costs more
  // to generate than it saves there (~25 ms at start-up); the interpreted path gives the same results.
  z.config({ jitless: true });
  return runCommand('report', reportCommand, argv, { stdout: process.stdout, stderr: process.stderr });
}
