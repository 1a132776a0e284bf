/**
 * Radix sort of float64 values by a key that orders like the numbers (the value's bits with, for negative
 * values, every bit flipped; for the others, the sign bit set). The key is never stored: each pass computes its
 * digit from the value's bits and moves the 8-byte value itself, so there is no transform pass before the sort
 * and none after it.
 *
 * One MSD pass first: the values are distributed by the key's top 16 bits (sign, exponent and the top four
 * mantissa bits), a digit real data concentrates in a few hundred buckets, so the pass writes to few places
 * at once. Each bucket then holds values of one sign and binary magnitude and is sorted on its own, in cache:
 * up to {@link INSERTION_MAX} values by insertion, up to {@link BUCKET_WIDE} by LSD passes of 8-bit digits of
 * the remaining 48 key bits; a larger one is split once more by its next bits into sub-buckets of about two
 * values (sorted by insertion, or like a bucket when the values cluster there). A digit every value of a
 * bucket shares is skipped. On 1M values about 2× faster than four whole-array LSD passes of 16-bit digits
 * (whose 65,536 destinations per pass miss the cache) and than `Float64Array.prototype.sort`; the order
 * equals the built-in one on every value but NaN's placement, which is also last here.
 */

/** Values from which {@link sortFloat64} switches from the built-in sort to the radix sort. */
const RADIX_MIN = 2048;
/** Buckets of the MSD pass (the key's top 16 bits). */
const TOP = 65536;
/** Buckets up to this size are sorted by insertion. */
const INSERTION_MAX = 48;
/** Buckets from this size are split again by their next bits (8-bit LSD digits below). */
const BUCKET_WIDE = 2048;

/**
 * Buffers reused across sorts on this thread (grow-only up to {@link KEPT_SCRATCH_MAX} values): a fresh 8 MB
 * scratch array per 1M-value sort costs its page faults every time, about as much as one scatter pass. A
 * larger sort (e.g. 10M values, 80 MB) gets a buffer of its own that is freed with it, so a sort thread does
 * not hold that memory between jobs.
 */
let sharedScratch: Float64Array | undefined;
let topCounts: Uint32Array | undefined;
let narrowCounts: Uint32Array | undefined;
let wideCounts: Uint32Array | undefined;

/** Most values a kept scratch buffer holds (32 MB). */
const KEPT_SCRATCH_MAX = 4 * 2 ** 20;

function scratchOf(n: number, given: Float64Array | undefined): Float64Array {
  if (given !== undefined && given.length >= n) return given.subarray(0, n);
  if (n > KEPT_SCRATCH_MAX) return new Float64Array(n);
  if (sharedScratch === undefined || sharedScratch.length < n) {
    sharedScratch = undefined;
    sharedScratch = new Float64Array(Math.max(n, 1024));
  }
  return sharedScratch.subarray(0, n);
}

function topCountsOf(): Uint32Array {
  topCounts ??= new Uint32Array(TOP);
  topCounts.fill(0);
  return topCounts;
}

/** Result of {@link filterSortFloat64}. */
export interface FilteredSort {
  /** The finite values of the input, ascending: a view of the front of the input's buffer. */
  sorted: Float64Array;
  /** NaN values (NULL and absent values read as NaN). */
  missing: number;
  /** ±Inf values. */
  nonFinite: number;
}

/**
 * Moves the finite values of `values` to its front, sorts them ascending (−0 before +0) and counts NaN and
 * ±Inf, in place: the filter and the top-digit histogram share one pass over the data. `scratch` (at least
 * `values.length` long) is the second buffer when given, else a buffer reused by every sort on this thread.
 */
export function filterSortFloat64(values: Float64Array, scratch?: Float64Array): FilteredSort {
  const n = values.length;
  let k = 0;
  let missing = 0;
  let nonFinite = 0;
  if (n < RADIX_MIN) {
    for (let i = 0; i < n; i++) {
      const v = values[i]!;
      if (v - v === 0) values[k++] = v;
      else if (v !== v) missing++;
      else nonFinite++;
    }
    return { sorted: values.subarray(0, k).sort(), missing, nonFinite };
  }
  // Filter and histogram in one pass. Finite values only move: their bits survive a float64 copy.
  const a = new Uint32Array(values.buffer, values.byteOffset, n * 2);
  const counts = topCountsOf();
  for (let i = 0; i < n; i++) {
    const h = a[2 * i + 1]!;
    if ((h & 0x7ff00000) === 0x7ff00000) {
      // Exponent all ones: NaN with a mantissa, ±Inf without.
      if ((h & 0xfffff) !== 0 || a[2 * i]! !== 0) missing++;
      else nonFinite++;
      continue;
    }
    values[k++] = values[i]!;
    counts[(h ^ ((h >> 31) | 0x80000000)) >>> 16]!++;
  }
  const sorted = values.subarray(0, k);
  if (k < RADIX_MIN) sorted.sort();
  else sortByTopDigit(sorted, scratchOf(k, scratch), counts);
  return { sorted, missing, nonFinite };
}

