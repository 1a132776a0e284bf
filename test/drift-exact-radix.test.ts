// The exact engine's radix sort (one MSD pass, then LSD passes per bucket) of float64 values (src/drift/exact/radix.ts) against the built-in
// Float64Array.prototype.sort, which orders −0 before +0 and NaN last: special values, subnormals, heavy ties,
// both sides of the size where the radix path starts, and the merge-pass statistics built on it.
import { describe, expect, it } from 'vitest';
import { filterSortFloat64, sortFloat64 } from '../src/drift/exact/radix.js';
import { compareSorted, prepareSide, quantileLinear, valueCounts } from '../src/drift/exact/numeric.js';
import { decodeNative } from '../src/drift/exact/native.js';
import { gaussian, mulberry32 } from './support/seeded-prng.js';

function sameOrder(actual: Float64Array, expected: Float64Array): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) {
      expect(`${i}: ${actual[i]}`).toBe(`${i}: ${expected[i]}`);
    }
  }
}

function check(values: Float64Array): void {
  const expected = values.slice().sort();
  const actual = sortFloat64(values.slice());
  // NaNs are all last in both; their payloads may differ, so compare them as NaN.
  const nan = expected.findIndex((v) => Number.isNaN(v));
  const cut = nan < 0 ? expected.length : nan;
  sameOrder(actual.subarray(0, cut), expected.subarray(0, cut));
  for (let i = cut; i < expected.length; i++) expect(Number.isNaN(actual[i])).toBe(true);
}

const SIZES = [0, 1, 7, 2047, 2048, 5000, 100_003];

