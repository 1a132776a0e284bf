/** Where the code cache of `file` may be kept, in order of preference. */
export function cacheDirs(file: string, env?: NodeJS.ProcessEnv): string[];

/** What {@link runCachedScript} did. */
export interface CachedScriptRun {
  /** What `main` resolved with. */
  code: number;
  /** `off` (MODELWATCH_CODE_CACHE=0), `hit`, `miss` (no cache file) or `rejected` (V8 refused the file). */
  cache: 'off' | 'hit' | 'miss' | 'rejected';
  /** The cache file written by this run, if any. */
  written: string | undefined;
}

/** Runs `main(argv)` of the CommonJS script `file` with a V8 code cache (see bin/cached-script.js). */
export function runCachedScript(
  file: string,
  argv: string[],
  options?: { env?: NodeJS.ProcessEnv; dirs?: string[] },
): Promise<CachedScriptRun>;
