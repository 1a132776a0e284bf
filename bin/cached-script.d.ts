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

/** What {@link loadCachedScript} returns. */
export interface CachedScriptLoad {
  /** The script's `module.exports`. */
  exports: Record<string, unknown>;
  /** As {@link CachedScriptRun.cache}. */
  cache: 'off' | 'hit' | 'miss' | 'rejected';
  /** Writes the cache when it was missing or rejected (after the work); the file written, if any. */
  saveCache(): string | undefined;
}

/** Loads the CommonJS script `file` with a V8 code cache and returns its exports (see bin/cached-script.js). */
export function loadCachedScript(
  file: string,
  options?: { env?: NodeJS.ProcessEnv; dirs?: string[] },
): CachedScriptLoad;
