import { describe, expect, it } from 'vitest';
import { RecordRing } from '../src/bus/record-ring.js';

describe('RecordRing', () => {
  it('places values of slot size in the shared buffer, smaller and larger ones in buffers of their own', () => {
    const ring = new RecordRing({ slots: 4, slotBytes: 16_384, minBytes: 4096 });
    const inSlot = ring.allocate(10_000);
    expect(inSlot.buffer).toBe(ring.buffer);
    expect(inSlot.length).toBe(10_000);
    expect(ring.slotOf(inSlot)).toBe(0);
    const small = ring.allocate(100);
    const large = ring.allocate(16_385);
    expect(small.buffer).not.toBe(ring.buffer);
    expect(large.buffer).not.toBe(ring.buffer);
    expect(large.length).toBe(16_385);
    expect(ring.leased).toBe(1);
    // Foreign buffers are not slots, and giving them back changes nothing.
    ring.release(small);
    ring.release(large);
    expect(ring.slotOf(small)).toBe(-1);
    expect(ring.leased).toBe(1);
  });

  it('falls back to a new buffer when every slot is leased, and counts it', () => {
    const ring = new RecordRing({ slots: 2, slotBytes: 8192 });
    const a = ring.allocate(5000);
    const b = ring.allocate(8192);
    expect([ring.slotOf(a), ring.slotOf(b)].sort()).toEqual([0, 1]);
    const c = ring.allocate(5000);
    expect(c.buffer).not.toBe(ring.buffer);
    expect(ring.fullFallbacks).toBe(1);
    expect(ring.leased).toBe(2);
    const slotA = ring.slotOf(a);
    ring.release(a);
    expect(ring.slotOf(a)).toBe(-1);
    // The freed slot is used again, and slots never overlap.
    const d = ring.allocate(6000);
    expect(ring.slotOf(d)).toBe(slotA);
    expect(Math.abs(d.byteOffset - b.byteOffset)).toBeGreaterThanOrEqual(8192);
  });

  it('frees slots in any order, reuses the last freed first, and ignores a second release', () => {
    const ring = new RecordRing({ slots: 3, slotBytes: 4096, minBytes: 1 });
    const v = [ring.allocate(4096), ring.allocate(4096), ring.allocate(4096)];
    const slots = v.map((b) => ring.slotOf(b));
    expect(new Set(slots).size).toBe(3);
    // Acknowledged out of order: the middle one first, then the first.
    ring.release(v[1]!);
    ring.release(v[0]!);
    ring.release(v[0]!);
    expect(ring.leased).toBe(1);
    expect(ring.slotOf(ring.allocate(10))).toBe(slots[0]);
    expect(ring.slotOf(ring.allocate(10))).toBe(slots[1]);
    expect(ring.leased).toBe(3);
    expect(ring.allocate(10).buffer).not.toBe(ring.buffer);
    ring.releaseSlot(slots[2]!);
    ring.releaseSlot(slots[2]!);
    ring.releaseSlot(99);
    ring.releaseSlot(-1);
    expect(ring.leased).toBe(2);
  });

  it('rejects impossible sizes at construction', () => {
    expect(() => new RecordRing({ slots: 0 })).toThrow(/slots/);
    expect(() => new RecordRing({ slotBytes: 1.5 })).toThrow(/slotBytes/);
    expect(() => new RecordRing({ minBytes: -1 })).toThrow(/minBytes/);
    expect(() => new RecordRing({ slots: 1 << 16, slotBytes: 1 << 16 })).toThrow(/2 GiB/);
  });
});
