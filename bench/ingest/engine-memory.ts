import type { SqlPort } from '../../src/store/index.js';

/**
 * Samples the embedded engine's own tracked memory (`system.metrics` MemoryTracking: parts being written,
 * merges, caches) every `everyMs` and keeps its peak, in bytes. A failed sample is skipped.
 */
export function sampleEngineMemory(store: SqlPort, everyMs = 500): { peak: () => number; stop: () => void } {
  let peak = 0;
  const timer = setInterval(() => {
    store
      .query<{ v: string }>(`SELECT value AS v FROM system.metrics WHERE metric = 'MemoryTracking'`)
      .then((r) => (peak = Math.max(peak, Number(r[0]?.v ?? 0))))
      .catch(() => undefined);
  }, everyMs);
  return { peak: () => peak, stop: () => clearInterval(timer) };
}