/**
 * The MSD pass over `values` by the key's top 16 bits (histogram in `counts`) into `tmp` (as long), then each
 * bucket sorted in place in `tmp` (with `values` as its second buffer); the sorted values end in `values`.
 * Every value must keep its bits when copied as a float64: no NaN other than the canonical one.
 */
function sortByTopDigit(values: Float64Array, tmp: Float64Array, counts: Uint32Array): void {
  const n = values.length;
  // counts[j] becomes the start of bucket j; after the scatter it is the bucket's end.
  let sum = 0;
  let single = -1;
  for (let j = 0; j < TOP; j++) {
    const c = counts[j]!;
    if (c === n) single = j;
    counts[j] = sum;
    sum += c;
  }
  if (single >= 0) {
    // One bucket holds every value: nothing to distribute.
    tmp.set(values);
    counts.fill(n, single);
  } else {
    const u = new Uint32Array(values.buffer, values.byteOffset, n * 2);
    for (let i = 0; i < n; i++) {
      const h = u[2 * i + 1]!;
      tmp[counts[(h ^ ((h >> 31) | 0x80000000)) >>> 16]!++] = values[i]!;
    }
  }
  const tu = new Uint32Array(tmp.buffer, tmp.byteOffset, n * 2);
  const vu = new Uint32Array(values.buffer, values.byteOffset, n * 2);
  let start = 0;
  for (let j = 0; j < TOP; j++) {
    const end = counts[j]!;
    const len = end - start;
    if (len > INSERTION_MAX) {
      if (len < BUCKET_WIDE) sortNarrow(tmp, values, tu, vu, start, end);
      else sortSpread(tmp, values, tu, vu, start, end);
    } else if (len > 1) insertionSort(tmp, start, end);
    start = end;
  }
  values.set(tmp);
}

let spreadCounts: Uint32Array | undefined;

/**
 * A large bucket `s[start, end)` (`t` the second buffer) split once more by the key's next bits (as many as
 * make sub-buckets of about two values, at most 16), then each sub-bucket sorted on its own: by insertion when
 * small, else by {@link sortNarrow} or {@link sortWide} (values that cluster in those bits). Ends sorted in `s`.
 */
function sortSpread(
  s: Float64Array,
  t: Float64Array,
  su: Uint32Array,
  tu: Uint32Array,
  start: number,
  end: number,
): void {
  const len = end - start;
  const bits = Math.min(16, Math.max(8, 31 - Math.clz32(len) - 1));
  const shift = 16 - bits;
  const radix = 1 << bits;
  spreadCounts ??= new Uint32Array(TOP);
  const c = spreadCounts;
  c.fill(0, 0, radix);
  for (let i = start; i < end; i++) {
    const h = su[2 * i + 1]!;
    c[((h ^ (h >> 31)) & 0xffff) >>> shift]!++;
  }
  let sum = start;
  for (let b = 0; b < radix; b++) {
    const x = c[b]!;
    if (x === len) {
      // Every value shares these bits too.
      sortWide(s, t, su, tu, start, end);
      return;
    }
    c[b] = sum;
    sum += x;
  }
  for (let i = start; i < end; i++) {
    const h = su[2 * i + 1]!;
    t[c[((h ^ (h >> 31)) & 0xffff) >>> shift]!++] = s[i]!;
  }
  // c[b] is now the end of sub-bucket b.
  let from = start;
  for (let b = 0; b < radix; b++) {
    const to = c[b]!;
    const n = to - from;
    if (n > 1) {
      if (n <= INSERTION_MAX) insertionSort(t, from, to);
      else if (n < BUCKET_WIDE) sortNarrow(t, s, tu, su, from, to);
      else sortWide(t, s, tu, su, from, to);
    }
    from = to;
  }
  s.set(t.subarray(start, end), start);
}

/**
 * Insertion sort of `x[start, end)`. Within one top-digit bucket the values share sign and binary magnitude, so
 * the float order is the key order (−0 and +0 never share a bucket; NaNs, all canonical, are equal bits).
 */
