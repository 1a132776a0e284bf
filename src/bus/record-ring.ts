/**
 * Where a producer gets the buffer of a record's value, and gives it back when the record will not be
 * published after all (dropped, or the buffer was not used). A bus that offers this (see
 * {@link Bus.recordBuffers}) takes back the buffers of the records it publishes itself.
 */
export interface RecordBuffers {
  /** A buffer of exactly `bytes` bytes for a record's value: from the bus's own memory when it can, else a new one. */
  allocate(bytes: number): Buffer;
  /** Gives back a value from {@link RecordBuffers.allocate} that will not be published; any other buffer is ignored. */
  release(value: Buffer): void;
}

/** Options of {@link RecordRing}. */
export interface RecordRingOptions {
  /** Number of slots. @default 128 */
  slots?: number;
  /** Bytes of each slot: the largest record a slot holds (larger ones are allocated). @default 131072 */
  slotBytes?: number;
  /**
   * Smaller records are allocated, not placed in a slot: under 4 KiB, `Buffer.allocUnsafe` takes them
   * from Node's shared pool (no `ArrayBuffer` of their own). @default 4096
   */
  minBytes?: number;
}

const defaults = { slots: 128, slotBytes: 128 * 1024, minBytes: 4096 } satisfies Required<RecordRingOptions>;

const FREE = 0;
const LEASED = 1;

/**
 * Record values in fixed-size slots of one `SharedArrayBuffer`, shared between the thread that writes
 * records (the sidecar's request thread) and the Kafka publisher worker that reads them. Each value
 * that would otherwise be an `ArrayBuffer` of its own (tens of KB per 64 KB call) is written into a
 * slot instead: V8 counts every new `ArrayBuffer` toward the next major collection of the thread that
 * allocated it, and at 64 KB bodies those collections (~100 ms) made the request thread's p99.
 *
 * Only the writing thread leases and frees slots: a slot is leased by {@link RecordRing.allocate} and
 * freed by {@link RecordRing.release}, which the publishing side calls once the worker says its
 * producer is done with the value (acknowledged, or given up on after its retries), or the worker is
 * gone. Freed slots are reused last-in first-out, so the pages in use stay few and hot (the rest of
 * the buffer is never touched, and costs no resident memory). When every slot is leased, or a record
 * does not fit a slot, `allocate` returns a new buffer as before: nothing waits for a slot.
 */
export class RecordRing implements RecordBuffers {
  /** The memory of every slot: handed to the worker once, at its start. */
  readonly buffer: SharedArrayBuffer;
  readonly slotBytes: number;
  readonly slots: number;
  private readonly minBytes: number;
  /** Free slot numbers; the top of the stack is reused first. */
  private readonly free: Int32Array;
  private top: number;
  private readonly state: Uint8Array;
  private fallbacks = 0;

  constructor(options: RecordRingOptions = {}) {
    const o = { ...defaults, ...options };
    for (const k of ['slots', 'slotBytes'] as const) {
      const v = o[k];
      if (!(Number.isInteger(v) && v > 0))
        throw new RangeError(`RecordRingOptions.${k} must be a positive integer, got ${v}`);
    }
    if (!(Number.isInteger(o.minBytes) && o.minBytes >= 0)) {
      throw new RangeError(`RecordRingOptions.minBytes must be an integer ≥ 0, got ${o.minBytes}`);
    }
    if (o.slots * o.slotBytes > 2 ** 31) throw new RangeError('RecordRing larger than 2 GiB');
    this.slots = o.slots;
    this.slotBytes = o.slotBytes;
    this.minBytes = o.minBytes;
    this.buffer = new SharedArrayBuffer(o.slots * o.slotBytes);
    this.free = new Int32Array(o.slots);
    // Slot 0 on top: the first records use the start of the buffer.
    for (let i = 0; i < o.slots; i++) this.free[i] = o.slots - 1 - i;
    this.top = o.slots;
    this.state = new Uint8Array(o.slots);
  }

  /** Slots leased now. */
  get leased(): number {
    return this.slots - this.top;
  }

  /** Records of a size a slot holds that got a new buffer because every slot was leased. */
  get fullFallbacks(): number {
    return this.fallbacks;
  }

  allocate(bytes: number): Buffer {
    if (bytes < this.minBytes || bytes > this.slotBytes) return Buffer.allocUnsafe(bytes);
    if (this.top === 0) {
      this.fallbacks++;
      return Buffer.allocUnsafe(bytes);
    }
    const slot = this.free[--this.top] as number;
    this.state[slot] = LEASED;
    return Buffer.from(this.buffer, slot * this.slotBytes, bytes);
  }

  /** The slot `value` lies in, or -1 when it is not a leased slot of this ring. */
  slotOf(value: Uint8Array): number {
    if (value.buffer !== this.buffer) return -1;
    const slot = Math.floor(value.byteOffset / this.slotBytes);
    return this.state[slot] === LEASED ? slot : -1;
  }

  release(value: Uint8Array): void {
    this.releaseSlot(this.slotOf(value));
  }

  /** Frees a slot by number (from {@link RecordRing.slotOf}); a slot that is not leased is left alone. */
  releaseSlot(slot: number): void {
    if (slot < 0 || slot >= this.slots || this.state[slot] !== LEASED) return;
    this.state[slot] = FREE;
    this.free[this.top++] = slot;
  }
}
