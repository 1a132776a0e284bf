/**
 * Stage timings of the exact drift engine and `modelwatch report`, printed to stderr when the environment
 * variable `MODELWATCH_PROFILE` is `1`: one line per stage as it ends (`profile: NAME  12.3 ms  (at 456.7 ms)`,
 * the second figure counted from process start). Off by default; when off, {@link stage} only awaits `fn`.
 */
import { performance } from 'node:perf_hooks';

/** True when `MODELWATCH_PROFILE=1`. */
export const profiling = process.env.MODELWATCH_PROFILE === '1';

/** Prints one stage line (when profiling): `ms` the stage's own duration. */
export function mark(name: string, ms: number): void {
  if (!profiling) return;
  process.stderr.write(
    `profile: ${name.padEnd(40)} ${ms.toFixed(1).padStart(8)} ms  (at ${performance.now().toFixed(1)} ms)\n`,
  );
}

/** Runs `fn` and, when profiling, prints how long it took under `name`. */
export async function stage<T>(name: string, fn: () => Promise<T>): Promise<T> {
  if (!profiling) return fn();
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    mark(name, performance.now() - t0);
  }
}

/** The synchronous form of {@link stage}. */
export function stageSync<T>(name: string, fn: () => T): T {
  if (!profiling) return fn();
  const t0 = performance.now();
  try {
    return fn();
  } finally {
    mark(name, performance.now() - t0);
  }
}
