import type { SqlPort } from '../../src/store/index.js';

/** The embedded engine's allocator (its own jemalloc, linked into libchdb.so), bytes. */
export interface JemallocSample {
  allocated: number;
  active: number;
  resident: number;
  mapped: number;
  retained: number;
  /** Dirty pages (freed, not yet returned to the OS) over all arenas. */
  dirty: number;
}

/** Reads `system.jemalloc_stats` (jemalloc's `malloc_stats_print` text) into {@link JemallocSample}. */
export async function jemallocSample(store: SqlPort): Promise<JemallocSample | undefined> {
  const rows = await store.query<Record<string, string>>(`SELECT * FROM system.jemalloc_stats`);
  const text = Object.values(rows[0] ?? {})[0] ?? '';
  const totals =
    /Allocated: (\d+), active: (\d+), metadata: \d+.*?, resident: (\d+), mapped: (\d+), retained: (\d+)/.exec(text);
  // The first "dirty:" line of the decay table is the merged arenas' one: "dirty: N/A <npages> …".
  const dirty = /Merged arenas stats:[\s\S]*?\n\s*dirty:\s+\S+\s+(\d+)/.exec(text);
  const page = Number(/Page size: (\d+)/.exec(text)?.[1] ?? 4096);
  if (totals === null) return undefined;
  const n = (i: number): number => Number(totals[i] ?? 0);
  return {
    allocated: n(1),
    active: n(2),
    resident: n(3),
    mapped: n(4),
    retained: n(5),
    dirty: Number(dirty?.[1] ?? 0) * page,
  };
}