describe('sortFloat64', () => {
  it.each(SIZES)('equals Float64Array.prototype.sort on %i gaussian values spanning many magnitudes', (n) => {
    const u = mulberry32(n + 1);
    const g = gaussian(u);
    const x = new Float64Array(n);
    for (let i = 0; i < n; i++) x[i] = g() * 10 ** Math.floor(u() * 40 - 20);
    check(x);
  });

  it.each(SIZES.filter((n) => n > 10))(
    'orders NaN, ±0, ±Inf, subnormals and extremes like the built-in sort (%i values)',
    (n) => {
      const u = mulberry32(7 * n);
      const specials = [
        Number.NaN,
        -0,
        0,
        Infinity,
        -Infinity,
        5e-324,
        -5e-324,
        2.2250738585072014e-308,
        -2.2250738585072014e-308,
        Number.MAX_VALUE,
        -Number.MAX_VALUE,
        1,
        -1,
      ];
      const x = new Float64Array(n);
      for (let i = 0; i < n; i++)
        x[i] = u() < 0.5 ? specials[Math.floor(u() * specials.length)]! : (u() - 0.5) * 1e-310;
      // A NaN with a payload and the sign bit set still sorts last.
      new DataView(x.buffer).setUint32(4, 0xfff80001, true);
      check(x);
      const sorted = sortFloat64(x.slice());
      const zeros = [...sorted].filter((v) => v === 0);
      expect(zeros.some((z) => Object.is(z, -0))).toBe(true);
      expect(Object.is(zeros[0], -0)).toBe(true);
      expect(Object.is(zeros.at(-1), 0)).toBe(true);
    },
  );

  it('keeps heavy ties (a handful of distinct values over 200k rows) in order and counts them exactly', () => {
    const u = mulberry32(3);
    const levels = [-2.5, -0, 0, 0.1, 0.30000000000000004, 7];
    const x = new Float64Array(200_000);
    const counts = new Map<number, number>();
    for (let i = 0; i < x.length; i++) {
      const v = levels[Math.floor(u() * levels.length)]!;
      x[i] = v;
      counts.set(v + 0, (counts.get(v + 0) ?? 0) + 1);
    }
    check(x);
    const vc = valueCounts(sortFloat64(x.slice()));
    expect([...vc.keys()]).toEqual(['-2.5', '0', '0.1', '0.30000000000000004', '7']);
    expect(vc.get('0')).toBe(counts.get(0));
    expect(vc.get('7')).toBe(counts.get(7));
  });

  // The MSD pass splits by sign, exponent and four mantissa bits; buckets are then sorted by insertion (up to 48
  // values), by 8-bit digits (up to 2,047) or split again by the next bits, whose sub-buckets are sorted the same
  // way (12-bit digits when large): these inputs put values in buckets and sub-buckets of every kind, of both
  // signs, including one bucket holding every value and buckets whose low digits all agree.
  it.each([
    ['one bucket, 100k values in [1, 1.0625)', (u: () => number) => 1 + u() / 16],
    ['one negative bucket, 100k values in (-1.0625, -1]', (u: () => number) => -1 - u() / 16],
    [
      'buckets of ~40 values (insertion)',
      (u: () => number) => (u() < 0.5 ? -1 : 1) * 2 ** Math.floor(u() * 78 - 39) * (1 + u()),
    ],
    [
      'buckets of ~1,000 values (8-bit digits)',
      (u: () => number) => (u() < 0.5 ? -1 : 1) * 2 ** Math.floor(u() * 3) * (1 + u()),
    ],
    ['buckets of ~3,000 values (split again)', (u: () => number) => (u() < 0.5 ? -1 : 1) * (1 + u())],
    // One top bucket split by the next mantissa bits into sub-buckets of ~1,000 and ~12,500 values that differ
    // only in their lowest bits.
    [
      'sub-buckets of ~1,000 values',
      (u: () => number) => 1 + Math.floor(u() * 100) * 2 ** -19 + Math.floor(u() * 4096) * 2 ** -52,
    ],
    [
      'negative sub-buckets of ~12,500 values',
      (u: () => number) => -1 - Math.floor(u() * 8) * 2 ** -19 - Math.floor(u() * 4096) * 2 ** -52,
    ],
    ['float32-rounded values (low digits shared)', (u: () => number) => Math.fround(u() * 6 - 3)],
    ['values differing only in the lowest bits', (u: () => number) => 1 + Math.floor(u() * 4096) * Number.EPSILON],
  ] as const)('equals the built-in sort with %s', (_name, draw) => {
    const u = mulberry32(_name.length);
    const x = new Float64Array(100_000);
    for (let i = 0; i < x.length; i++) x[i] = draw(u);
    check(x);
    const side = filterSortFloat64(x.slice());
    sameOrder(side.sorted, x.slice().sort());
  });

  it('sorts a view in place without touching the rest of its buffer', () => {
    const u = mulberry32(11);
    const buf = new Float64Array(10_000);
    for (let i = 0; i < buf.length; i++) buf[i] = u();
    const before = buf.slice();
    const view = buf.subarray(1000, 9000);
    check(view.slice());
    sortFloat64(view, new Float64Array(8000));
    sameOrder(buf.subarray(0, 1000), before.subarray(0, 1000));
    sameOrder(buf.subarray(9000), before.subarray(9000));
    sameOrder(view, before.subarray(1000, 9000).sort());
  });
});

