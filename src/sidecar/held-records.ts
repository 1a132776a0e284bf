import { releaseArrayBuffers } from '../bus/kafka-worker.js';
import { HeaderBlockMessage, decodeHeaderBlock, headerBlockOf } from '../bus/kafka-header-block.js';
import type { BusMessage } from '../bus/types.js';

/** Options of {@link HeldRecords}. */
export interface HeldRecordsOptions {
  /** Bytes of each slab; a record larger than a slab gets a slab of its own size. @default 1048576 */
  slabBytes?: number;
  /**
   * Emptied slabs kept for reuse. Slabs live in shared memory (see {@link HeldRecords}), which cannot be
   * freed on demand: one not kept is left to the collector, which frees it at a later major collection.
   * A caller that bounds what it holds can keep every slab that bound needs (the tee does), so the memory
   * of the backlog never exceeds it. A slab of its own for a record larger than `slabBytes` is ordinary
   * memory, freed at once when emptied. @default 2
   */
  spareSlabs?: number;
}

const defaults = { slabBytes: 1024 * 1024, spareSlabs: 2 } satisfies Required<HeldRecordsOptions>;

// Frame of one record in a slab: six little-endian uint32s, then the key's UTF-8 bytes, the header
// block's bytes and the value's bytes.
const F_COUNTED = 0;
const F_FLAGS = 4;
const F_KEY = 8;
const F_BLOCK = 12;
const F_VALUE = 16;
const FRAME_HEADER = 24;
/** The key is null (its length is 0). */
const KEY_NULL = 1;
/** The message carried its headers as a Kafka header block (`kafkaHeaders`), not only as an object. */
const HAD_BLOCK = 2;

/**
 * A first-in first-out queue of bus messages kept off the V8 heap: each record's key, headers (as a Kafka
 * header block) and value bytes are appended to large slab `Buffer`s (external memory), framed by their
 * lengths, and no JavaScript object stays behind per record. For a backlog that waits a long time (the
 * tee's buffer while the brokers are down): held as objects, every record outlived the request thread's
 * young generation and was copied into the old one, and those copies made its scavenges 2–3× longer.
 *
 * Slabs are `SharedArrayBuffer`s. V8 adds the external memory an isolate allocated since its last major
 * collection (an `ArrayBuffer`'s backing store) to its old generation when it decides when to start the
 * next one, while shared backing stores are not counted per isolate. In ordinary `ArrayBuffer`s a full
 * 16 MiB backlog weighed as much as 16 MB of promoted objects, and brought a major collection of the
 * request thread into every Kafka outage (measured: marking started with 20 MB of old-generation headroom
 * left, against 12 MB with the broker up). Slabs are reused once read; up to `spareSlabs` are kept.
 */
export class HeldRecords {
  private readonly slabBytes: number;
  private readonly spareSlabs: number;
  /** Slabs in order: the oldest record is at `readAt` in the first, new ones go at `writeAt` in the last. */
  private readonly slabs: Buffer[] = [];
  /** Where each slab's records end (the last one's grows with `writeAt`). */
  private readonly ends: number[] = [];
  private readAt = 0;
  private writeAt = 0;
  private readonly spare: Buffer[] = [];
  private n = 0;
  private counted = 0;

  constructor(options: HeldRecordsOptions = {}) {
    const o = { ...defaults, ...options };
    if (!(Number.isInteger(o.slabBytes) && o.slabBytes >= 4096)) {
      throw new RangeError(`HeldRecordsOptions.slabBytes must be an integer ≥ 4096, got ${o.slabBytes}`);
    }
    if (!(Number.isInteger(o.spareSlabs) && o.spareSlabs >= 0)) {
      throw new RangeError(`HeldRecordsOptions.spareSlabs must be an integer ≥ 0, got ${o.spareSlabs}`);
    }
    this.slabBytes = o.slabBytes;
    this.spareSlabs = o.spareSlabs;
  }

  /** Records held. */
  get count(): number {
    return this.n;
  }

  /** Sum of the counted bytes given with each held record. */
  get bytes(): number {
    return this.counted;
  }

  /** Slabs in use (for tests and diagnostics). */
  get slabCount(): number {
    return this.slabs.length;
  }

