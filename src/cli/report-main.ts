import { reportCommand } from './commands/report.js';
import { runCommand } from './run.js';

// Entry of `modelwatch report` alone (bin/modelwatch.js loads its bundle, dist/cli/report.bundle.js, made by
// scripts/bundle-report.mjs): the report command without the command table, for a fast start.
// `process.argv` is [node, bin/modelwatch.js, 'report', ...flags].
const code = await runCommand('report', reportCommand, process.argv.slice(3), {
  stdout: process.stdout,
  stderr: process.stderr,
});
process.exitCode = code;
setTimeout(() => process.exit(code), 2_000).unref();
