// Request and event ids (DESIGN §4 rule 4): UUIDv7 per RFC 9562, minted from a pooled random buffer with a
// monotonic counter. Checked for layout (against the `uuid` package's parser), time, order and uniqueness.
import { parse as parseUuid, validate, version } from 'uuid';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { newId } from '../src/common/ids.js';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The 48-bit millisecond timestamp of a UUIDv7. */
function msOf(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

/** The 42-bit counter: 12 bits after the version nibble, then 30 bits after the variant bits. */
function counterOf(id: string): number {
  const hi = parseInt(id.slice(15, 18), 16);
  const lo = (parseInt(id.slice(19, 23), 16) & 0x3fff) * 0x10000 + parseInt(id.slice(24, 28), 16);
  return hi * 2 ** 30 + lo;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('newId', () => {
  it('mints RFC 9562 version-7 ids carrying the current time in milliseconds', () => {
    const before = Date.now();
    const ids = Array.from({ length: 1000 }, () => newId());
    const after = Date.now();
    for (const id of ids) {
      expect(id).toMatch(V7);
      expect(validate(id)).toBe(true);
      expect(version(id)).toBe(7);
      // The variant is RFC 9562's (binary 10) in the parsed bytes too.
      expect(parseUuid(id)[8]! >> 6).toBe(2);
      const ms = msOf(id);
      expect(ms).toBeGreaterThanOrEqual(before);
      expect(ms).toBeLessThanOrEqual(after);
    }
  });

  it('is strictly increasing and unique over 1M ids', () => {
    const n = 1_000_000;
    const seen = new Set<string>();
    let prev = newId();
    seen.add(prev);
    let sameMs = 0;
    for (let i = 1; i < n; i++) {
      const id = newId();
      if (!(id > prev)) throw new Error(`id ${i} (${id}) does not sort after ${prev}`);
      if (msOf(id) === msOf(prev)) {
        sameMs++;
        // Within a millisecond the counter counts by one.
        if (counterOf(id) !== counterOf(prev) + 1) throw new Error(`counter did not step by one at ${id}`);
      }
      seen.add(id);
      prev = id;
    }
    expect(seen.size).toBe(n);
    // Most ids share their millisecond with the previous one: the counter, not luck, keeps them ordered.
    expect(sameMs).toBeGreaterThan(n / 2);
  });

  it('seeds the counter at random each millisecond, leaving the top bit clear', () => {
    let ms = 1_800_000_000_000;
    vi.spyOn(Date, 'now').mockImplementation(() => ms++);
    const counters = Array.from({ length: 2000 }, () => counterOf(newId()));
    for (const c of counters) expect(c).toBeLessThan(2 ** 41);
    // 2000 draws of 41 random bits: no repeats, spread over the range.
    expect(new Set(counters).size).toBe(counters.length);
    expect(Math.max(...counters)).toBeGreaterThan(2 ** 40);
    expect(Math.min(...counters)).toBeLessThan(2 ** 40);
  });

  it('stays ordered when the clock steps back, keeping the last timestamp', () => {
    const t = 1_900_000_000_000;
    const spy = vi.spyOn(Date, 'now').mockReturnValue(t);
    const a = newId();
    spy.mockReturnValue(t - 5_000);
    const b = newId();
    const c = newId();
    expect(b > a).toBe(true);
    expect(c > b).toBe(true);
    expect(msOf(b)).toBe(t);
    expect(msOf(c)).toBe(t);
    spy.mockReturnValue(t + 1);
    const d = newId();
    expect(d > c).toBe(true);
    expect(msOf(d)).toBe(t + 1);
  });
});