  /**
   * Appends a copy of `message` (key, headers, value bytes), with `counted` (its size as the caller counts
   * it). Nothing of `message` is kept: its value may be reused or given back as soon as this returns.
   */
  push(message: BusMessage, counted: number): void {
    const key = message.key;
    const block = message.kafkaHeaders ?? headerBlockOf(message.headers);
    const value = message.value;
    // A bound on the frame (a UTF-8 byte per UTF-16 unit at most 3): enough room before writing.
    const room = FRAME_HEADER + (key === null ? 0 : key.length * 3) + block.length + value.length;
    const slab = this.slabFor(room);
    const at = this.writeAt;
    let p = at + FRAME_HEADER;
    const keyBytes = key === null ? 0 : slab.write(key, p, 'utf8');
    p += keyBytes;
    // One character per byte: the block's characters are 0–255.
    const blockBytes = slab.write(block, p, 'latin1');
    p += blockBytes;
    p += value.copy(slab, p);
    slab.writeUInt32LE(counted, at + F_COUNTED);
    slab.writeUInt32LE(
      (key === null ? KEY_NULL : 0) | (message.kafkaHeaders !== undefined ? HAD_BLOCK : 0),
      at + F_FLAGS,
    );
    slab.writeUInt32LE(keyBytes, at + F_KEY);
    slab.writeUInt32LE(blockBytes, at + F_BLOCK);
    slab.writeUInt32LE(value.length, at + F_VALUE);
    this.writeAt = p;
    this.ends[this.ends.length - 1] = p;
    this.n++;
    this.counted += counted;
  }

  /** The counted bytes of the oldest record; 0 when none is held. */
  peekCounted(): number {
    if (this.n === 0) return 0;
    return (this.slabs[0] as Buffer).readUInt32LE(this.readAt + F_COUNTED);
  }

  /**
   * Removes the oldest record and returns it rebuilt as a message, its value written into a buffer from
   * `allocate` (so the message owns its memory, as one offered fresh does). Throws when none is held.
   */
  shift(allocate: (bytes: number) => Buffer): BusMessage {
    if (this.n === 0) throw new RangeError('HeldRecords.shift: no record held');
    const slab = this.slabs[0] as Buffer;
    const at = this.readAt;
    const flags = slab.readUInt32LE(at + F_FLAGS);
    const keyBytes = slab.readUInt32LE(at + F_KEY);
    const blockBytes = slab.readUInt32LE(at + F_BLOCK);
    const valueBytes = slab.readUInt32LE(at + F_VALUE);
    let p = at + FRAME_HEADER;
    const key = (flags & KEY_NULL) !== 0 ? null : slab.toString('utf8', p, p + keyBytes);
    p += keyBytes;
    const block = slab.toString('latin1', p, p + blockBytes);
    p += blockBytes;
    const value = allocate(valueBytes);
    slab.copy(value, 0, p, p + valueBytes);
    p += valueBytes;
    this.n--;
    this.counted -= slab.readUInt32LE(at + F_COUNTED);
    this.readAt = p;
    if (p >= (this.ends[0] as number)) this.retireRead();
    return (flags & HAD_BLOCK) !== 0
      ? new HeaderBlockMessage(key, value, block)
      : { key, value, headers: decodeHeaderBlock(block) };
  }

  /** Forgets every record; the slabs' memory is freed (spares kept). */
  clear(): void {
    while (this.slabs.length > 0) this.retire(this.slabs.shift() as Buffer);
    this.ends.length = 0;
    this.readAt = 0;
    this.writeAt = 0;
    this.n = 0;
    this.counted = 0;
  }

  /** The slab to write a frame of up to `room` bytes to, at `writeAt` (a new one when the last is full). */
  private slabFor(room: number): Buffer {
    const last = this.slabs[this.slabs.length - 1];
    if (last !== undefined && this.writeAt + room <= last.length) return last;
    // Nothing held: start over (an emptied slab left in place would be read as holding records).
    if (this.n === 0) this.clear();
    const slab =
      room <= this.slabBytes
        ? (this.spare.pop() ?? Buffer.from(new SharedArrayBuffer(this.slabBytes)))
        : Buffer.allocUnsafeSlow(room);
    this.slabs.push(slab);
    this.ends.push(0);
    this.writeAt = 0;
    return slab;
  }

  /** The first slab is read to its end: reuse it in place when it is the only one, else retire it. */
  private retireRead(): void {
    if (this.slabs.length === 1) {
      // Writing restarts at the front of the same slab (its pages stay the ones in use).
      this.readAt = 0;
      this.writeAt = 0;
      this.ends[0] = 0;
      return;
    }
    this.retire(this.slabs.shift() as Buffer);
    this.ends.shift();
    this.readAt = 0;
  }

  private retire(slab: Buffer): void {
    if (!(slab.buffer instanceof SharedArrayBuffer)) {
      // A record's own slab. Nothing refers into it (messages are rebuilt into buffers of their own): free
      // it now rather than at the next major collection, which may be far off.
      releaseArrayBuffers([slab.buffer]);
    } else if (this.spare.length < this.spareSlabs) this.spare.push(slab);
    // Else left to the collector (shared memory cannot be freed on demand).
  }

  /** Emptied slabs kept for reuse (for tests and diagnostics). */
  get spareCount(): number {
    return this.spare.length;
  }
}
