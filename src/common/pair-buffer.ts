/** Options of {@link PairBuffer}. */
export interface PairBufferOptions<Req, Res> {
  /** How long a half waits for its other half, ms. @default 30000 */
  ttlMs?: number;
  /** Most halves waiting at once; beyond it the oldest is flushed as an orphan. @default 10000 */
  maxPending?: number;
  /** How often expired halves are swept, ms. @default 1000 */
  sweepIntervalMs?: number;
  /**
   * Most bytes held by waiting halves (as measured by `sizeOf`); beyond it the oldest are flushed as
   * orphans (`overflow`) until the newest fits. @default Infinity
   */
  maxPendingBytes?: number;
  /** Bytes one half holds, for `maxPendingBytes`. @default () => 0 */
  sizeOf?: (half: Req | Res) => number;
  /** Called with each pair, complete or not (`request` or `response` undefined for orphans). Must not throw. */
  onPair: (pair: Pair<Req, Res>) => void;
}

/** Both halves of one exchange, or one half flushed alone after its TTL, on overflow or on close. */
export interface Pair<Req, Res> {
  key: string;
  request: Req | undefined;
  response: Res | undefined;
  /** Why the pair is incomplete: `ttl`, `overflow`, `close` or `duplicate`; `''` when complete. */
  orphanReason: '' | 'ttl' | 'overflow' | 'close' | 'duplicate';
}

interface Pending<Req, Res> {
  request: Req | undefined;
  response: Res | undefined;
  expiresAt: number;
  bytes: number;
}

/**
 * Pairs request and response halves that arrive separately and in any order (KServe logger
 * CloudEvents, Seldon input/output topics), by a correlation key. Bounded in entries and in bytes, with a TTL:
 * nothing is held forever and nothing is dropped silently — a half that never meets its other half is
 * still handed to `onPair`.
 */
export class PairBuffer<Req, Res> {
  private readonly pending = new Map<string, Pending<Req, Res>>();
  private readonly ttlMs: number;
  private readonly maxPending: number;
  private readonly maxPendingBytes: number;
  private readonly sizeOf: (half: Req | Res) => number;
  private heldBytes = 0;
  private readonly onPair: (pair: Pair<Req, Res>) => void;
  private readonly timer: NodeJS.Timeout;

  constructor(options: PairBufferOptions<Req, Res>) {
    this.ttlMs = options.ttlMs ?? 30_000;
    this.maxPending = options.maxPending ?? 10_000;
    const sweepIntervalMs = options.sweepIntervalMs ?? 1_000;
    if (!(this.ttlMs > 0)) throw new RangeError('ttlMs must be > 0');
    if (!(this.maxPending > 0)) throw new RangeError('maxPending must be > 0');
    if (!(sweepIntervalMs > 0)) throw new RangeError('sweepIntervalMs must be > 0');
    this.maxPendingBytes = options.maxPendingBytes ?? Infinity;
    if (!(this.maxPendingBytes > 0)) throw new RangeError('maxPendingBytes must be > 0');
    this.sizeOf = options.sizeOf ?? (() => 0);
    this.onPair = options.onPair;
    this.timer = setInterval(() => this.sweep(), sweepIntervalMs);
    this.timer.unref();
  }

  /** Halves waiting for their other half. */
  get size(): number {
    return this.pending.size;
  }

  /** Bytes held by the waiting halves (as measured by `sizeOf`). */
  get bytes(): number {
    return this.heldBytes;
  }

  private take(key: string, p: Pending<Req, Res>): void {
    this.pending.delete(key);
    this.heldBytes -= p.bytes;
  }

  /** Adds a request half. */
  request(key: string, value: Req): void {
    this.add(key, 'request', value);
  }

  /** Adds a response half. */
  response(key: string, value: Res): void {
    this.add(key, 'response', value);
  }

  private add(key: string, side: 'request' | 'response', value: Req | Res): void {
    const p = this.pending.get(key);
    if (p !== undefined && p[side] === undefined) {
      this.take(key, p);
      if (side === 'request') this.onPair({ key, request: value as Req, response: p.response, orphanReason: '' });
      else this.onPair({ key, request: p.request, response: value as Res, orphanReason: '' });
      return;
    }
    if (p !== undefined) {
      // The same half twice (a retry, or a reused id): the first one is flushed so neither is lost.
      this.take(key, p);
      this.onPair({ key, request: p.request, response: p.response, orphanReason: 'duplicate' });
    }
    const bytes = this.sizeOf(value);
    // Map iteration order is insertion order: the first entry is the oldest.
    while (
      this.pending.size > 0 &&
      (this.pending.size >= this.maxPending || this.heldBytes + bytes > this.maxPendingBytes)
    ) {
      const first = this.pending.entries().next();
      if (first.done === true) break;
      const [oldKey, old] = first.value;
      this.take(oldKey, old);
      this.onPair({ key: oldKey, request: old.request, response: old.response, orphanReason: 'overflow' });
    }
    const entry: Pending<Req, Res> = {
      request: undefined,
      response: undefined,
      expiresAt: Date.now() + this.ttlMs,
      bytes,
    };
    if (side === 'request') entry.request = value as Req;
    else entry.response = value as Res;
    this.pending.set(key, entry);
    this.heldBytes += bytes;
  }

  /**
   * Takes back a half that is still waiting, if it is exactly `value` (identity), without emitting it:
   * for a consumer whose batch failed and will be delivered again. Returns whether it was removed.
   */
  withdraw(key: string, side: 'request' | 'response', value: Req | Res): boolean {
    const p = this.pending.get(key);
    if (p === undefined || p[side] !== value) return false;
    p[side] = undefined;
    if (p.request === undefined && p.response === undefined) this.take(key, p);
    return true;
  }

  /** Flushes every half whose TTL has passed (called by the timer; exposed for tests and shutdown). */
  sweep(now: number = Date.now()): void {
    for (const [key, p] of this.pending) {
      // Insertion order is expiry order (constant TTL), so the first live entry ends the sweep.
      if (p.expiresAt > now) break;
      this.take(key, p);
      this.onPair({ key, request: p.request, response: p.response, orphanReason: 'ttl' });
    }
  }

  /**
   * Stops the timer and flushes everything still waiting (`close` orphans). With `flush: false` the
   * waiting halves are dropped without `onPair`: for an owner that can read them again (the Seldon
   * bridge, which never committed their Kafka offsets).
   */
  close(options: { flush?: boolean } = {}): void {
    clearInterval(this.timer);
    for (const [key, p] of options.flush === false ? [] : this.pending) {
      this.onPair({ key, request: p.request, response: p.response, orphanReason: 'close' });
    }
    this.pending.clear();
    this.heldBytes = 0;
  }
}
