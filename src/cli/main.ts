import { runCli } from './run.js';

// Entry point of the `modelwatch` binary (bin/modelwatch.js). Exit code from runCli; a stray handle
// (a library timer, a half-closed socket) must not keep a finished command alive.
const code = await runCli(process.argv.slice(2));
process.exitCode = code;
setTimeout(() => process.exit(code), 2_000).unref();
