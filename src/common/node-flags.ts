/**
 * True when the process's own command line (`execArgv`) or `NODE_OPTIONS` holds a flag matching `pattern`:
 * a V8 setting the user gave at start-up, which the process then keeps instead of setting its own.
 */
export function nodeFlagGiven(
  pattern: RegExp,
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env.NODE_OPTIONS ?? '',
): boolean {
  return [...execArgv, ...nodeOptions.split(/\s+/)].some((f) => pattern.test(f));
}
