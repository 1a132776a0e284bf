/**
 * A small seeded pseudo-random generator, so that perturbed models, bootstrap resamples and test data
 * are reproducible across runs and across languages (the fixture script re-implements it in Python).
 */

/** A function returning doubles uniform in [0, 1). */
export type Random = () => number;

/**
 * mulberry32 (Tommy Ettinger, public domain): 32 bits of state, period 2^32, good enough for
 * resampling indices and weight noise; not for cryptography. Every output is an exact multiple of
 * 2^-32, so another language reproduces it bit for bit.
 */
export function mulberry32(seed: number): Random {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