describe('prepareSide and the merge pass', () => {
  it('counts NaN as missing and ±Inf as non-finite, and sorts only the finite values', () => {
    const x = new Float64Array([3, Number.NaN, -Infinity, 1, Infinity, 2, Number.NaN, -0]);
    const side = prepareSide(x);
    expect(side.missing).toBe(2);
    expect(side.nonFinite).toBe(2);
    expect([...side.sorted]).toEqual([-0, 1, 2, 3]);
  });

  it('KS h and Wasserstein: 0 for identical samples, D = 1 for disjoint ones, ties consumed as runs', () => {
    const a = new Float64Array([1, 2, 2, 3]);
    expect(compareSorted(a, a.slice())).toEqual({ h: 0, wasserstein: 0, dFloat: 0 });
    const b = new Float64Array([10, 11, 12]);
    const r = compareSorted(a, b);
    expect(r.h / (a.length * b.length)).toBe(1);
    expect(r.dFloat).toBe(1);
    // scipy.stats.wasserstein_distance([1,2,2,3], [10,11,12]) = 9
    expect(r.wasserstein).toBeCloseTo(9, 12);
    // Ties across sides: [0, 0, 1] vs [0, 1, 1]: after 0, R = 2/3 and C = 1/3 → D = 1/3 (h = 3 of n·m = 9).
    const t = compareSorted(new Float64Array([0, 0, 1]), new Float64Array([0, 1, 1]));
    expect(t.h).toBe(3);
    // SciPy's floating-point D (ks_2samp(..., method='asymp').statistic): 2/3 − 1/3 computed in doubles.
    expect(t.dFloat).toBe(2 / 3 - 1 / 3);
  });

  it('the merge pass gives, bit for bit, what one loop over both sides with an Infinity sentinel gives', () => {
    // The earlier form of the merge (one loop, the exhausted side read as +Infinity), kept here as the oracle:
    // the faster form must not change a single bit of h, the Wasserstein sum or the floating-point D.
    const oneLoop = (ref: Float64Array, cur: Float64Array): { h: number; wasserstein: number; dFloat: number } => {
      const n = ref.length;
      const m = cur.length;
      let i = 0;
      let j = 0;
      let h = 0;
      let w = 0;
      let prev = 0;
      let prevTerm = 0;
      let dFloat = 0;
      let started = false;
      while (i < n || j < m) {
        const a = i < n ? ref[i]! : Infinity;
        const b = j < m ? cur[j]! : Infinity;
        const v = a <= b ? a : b;
        if (started) w += prevTerm * (v - prev);
        while (i < n && ref[i] === v) i++;
        while (j < m && cur[j] === v) j++;
        h = Math.max(h, Math.abs(i * m - j * n));
        prevTerm = Math.abs(i / n - j / m);
        if (prevTerm > dFloat) dFloat = prevTerm;
        prev = v;
        started = true;
      }
      return { h, wasserstein: w, dFloat };
    };
    const rnd = mulberry32(12);
    const normal = gaussian(rnd);
    const sample = (k: number, f: () => number): Float64Array => sortFloat64(Float64Array.from({ length: k }, f));
    const cases: [Float64Array, Float64Array][] = [
      // Continuous, shifted and scaled: long runs of one side between the other's values.
      [sample(5000, normal), sample(4000, () => 0.3 + 1.5 * normal())],
      // Heavy ties on both sides (integers 0..9), −0 and +0 mixed in.
      [sample(3000, () => Math.floor(rnd() * 10)), sample(3500, () => (rnd() < 0.1 ? -0 : Math.floor(rnd() * 10)))],
      // One side ends long before the other (each side's tail), and disjoint sides.
      [sample(100, () => rnd()), sample(2000, () => 0.5 + rnd())],
      [sample(2000, () => 5 + rnd()), sample(100, () => rnd())],
      [sample(1, () => 1), sample(7, () => 2)],
      // Values the two sides share exactly, and a side that is the other's prefix.
      [sample(1000, () => Math.round(normal() * 100) / 100), sample(1000, () => Math.round(normal() * 100) / 100)],
      [Float64Array.from([1, 2, 3, 4, 5]), Float64Array.from([1, 2, 3])],
      // A tie of +0 (reference) and −0 (current): one run, whichever side's zero is taken first.
      [Float64Array.from([-1, 0, 0, 2]), Float64Array.from([-0, -0, 1, 2, 2])],
      [Float64Array.from([-0, 3]), Float64Array.from([-2, 0, 0, 3])],
    ];
    // Many small pairs where the smaller side changes at nearly every value (the side to advance is chosen
    // without a branch), mixed with ties within and across sides.
    for (let k = 0; k < 300; k++) {
      const gen =
        k % 3 === 0 ? () => Math.floor(rnd() * 6) - 3 : k % 3 === 1 ? normal : () => (rnd() < 0.3 ? -0 : rnd());
      cases.push([sample(1 + Math.floor(rnd() * 40), gen), sample(1 + Math.floor(rnd() * 40), gen)]);
    }
    for (const [a, b] of cases) {
      const want = oneLoop(a, b);
      const got = compareSorted(a, b);
      expect(got.h).toBe(want.h);
      expect(Object.is(got.wasserstein, want.wasserstein)).toBe(true);
      expect(Object.is(got.dFloat, want.dFloat)).toBe(true);
      const swapped = compareSorted(b, a);
      expect(Object.is(swapped.wasserstein, oneLoop(b, a).wasserstein)).toBe(true);
    }
    // The cases are not trivial: some differ, some tie across sides.
    expect(compareSorted(cases[0]![0], cases[0]![1]).h).toBeGreaterThan(0);
  });

  it("quantileLinear equals NumPy's linear rule on the lerp branch points", () => {
    const x = new Float64Array([0.1, 0.7, 1.3, 2.9]);
    // np.quantile([0.1, 0.7, 1.3, 2.9], [0.1, 0.5, 0.9]).tolist() = [0.28, 1.0, 2.4200000000000004] (NumPy 2.4)
    expect(quantileLinear(x, 0.1)).toBe(0.28);
    expect(quantileLinear(x, 0.5)).toBe(1.0);
    expect(quantileLinear(x, 0.9)).toBe(2.4200000000000004);
  });
});