function insertionSort(x: Float64Array, start: number, end: number): void {
  for (let i = start + 1; i < end; i++) {
    const v = x[i]!;
    let j = i - 1;
    while (j >= start && x[j]! > v) {
      x[j + 1] = x[j]!;
      j--;
    }
    x[j + 1] = v;
  }
}

/**
 * LSD passes of 8-bit digits over the low 48 key bits of bucket `s[start, end)` (`t` the second buffer, `su`
 * and `tu` their 32-bit views); the bucket ends sorted in `s`. The top 16 bits are the bucket's, so the sign is
 * shared: the key's low bits are the value's, flipped for a negative bucket.
 */
function sortNarrow(
  s: Float64Array,
  t: Float64Array,
  su: Uint32Array,
  tu: Uint32Array,
  start: number,
  end: number,
): void {
  narrowCounts ??= new Uint32Array(6 * 256);
  const c = narrowCounts;
  c.fill(0);
  const len = end - start;
  for (let i = start; i < end; i++) {
    const h = su[2 * i + 1]!;
    const m = h >> 31;
    const lo = (su[2 * i]! ^ m) >>> 0;
    const hi = (h ^ m) >>> 0;
    c[lo & 255]!++;
    c[256 + ((lo >>> 8) & 255)]!++;
    c[512 + ((lo >>> 16) & 255)]!++;
    c[768 + (lo >>> 24)]!++;
    c[1024 + (hi & 255)]!++;
    c[1280 + ((hi >>> 8) & 255)]!++;
  }
  let src = s;
  let dst = t;
  let srcU = su;
  let dstU = tu;
  for (let d = 0; d < 6; d++) {
    if (!startsOf(c, d * 256, 256, start, len)) continue;
    const base = d * 256;
    const shift = (d & 3) * 8;
    const word = d < 4 ? 0 : 1;
    for (let i = start; i < end; i++) {
      const key = (((srcU[2 * i + word]! ^ (srcU[2 * i + 1]! >> 31)) >>> shift) & 255) + base;
      dst[c[key]!++] = src[i]!;
    }
    const x = src;
    src = dst;
    dst = x;
    const y = srcU;
    srcU = dstU;
    dstU = y;
  }
  if (src !== s) s.set(src.subarray(start, end), start);
}

/** As {@link sortNarrow} with four 12-bit digits, for large buckets. */
function sortWide(
  s: Float64Array,
  t: Float64Array,
  su: Uint32Array,
  tu: Uint32Array,
  start: number,
  end: number,
): void {
  wideCounts ??= new Uint32Array(4 * 4096);
  const c = wideCounts;
  c.fill(0);
  const len = end - start;
  for (let i = start; i < end; i++) {
    const h = su[2 * i + 1]!;
    const m = h >> 31;
    const lo = su[2 * i]! ^ m;
    const hi = h ^ m;
    c[lo & 4095]!++;
    c[4096 + ((lo >>> 12) & 4095)]!++;
    c[8192 + (((lo >>> 24) | (hi << 8)) & 4095)]!++;
    c[12288 + ((hi >>> 4) & 4095)]!++;
  }
  let src = s;
  let dst = t;
  let srcU = su;
  let dstU = tu;
  for (let d = 0; d < 4; d++) {
    const base = d * 4096;
    if (!startsOf(c, base, 4096, start, len)) continue;
    if (d === 0) {
      for (let i = start; i < end; i++) {
        const key = ((srcU[2 * i]! ^ (srcU[2 * i + 1]! >> 31)) & 4095) + base;
        dst[c[key]!++] = src[i]!;
      }
    } else if (d === 1) {
      for (let i = start; i < end; i++) {
        const key = (((srcU[2 * i]! ^ (srcU[2 * i + 1]! >> 31)) >>> 12) & 4095) + base;
        dst[c[key]!++] = src[i]!;
      }
    } else if (d === 2) {
      for (let i = start; i < end; i++) {
        const h = srcU[2 * i + 1]!;
        const m = h >> 31;
        const key = ((((srcU[2 * i]! ^ m) >>> 24) | ((h ^ m) << 8)) & 4095) + base;
        dst[c[key]!++] = src[i]!;
      }
    } else {
      for (let i = start; i < end; i++) {
        const h = srcU[2 * i + 1]!;
        const key = (((h ^ (h >> 31)) >>> 4) & 4095) + base;
        dst[c[key]!++] = src[i]!;
      }
    }
    const x = src;
    src = dst;
    dst = x;
    const y = srcU;
    srcU = dstU;
    dstU = y;
  }
  if (src !== s) s.set(src.subarray(start, end), start);
}

