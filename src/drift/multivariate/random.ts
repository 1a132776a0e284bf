/** Seeded randomness shared by the multivariate kernels: every draw is reproducible from a 32-bit seed. */

/** A uniform generator on [0, 1). */
export type Rng = () => number;

/** mulberry32: a small, fast 32-bit generator; good enough for sampling and permutations, not for crypto. */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Shuffles `a` in place (Fisher–Yates) and returns it. */
export function shuffleInPlace<T>(a: T[], rng: Rng): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = a[i] as T;
    a[i] = a[j] as T;
    a[j] = t;
  }
  return a;
}

/**
 * At most `max` rows of `rows`, drawn without replacement with `rng` and kept in their original order.
 * When `rows` has `max` rows or fewer, all of them are returned (same order, no draw).
 */
export function sampleRows<T>(rows: readonly T[], max: number, rng: Rng): T[] {
  if (rows.length <= max) return rows.slice();
  const idx = shuffleInPlace(
    Array.from({ length: rows.length }, (_, i) => i),
    rng,
  )
    .slice(0, max)
    .sort((x, y) => x - y);
  return idx.map((i) => rows[i] as T);
}