describe('decodeNative', () => {
  it('rejects a truncated block with an internal error instead of returning garbage', () => {
    // 1 column, 2 rows, name "x", type Float64, then only 8 of the 16 data bytes.
    const head = [1, 2, 1, 0x78, 7, ...Buffer.from('Float64')];
    const buf = new Uint8Array([...head, ...new Uint8Array(8)]);
    expect(() => decodeNative(buf)).toThrow(/truncated/);
  });
});

describe('filterSortFloat64 (the fused filter, key transform and histogram pass)', () => {
  // Finite values sorted as the built-in sort orders them, NaN and ±Inf counted: around the radix threshold
  // (2,048), including inputs whose finite part falls below it while the input does not.
  it.each([0, 5, 2047, 2048, 2100, 4096, 50_001])('equals filter + built-in sort on %i mixed values', (n) => {
    const u = mulberry32(n + 7);
    const g = gaussian(u);
    const x = new Float64Array(n);
    let nan = 0;
    let inf = 0;
    for (let i = 0; i < n; i++) {
      const r = u();
      // n = 2100: most values non-finite, so fewer than 2,048 finite ones remain.
      const special = n === 2100 ? 0.5 : 0.05;
      if (r < special / 2) {
        x[i] = Number.NaN;
        nan++;
      } else if (r < special) {
        x[i] = u() < 0.5 ? Infinity : -Infinity;
        inf++;
      } else if (r < special + 0.05) x[i] = u() < 0.5 ? 0 : -0;
      else x[i] = Math.round(g() * 1000) / (u() < 0.1 ? 1 : 7);
    }
    const expected = x.filter((v) => Number.isFinite(v)).sort();
    const side = filterSortFloat64(x, new Float64Array(n));
    expect(side.missing).toBe(nan);
    expect(side.nonFinite).toBe(inf);
    sameOrder(side.sorted, expected);
    // The sorted values are a view of the input's buffer.
    expect(side.sorted.buffer).toBe(x.buffer);
  });

  it('without a scratch array reuses one buffer across sorts, with the same results', () => {
    const u = mulberry32(99);
    for (const n of [30_000, 10_000, 30_000]) {
      const x = new Float64Array(n).map(() => u() * 2 - 1);
      const expected = x.slice().sort();
      sameOrder(filterSortFloat64(x).sorted, expected);
    }
  });
});