/**
 * Turns the digit histogram `c[base, base + radix)` of a bucket of `len` values starting at `start` into each
 * digit's first destination index. False (histogram left as is) when every value has the same digit: the
 * pass would move nothing.
 */
function startsOf(c: Uint32Array, base: number, radix: number, start: number, len: number): boolean {
  let sum = start;
  for (let b = base; b < base + radix; b++) {
    const x = c[b]!;
    if (x === len) return false;
    c[b] = sum;
    sum += x;
  }
  return true;
}

/**
 * Sorts `values` ascending in place and returns it: −Inf first, −0 before +0, +Inf and then every NaN last
 * (NaNs are canonicalised). `scratch` (at least `values.length` long) is used as the second buffer when given.
 */
export function sortFloat64(values: Float64Array, scratch?: Float64Array): Float64Array {
  const n = values.length;
  if (n < RADIX_MIN) {
    // The built-in typed-array order is the same (−0 before +0, NaN last).
    return values.sort();
  }
  const a = new Uint32Array(values.buffer, values.byteOffset, n * 2);
  const counts = topCountsOf();
  for (let i = 0; i < n; i++) {
    let hi = a[2 * i + 1]!;
    if ((hi & 0x7ff00000) === 0x7ff00000 && ((hi & 0xfffff) !== 0 || a[2 * i]! !== 0)) {
      // Any NaN (payload, sign) becomes the canonical one, whose key is above +Inf's and survives copies.
      hi = 0x7ff80000;
      a[2 * i] = 0;
      a[2 * i + 1] = hi;
    }
    counts[(hi ^ ((hi >> 31) | 0x80000000)) >>> 16]!++;
  }
  sortByTopDigit(values, scratchOf(n, scratch), counts);
  return values;
}

/**
 * Values that take every path of {@link filterSortFloat64} (NaN and ±Inf filtered; buckets sorted by insertion,
 * by {@link sortNarrow} with digits skipped and not, and large ones by {@link sortSpread}, whose sub-buckets go to
 * insertion, {@link sortNarrow} and {@link sortWide}, or straight to {@link sortWide} when every value shares the
 * spread bits), shuffled; and, second, values that all fall in one top-digit bucket.
 */
function warmUpInputs(): Float64Array[] {
  const v: number[] = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 0];
  for (let e = -20; e < 20; e += 3) v.push(2 ** e * 1.3, -(2 ** e) * 1.7, 2 ** e * 1.3);
  // One negative bucket ([-5, -4.75)) with ties.
  for (let i = 0; i < 300; i++) v.push(-5 + (i % 250) * 0.001);
  // One bucket ([16, 17)) whose values differ only in their top mantissa bits: low digits all equal.
  for (let i = 0; i < 200; i++) v.push(16 + (i % 64) / 64);
  // A large bucket ([1, 1.0625)): spread evenly, plus a cluster that fills one sub-bucket.
  for (let i = 0; i < 2500; i++) v.push(1 + (i * 0.0625) / 2500);
  for (let i = 0; i < 100; i++) v.push(1.03 + i * 2 ** -48);
  // A large bucket ([2, 2.125)) with one sub-bucket above the wide size.
  for (let i = 0; i < 2200; i++) v.push(2.05 + i * 2 ** -44);
  for (let i = 0; i < 40; i++) v.push(2 + i * 0.003);
  // A large bucket ([4, 4.25)) whose values all share the spread bits.
  for (let i = 0; i < 2100; i++) v.push(4.1 + i * 2 ** -50);
  // A fixed shuffle (xorshift), so that every bucket is filled out of order.
  let x = 0x9e3779b9;
  for (let i = v.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    const t = v[i]!;
    v[i] = v[j]!;
    v[j] = t;
  }
  const single = new Float64Array(RADIX_MIN + 100);
  for (let i = 0; i < single.length; i++) single[i] = 1 + ((i * 7919) % single.length) * 2 ** -40;
  return [Float64Array.from(v), single];
}

/**
 * Sorts {@link warmUpInputs} a few times on this thread, so that V8 has type feedback for every path of the
 * sort, and has compiled it whole, before the first large sort (see `warmUpNumericJob`): measured, a sort
 * worker's first two sorts of 1M values otherwise took 60–80 ms each against about 30 ms. It costs 10–15 ms of the
 * worker's start-up, which the pool starts while the window is read.
 */
export function warmUpRadixSort(): void {
  const inputs = warmUpInputs();
  for (let round = 0; round < 3; round++) for (const values of inputs) filterSortFloat64(values.slice());
}
