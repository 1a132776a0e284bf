import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { Counter, Registry } from 'prom-client';
import {
  encodeCaptureSized,
  type CaptureBodyParts,
  type CapturedCall,
  type EncodeCaptureOptions,
} from '../protocol/capture.js';
import type { Bus, BusMessage } from '../bus/types.js';
import type { RecordBuffers } from '../bus/record-ring.js';
import { errorMessage, isModelwatchError } from '../common/errors.js';
import { silentLogger, type Logger } from '../common/logger.js';
import { counterOn, summedGaugeOn, type GaugeReader } from '../common/metrics.js';
import { HeaderBlockMessage } from '../bus/kafka-header-block.js';
import { releaseArrayBuffers } from '../bus/kafka-worker.js';
import { HeldRecords } from './held-records.js';

/** Reasons a captured record is dropped instead of sent. */
export const TeeDropReasons = ['buffer_full', 'publish_failed', 'shutdown'] as const;
/** One of {@link TeeDropReasons}. */
export type TeeDropReason = (typeof TeeDropReasons)[number];

/** Options of {@link Tee}. */
export interface TeeOptions {
  /** Bound of buffered plus in-flight records, in encoded bytes; beyond it new records are dropped. @default 67108864 */
  maxBufferBytes?: number;
  /** How often the background flusher publishes what is buffered. @default 20 */
  flushIntervalMs?: number;
  /**
   * How long after the last publish the background flusher holds a partial batch back: records
   * offered while a publish waits for its answer then go out with the next tick rather than as soon
   * as it settles, a few at a time. For a bus where each publish has a fixed cost (a Kafka Produce
   * request, a hand-off to another thread); whole batches (`maxBatchMessages` or `maxBatchBytes`) never
   * wait. Records held back live longer on this thread, so with a bus that takes a batch at no cost
   * (in-process) 0 is better. 0: publish as soon as a publish slot is free. @default 0
   */
  lingerMs?: number;
  /**
   * A partial batch of at least this many bytes does not linger: the fixed cost of a publish only matters
   * for small records, while large ones held back on this thread outlive a young-generation collection and
   * are promoted (major collections at 64 KB bodies). @default 65536
   */
  lingerMaxBytes?: number;
  /** Largest batch handed to one `bus.publish`. @default 200 */
  maxBatchMessages?: number;
  /** Largest batch in bytes (a single larger record still goes alone). @default 1048576 */
  maxBatchBytes?: number;
  /**
   * Publishes the flusher keeps unsettled at once. With a remote bus each batch waits for its ack, so
   * one at a time caps throughput at `maxBatchBytes` per round trip (large captures need several
   * batches in flight); records are independent, so their order across batches does not matter.
   * @default 1
   */
  maxInFlightBatches?: number;
  /**
   * The background flusher holds back while the event loop is busier than this (smoothed
   * event-loop utilisation, 0..1): publishing costs CPU on the loop that serves requests, so under
   * overload records wait in the bounded buffer (and overflow as `buffer_full`) rather than slow
   * inference. 1 disables the check. Explicit `flush()` and `close()` ignore it. @default 0.9
   */
  maxLoopUtilization?: number;
  /**
   * A publish that has not settled after this long stops holding up the flusher, which moves on to
   * the next batch. Its records stay counted as in flight, and their bytes inside `maxBufferBytes`,
   * until the bus answers: sent if it then acknowledges, put back at the front of the queue if it fails
   * retryably (see `retryBackoffMs`), dropped (`publish_failed`) if it refuses the records for good.
   * @default 5000
   */
  publishTimeoutMs?: number;
  /**
   * Encode each record's headers as a Kafka header block (`kafkaHeaders`, see `encodeCaptureSized`)
   * rather than an object: for a bus that hands records to another thread (the Kafka publisher worker),
   * where one string per record crosses instead of a 24-property object. Same bytes on the topic.
   * @default false
   */
  kafkaHeaderBlock?: boolean;
  /**
   * Hand records to the bus at most this long after the first of them was offered, rather than with the
   * flusher's next tick (0: at the end of the event-loop turn that offered them): for a bus where a publish
   * costs next to nothing on this thread (the in-process bus). A record that waits for the tick (up to
   * `flushIntervalMs`) is often still here when the young generation is collected, and is promoted with
   * its bodies' `ArrayBuffer`s: at 64 KB bodies that promotion is what starts the request thread's major
   * collections. Only once the queued records hold `lingerMaxBytes` (small records are not worth a
   * publish each; at the default, one 64 KB call is enough). `Infinity`: with the tick. @default Infinity
   */
  handOffMs?: number;
  /**
   * Bytes of each slab of the off-heap backlog. Once `maxBatchMessages` records wait (the bus is not
   * keeping up, or is down), later records are held as bytes in slab buffers (off the V8 heap) rather
   * than as objects, until the backlog is drained: a record held past the request thread's
   * young-generation collections as objects is copied into the old generation, and at 1 KB captures
   * through a Kafka outage those copies (~1.1 MB a second) made the collections longer and brought a
   * full collection. The heap a held record costs is per record (its objects and header block), not
   * per byte (a value is external memory either way), so the trigger is a count: records large enough
   * to fill a batch by bytes first are not copied twice more. Order, bound and accounting are the same
   * either way. Slabs are shared memory, which V8 does not weigh against the request thread's old
   * generation (see `HeldRecords`); once allocated, as many as `maxBufferBytes` can fill are kept for the
   * next backlog. @default 1048576
   */
  heldSlabBytes?: number;
  /**
   * After a publish fails with a retryable error (broker down or unreachable, request timeout, leader not
   * available, the bus full or unavailable), its records go back to the front of the queue, in order, and
   * the background flusher publishes nothing for this long; the wait doubles with each further failure up
   * to `maxRetryBackoffMs` and starts over after a publish succeeds. Records that fail for good (too
   * large, invalid topic, not authorized) are dropped at once (`publish_failed`). @default 200
   */
  retryBackoffMs?: number;
  /** Longest wait between publish attempts after retryable failures (see `retryBackoffMs`). @default 5000 */
  maxRetryBackoffMs?: number;
  /** Registry for the `modelwatch_tee_*` metrics; none when omitted. */
  registry?: Registry | undefined;
  logger?: Logger;
}

const defaults = {
  maxBufferBytes: 64 * 1024 * 1024,
  flushIntervalMs: 20,
  lingerMs: 0,
  lingerMaxBytes: 64 * 1024,
  maxBatchMessages: 200,
  maxBatchBytes: 1024 * 1024,
  maxInFlightBatches: 1,
  maxLoopUtilization: 0.9,
  publishTimeoutMs: 5_000,
  kafkaHeaderBlock: false,
  handOffMs: Number.POSITIVE_INFINITY,
  heldSlabBytes: 1024 * 1024,
  retryBackoffMs: 200,
  maxRetryBackoffMs: 5_000,
  logger: silentLogger,
} satisfies Omit<Required<TeeOptions>, 'registry'>;

/** Accounting of a {@link Tee}. Always `captured = sent + dropped + buffered`. */
export interface TeeStats {
  /** Records handed to the tee. */
  captured: number;
  /** Records the bus acknowledged. */
  sent: number;
  /** Records dropped, all reasons. */
  dropped: number;
  /** Records dropped, by reason. */
  droppedBy: Record<TeeDropReason, number>;
  /** Records waiting or in flight. */
  buffered: number;
  /** Of `buffered`, records waiting as bytes in the off-heap backlog (see `TeeOptions.heldSlabBytes`). */
  heldOffHeap: number;
  /** Encoded bytes waiting or in flight. */
  bufferedBytes: number;
  /** Of `buffered`, records handed to the bus whose publish has not settled yet (timed out or not). */
  inFlight: number;
  /** Publishes that outlived `publishTimeoutMs` (their records were counted once, when the bus answered). */
  publishTimeouts: number;
  /**
   * Records put back at the front of the queue after a retryable publish failure, counted each time
   * (a record retried three times counts three). Not part of the identity: they are still `buffered`.
   */
  retried: number;
  /** Inference calls not captured because of sampling (not part of `captured`). */
  sampledOut: number;
}

interface Entry {
  message: BusMessage;
  bytes: number;
}

/** One batch handed to the bus: what to put back if it fails with a retryable error. */
interface Batch {
  /** The records, or copies of them when the bus takes values (`Bus.takesValues`). */
  messages: BusMessage[];
  /** Counted bytes of each record. */
  sizes: number[];
  bytes: number;
  /** The buffer the copies' values live in, when copied. */
  copy: Buffer | undefined;
}

/**
 * The hand-off between the request path and the bus (DESIGN §4 rule 1). `offer` is O(1) and never
 * waits: the record goes into a queue bounded in bytes, or is dropped and counted. A background
 * flusher publishes batches, one at a time; a publish that outlives its timeout no longer holds up
 * the flusher, but its records stay in flight (and their bytes inside the bound) until the bus
 * answers, so a record is never both dropped and delivered. A batch that fails retryably goes back to
 * the front of the queue (`retryBackoffMs`). Every record is accounted for, once:
 * `captured = sent + dropped + buffered`, where `buffered` includes what is in flight.
 */
export class Tee {
  private readonly opts: Omit<Required<TeeOptions>, 'registry'> & Pick<TeeOptions, 'registry'>;
  /** Records waiting as objects: always older than those in `held`. */
  private readonly queue: Entry[] = [];
  private head = 0;
  /** Records waiting as bytes, after those in `queue` (see `TeeOptions.heldSlabBytes`). */
  private readonly held: HeldRecords;
  private queuedBytes = 0;
  private inFlight = 0;
  private inFlightBytes = 0;
  private captured = 0;
  private sent = 0;
  private readonly droppedBy: Record<TeeDropReason, number> = { buffer_full: 0, publish_failed: 0, shutdown: 0 };
  private sampledOut = 0;
  private publishTimeouts = 0;
  private retried = 0;
  /** Current wait after a retryable failure (0: none failed since the last success). */
  private backoffMs = 0;
  /** `performance.now()` before which the background flusher does not publish (retry backoff). */
  private retryAt = 0;
  /** Reused buffers of `maxBatchBytes` for the copies of batches in flight (`Bus.takesValues`). */
  private readonly spareCopies: Buffer[] = [];
  /** `performance.now()` of the last publish started (the flusher's linger counts from it). */
  private lastPublishAt = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  /** A hand-off is scheduled (`handOffMs`). */
  private handOffPending = false;
  private readonly handOff = (): void => {
    this.handOffPending = false;
    if (!this.closed && !this.overloaded()) this.kick();
  };
  private flushing: Promise<void> | undefined;
  private closed = false;
  private eluMark: EventLoopUtilization | undefined;
  /** Smoothed event-loop utilisation seen by the flusher's ticks. */
  private loopBusy = 0;
  private readonly mCaptured: Counter | undefined;
  private readonly mSent: Counter | undefined;
  private readonly mDropped: Counter<'reason'> | undefined;
  private readonly mSampled: Counter | undefined;
  private readonly mTimeouts: Counter | undefined;
  private readonly mRetried: Counter | undefined;
  private gauges: GaugeReader[] = [];
  private readonly encodeOptions: EncodeCaptureOptions;
  /** The bus's record buffers (values allocated there are given back when a record is dropped). */
  private readonly records: RecordBuffers | undefined;

  constructor(
    private readonly bus: Bus,
    options: TeeOptions = {},
  ) {
    this.opts = { ...defaults, ...options };
    const records = bus.recordBuffers;
    this.records = records;
    this.encodeOptions = {
      kafkaHeaderBlock: this.opts.kafkaHeaderBlock,
      allocate: records !== undefined ? (bytes) => records.allocate(bytes) : undefined,
    };
    for (const k of [
      'maxBufferBytes',
      'flushIntervalMs',
      'maxBatchMessages',
      'maxBatchBytes',
      'maxInFlightBatches',
      'publishTimeoutMs',
      'retryBackoffMs',
      'maxRetryBackoffMs',
    ] as const) {
      const v = this.opts[k];
      if (!(Number.isFinite(v) && v > 0)) throw new RangeError(`TeeOptions.${k} must be a positive number, got ${v}`);
    }
    for (const k of ['lingerMs', 'lingerMaxBytes'] as const) {
      const v = this.opts[k];
      if (!(Number.isFinite(v) && v >= 0)) throw new RangeError(`TeeOptions.${k} must be a number ≥ 0, got ${v}`);
    }
    if (!(this.opts.handOffMs >= 0)) {
      throw new RangeError(`TeeOptions.handOffMs must be ≥ 0 (Infinity: off), got ${this.opts.handOffMs}`);
    }
    const u = this.opts.maxLoopUtilization;
    if (!(u > 0 && u <= 1)) throw new RangeError(`TeeOptions.maxLoopUtilization must be in (0, 1], got ${u}`);
    // Every slab the byte bound can fill is kept once allocated (slabs are shared memory, which is freed only
    // by a major collection): the backlog's memory stays inside the bound, outage after outage.
    this.held = new HeldRecords({
      slabBytes: this.opts.heldSlabBytes,
      spareSlabs: Math.ceil(this.opts.maxBufferBytes / this.opts.heldSlabBytes) + 1,
    });
    const registry = this.opts.registry;
    if (registry !== undefined) {
      // Get-or-create: several tees on one registry (two sidecars, a role restarted in-process) add
      // to the same counters, and the gauges report their sum.
      this.mCaptured = counterOn(registry, {
        name: 'modelwatch_tee_captured_total',
        help: 'Inference calls captured by the tee.',
      });
      this.mSent = counterOn(registry, {
        name: 'modelwatch_tee_sent_total',
        help: 'Captured records acknowledged by the bus.',
      });
      this.mDropped = counterOn<'reason'>(registry, {
        name: 'modelwatch_tee_dropped_total',
        help: 'Captured records dropped, by reason (buffer_full, publish_failed, shutdown).',
        labelNames: ['reason'],
      });
      for (const r of TeeDropReasons) this.mDropped.labels(r).inc(0);
      this.mSampled = counterOn(registry, {
        name: 'modelwatch_tee_sampled_out_total',
        help: 'Inference calls not captured because of sampling (not drops).',
      });
      this.mTimeouts = counterOn(registry, {
        name: 'modelwatch_tee_publish_timeouts_total',
        help: 'Publishes that outlived the publish timeout; their records stay in flight until the bus answers.',
      });
      this.mRetried = counterOn(registry, {
        name: 'modelwatch_tee_retried_records_total',
        help: 'Captured records put back at the front of the queue after a retryable publish failure (each time).',
      });
      this.gauges = [
        summedGaugeOn(
          registry,
          { name: 'modelwatch_tee_buffered_records', help: 'Captured records waiting for or in flight to the bus.' },
          () => this.queued() + this.inFlight,
        ),
        summedGaugeOn(
          registry,
          {
            name: 'modelwatch_tee_buffered_bytes',
            help: 'Encoded bytes of captured records waiting for or in flight to the bus.',
          },
          () => this.queuedBytes + this.inFlightBytes,
        ),
        summedGaugeOn(
          registry,
          {
            name: 'modelwatch_tee_inflight_records',
            help: 'Captured records handed to the bus whose publish has not settled (included in buffered).',
          },
          () => this.inFlight,
        ),
      ];
    }
  }

  /** Starts the background flusher. */
  start(): void {
    if (this.timer || this.closed) return;
    this.eluMark = performance.eventLoopUtilization();
    this.timer = setInterval(() => this.tick(), this.opts.flushIntervalMs);
    this.timer.unref();
  }

  /**
   * A buffer of `bytes` bytes for a record's value that the caller lays out itself and passes to
   * {@link Tee.offer} as `{ value }`: from the bus's record buffers when it has them (no `ArrayBuffer`
   * of its own), else a new one. One that is not offered must be given back ({@link Tee.releaseRecord}).
   */
  allocateRecord(bytes: number): Buffer {
    return this.records !== undefined ? this.records.allocate(bytes) : Buffer.allocUnsafe(bytes);
  }

  /** The bus's record buffers the tee allocates values from, when it has them (for tests and diagnostics). */
  get recordBuffers(): RecordBuffers | undefined {
    return this.records;
  }

  private readonly allocate = (bytes: number): Buffer => this.allocateRecord(bytes);

  /** Gives back a buffer from {@link Tee.allocateRecord} that will not be offered. */
  releaseRecord(value: Buffer): void {
    this.records?.release(value);
  }

  /** Counts an inference call that sampling left out. */
  noteSampledOut(): void {
    this.sampledOut++;
    this.mSampled?.inc();
  }

  /**
   * Hands a captured call to the tee: encodes it and queues it, or drops it (`buffer_full`, or
   * `shutdown` after {@link close}). Never blocks, never throws. Returns whether it was queued.
   * `bodies`, when given, are the request and response bodies as the chunks they arrived in (they
   * replace `call.request.body` and `call.response.body`): each byte is copied once, into the record.
   */
  offer(call: CapturedCall, bodies?: CaptureBodyParts): boolean {
    this.captured++;
    this.mCaptured?.inc();
    if (this.closed) {
      if (bodies !== undefined && 'value' in bodies) this.releaseRecord(bodies.value);
      this.drop('shutdown', 1);
      return false;
    }
    let entry: Entry;
    try {
      // The encoder counts the record's size (as `messageBytes` does) while building it: the entry it
      // returns is queued as is.
      entry = encodeCaptureSized(call, bodies, this.encodeOptions);
    } catch (err) {
      this.opts.logger.warn('tee could not encode a capture', { error: errorMessage(err) });
      if (bodies !== undefined && 'value' in bodies) this.releaseRecord(bodies.value);
      this.drop('publish_failed', 1);
      return false;
    }
    const bytes = entry.bytes;
    if (this.queuedBytes + this.inFlightBytes + bytes > this.opts.maxBufferBytes) {
      this.releaseRecord(entry.message.value);
      this.drop('buffer_full', 1);
      return false;
    }
    if (this.held.count > 0 || this.queued() >= this.opts.maxBatchMessages) {
      // The bus is behind by a whole batch of records: this one may wait long, so it waits as bytes (off
      // the heap), and so do the later ones until the backlog is drained (order is kept).
      this.held.push(entry.message, bytes);
      this.releaseRecord(entry.message.value);
    } else this.queue.push(entry);
    this.queuedBytes += bytes;
    if (this.queued() >= this.opts.maxBatchMessages && !this.overloaded()) this.kick();
    else if (
      !this.handOffPending &&
      this.opts.handOffMs !== Number.POSITIVE_INFINITY &&
      this.queuedBytes >= this.opts.lingerMaxBytes &&
      this.timer !== undefined
    ) {
      this.handOffPending = true;
      if (this.opts.handOffMs === 0) setImmediate(this.handOff);
      else setTimeout(this.handOff, this.opts.handOffMs).unref();
    }
    return true;
  }

  /** Exact accounting snapshot. */
  stats(): TeeStats {
    const d = this.droppedBy;
    return {
      captured: this.captured,
      sent: this.sent,
      dropped: d.buffer_full + d.publish_failed + d.shutdown,
      droppedBy: { ...d },
      buffered: this.queued() + this.inFlight,
      heldOffHeap: this.held.count,
      bufferedBytes: this.queuedBytes + this.inFlightBytes,
      inFlight: this.inFlight,
      publishTimeouts: this.publishTimeouts,
      retried: this.retried,
      sampledOut: this.sampledOut,
    };
  }

  /** Publishes everything buffered now (one batch at a time); resolves when the queue is empty or a publish failed. */
  async flush(): Promise<void> {
    return this.flushWith(false);
  }

  private async flushWith(background: boolean): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.queued() === 0) return;
    this.flushing = this.drain(background);
    try {
      await this.flushing;
    } finally {
      this.flushing = undefined;
    }
  }

  /**
   * Stops the flusher, publishes what is buffered until `deadlineMs` passes, then drops the rest as
   * `shutdown`. Later offers are dropped as `shutdown`. Publishes still in flight are counted when
   * the bus answers them (closing the bus makes it answer).
   */
  async close(deadlineMs: number): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const until = Date.now() + deadlineMs;
    let t: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      t = setTimeout(resolve, deadlineMs);
      t.unref();
    });
    const all = (async () => {
      while (Date.now() < until && this.queued() > 0) {
        const before = this.sent + this.droppedBy.publish_failed;
        const retriedBefore = this.retried;
        await this.flush();
        if (this.sent + this.droppedBy.publish_failed !== before) continue;
        // No progress: stop, unless the bus failed in a way worth trying again before the deadline.
        if (this.retried === retriedBefore) break;
        const wait = Math.min(this.backoffMs, until - Date.now());
        if (wait > 0) await new Promise<void>((resolve) => setTimeout(resolve, wait).unref());
      }
    })();
    await Promise.race([all, deadline]);
    clearTimeout(t);
    this.closed = true;
    const left = this.queued();
    if (left > 0) this.drop('shutdown', left);
    for (let i = this.head; i < this.queue.length; i++) this.releaseRecord((this.queue[i] as Entry).message.value);
    this.queue.length = 0;
    this.head = 0;
    this.held.clear();
    this.queuedBytes = 0;
    this.spareCopies.length = 0;
    this.releaseGaugesWhenSettled();
  }

  private releaseGaugesWhenSettled(): void {
    if (!this.closed || this.inFlight > 0) return;
    for (const g of this.gauges) g.release();
    this.gauges = [];
  }

  /** Records waiting (not in flight): as objects, then as bytes. */
  private queued(): number {
    return this.queue.length - this.head + this.held.count;
  }

  /** Whether the queue holds at least one whole batch (by count or by bytes). */
  private fullBatchQueued(): boolean {
    return this.queued() >= this.opts.maxBatchMessages || this.queuedBytes >= this.opts.maxBatchBytes;
  }

  private overloaded(): boolean {
    return this.loopBusy > this.opts.maxLoopUtilization;
  }

  private tick(): void {
    if (this.opts.maxLoopUtilization < 1 && this.eluMark !== undefined) {
      const now = performance.eventLoopUtilization();
      const u = performance.eventLoopUtilization(now, this.eluMark).utilization;
      this.eluMark = now;
      this.loopBusy = 0.7 * this.loopBusy + 0.3 * u;
      if (this.overloaded()) return;
    }
    this.kick();
  }

  private kick(): void {
    // Waiting out a retry backoff: the next tick after it publishes.
    if (this.flushing || this.queued() === 0 || performance.now() < this.retryAt) return;
    // flushWith() never rejects: drain() catches every publish failure and counts it.
    void this.flushWith(true);
  }

  private drop(reason: TeeDropReason, n: number): void {
    this.droppedBy[reason] += n;
    this.mDropped?.labels(reason).inc(n);
  }

  private takeBatch(): { messages: BusMessage[]; sizes: number[]; bytes: number } {
    const messages: BusMessage[] = [];
    const sizes: number[] = [];
    let bytes = 0;
    while (this.head < this.queue.length && messages.length < this.opts.maxBatchMessages) {
      const e = this.queue[this.head] as Entry;
      if (messages.length > 0 && bytes + e.bytes > this.opts.maxBatchBytes) break;
      messages.push(e.message);
      sizes.push(e.bytes);
      bytes += e.bytes;
      this.head++;
    }
    // Compact the array now and then so the consumed prefix does not grow without bound.
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    // Then the records held as bytes (all newer), rebuilt into values of their own as the batch is taken.
    const held = this.held;
    while (this.head === this.queue.length && held.count > 0 && messages.length < this.opts.maxBatchMessages) {
      const b = held.peekCounted();
      if (messages.length > 0 && bytes + b > this.opts.maxBatchBytes) break;
      messages.push(held.shift(this.allocate));
      sizes.push(b);
      bytes += b;
    }
    return { messages, sizes, bytes };
  }

  /**
   * Accounts one batch exactly once, when its publish settles (however late): sent; back at the front of
   * the queue after a retryable failure (still buffered, its bytes still inside the bound); or dropped.
   * Returns whether it was put back.
   */
  private settle(batch: Batch, ok: boolean, error: unknown): boolean {
    const records = batch.messages.length;
    this.inFlight -= records;
    this.inFlightBytes -= batch.bytes;
    let requeued = false;
    if (ok) {
      this.sent += records;
      this.mSent?.inc(records);
      this.backoffMs = 0;
      this.retryAt = 0;
      this.recycleCopy(batch.copy);
    } else if (isModelwatchError(error) && error.retryable && !this.closed) {
      this.copyShared(batch.messages);
      this.requeue(batch);
      requeued = true;
      // One wait per round of failures: batches that were in flight together fail together.
      const now = performance.now();
      if (now >= this.retryAt) {
        this.backoffMs =
          this.backoffMs === 0 ? this.opts.retryBackoffMs : Math.min(this.backoffMs * 2, this.opts.maxRetryBackoffMs);
        this.retryAt = now + this.backoffMs;
      }
      this.opts.logger.warn('tee publish failed; records go back to the front of the queue', {
        records,
        retryInMs: this.backoffMs,
        error: errorMessage(error),
      });
    } else {
      this.opts.logger.warn('tee publish failed; dropping batch', { records, error: errorMessage(error) });
      // After close, what comes back is not sent again: it is counted as the rest of the queue was.
      this.drop(isModelwatchError(error) && error.retryable ? 'shutdown' : 'publish_failed', records);
      this.recycleCopy(batch.copy);
    }
    this.releaseGaugesWhenSettled();
    return requeued;
  }

  /** Puts a failed batch back at the front of the queue, in order, ahead of every record waiting. */
  private requeue(batch: Batch): void {
    const n = batch.messages.length;
    const entries: Entry[] = new Array<Entry>(n);
    for (let i = 0; i < n; i++) {
      entries[i] = { message: batch.messages[i] as BusMessage, bytes: batch.sizes[i] as number };
    }
    // Records waiting as objects are older than those held as bytes: the front of `queue` is the front.
    if (this.head >= n) {
      this.head -= n;
      for (let i = 0; i < n; i++) this.queue[this.head + i] = entries[i] as Entry;
    } else this.queue.splice(this.head, 0, ...entries);
    this.queuedBytes += batch.bytes;
    this.retried += n;
    this.mRetried?.inc(n);
  }

  /**
   * Copies of a batch's records whose values live in one buffer of their own, for a bus that takes the
   * values it publishes (`Bus.takesValues`): what goes back to the queue if the publish fails with a
   * retryable error. The buffer is reused once the publish succeeds.
   */
  private copyBatch(messages: BusMessage[]): { messages: BusMessage[]; copy: Buffer } {
    let total = 0;
    for (const m of messages) if (!inSharedMemory(m.value)) total += m.value.length;
    const copy =
      total <= this.opts.maxBatchBytes
        ? (this.spareCopies.pop() ?? Buffer.allocUnsafeSlow(this.opts.maxBatchBytes))
        : Buffer.allocUnsafeSlow(total);
    const copies: BusMessage[] = new Array<BusMessage>(messages.length);
    let at = 0;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i] as BusMessage;
      // A value in shared memory (a record ring slot) is read in place by the publisher and stays intact
      // until it says its producer is done (after its answer): copied only if the publish fails (`settle`).
      if (inSharedMemory(m.value)) {
        copies[i] = m;
        continue;
      }
      const n = m.value.copy(copy, at);
      const value = copy.subarray(at, at + n);
      at += n;
      copies[i] =
        m.kafkaHeaders !== undefined
          ? new HeaderBlockMessage(m.key, value, m.kafkaHeaders)
          : { key: m.key, value, headers: m.headers };
    }
    return { messages: copies, copy };
  }

  /**
   * Replaces each value of `messages` that lies in shared memory (a ring slot the publisher read in place)
   * by a copy of its own. Called when the publish's failure settles, while the slots still hold the
   * records: the bus gives them back on a later message from the worker (its `released`) or, when the
   * worker died, just before it rejects, and nothing writes a slot before the tee allocates it again.
   */
  private copyShared(messages: BusMessage[]): void {
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i] as BusMessage;
      if (!inSharedMemory(m.value)) continue;
      // Not into a ring slot: when the worker died, the bus gave this batch's slots back just before it
      // rejected, and a slot taken now could be one still holding a later record of the batch.
      const value = Buffer.allocUnsafe(m.value.length);
      m.value.copy(value);
      messages[i] =
        m.kafkaHeaders !== undefined
          ? new HeaderBlockMessage(m.key, value, m.kafkaHeaders)
          : { key: m.key, value, headers: m.headers };
    }
  }

  /** A batch's copy buffer is no longer needed: kept for the next batch, or freed now. */
  private recycleCopy(copy: Buffer | undefined): void {
    if (copy === undefined) return;
    if (
      !this.closed &&
      copy.length === this.opts.maxBatchBytes &&
      this.spareCopies.length < this.opts.maxInFlightBatches
    ) {
      this.spareCopies.push(copy);
    } else releaseArrayBuffers([copy.buffer as ArrayBuffer]);
  }

  /**
   * Publishes batches while records wait, with up to `maxInFlightBatches` publishes unsettled at once;
   * returns once the queue is empty and every publish it started settled or outlived its timeout. After
   * a failure or a timeout it publishes nothing more this round (the rest waits for the next one).
   */
  private async drain(background: boolean): Promise<void> {
    const held = new Set<Promise<Outcome>>();
    let stop = false;
    const waitOne = async (): Promise<void> => {
      const { p, outcome } = await Promise.race([...held].map((h) => h.then((o) => ({ p: h, outcome: o }))));
      held.delete(p);
      if (outcome.kind === 'timeout') {
        // The bus may still deliver this batch: it stays in flight (bytes held inside the bound) and
        // is counted when the bus answers. The flusher stops waiting so a later batch can go out.
        this.publishTimeouts++;
        this.mTimeouts?.inc();
        this.opts.logger.warn('tee publish outlived its timeout; records stay in flight until the bus answers', {
          records: outcome.records,
          timeoutMs: this.opts.publishTimeoutMs,
        });
        stop = true;
      } else if (outcome.kind === 'failed') stop = true;
    };
    for (;;) {
      // The background flusher yields to request work between batches when the loop is saturated, and
      // lingers (`lingerMs`): a partial batch under `lingerMaxBytes` waits that long after the last publish.
      const publish =
        !stop &&
        this.queued() > 0 &&
        held.size < this.opts.maxInFlightBatches &&
        !(background && this.overloaded()) &&
        !(background && performance.now() < this.retryAt) &&
        (!background ||
          this.opts.lingerMs === 0 ||
          this.fullBatchQueued() ||
          this.queuedBytes >= this.opts.lingerMaxBytes ||
          performance.now() - this.lastPublishAt >= this.opts.lingerMs);
      if (publish) held.add(this.publishBatch());
      else if (held.size === 0) return;
      // Records offered while publishes are unsettled go out as soon as one settles.
      else await waitOne();
    }
  }

  /** Hands one batch to the bus; the outcome is its settlement, or `timeout` after `publishTimeoutMs`. */
  private publishBatch(): Promise<Outcome> {
    this.lastPublishAt = performance.now();
    const { messages, sizes, bytes } = this.takeBatch();
    this.queuedBytes -= bytes;
    this.inFlight += messages.length;
    this.inFlightBytes += bytes;
    // Taken before the bus takes the values: what goes back to the queue if the publish fails retryably.
    const kept = this.bus.takesValues === true ? this.copyBatch(messages) : { messages, copy: undefined };
    const batch: Batch = { messages: kept.messages, sizes, bytes, copy: kept.copy };
    let publish: Promise<void>;
    try {
      publish = this.bus.publish(messages);
    } catch (err) {
      publish = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const records = messages.length;
    const settled = publish.then(
      (): Outcome => {
        this.settle(batch, true, undefined);
        return { kind: 'sent', records };
      },
      (err: unknown): Outcome => {
        this.settle(batch, false, err);
        return { kind: 'failed', records };
      },
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<Outcome>((resolve) => {
      timer = setTimeout(() => resolve({ kind: 'timeout', records }), this.opts.publishTimeoutMs);
      timer.unref();
    });
    return Promise.race([settled, timeout]).finally(() => clearTimeout(timer));
  }
}

/** How the flusher's wait for one publish ended. */
interface Outcome {
  kind: 'sent' | 'failed' | 'timeout';
  records: number;
}

/** Whether `value` lies in a `SharedArrayBuffer` (a record ring slot), which a publisher reads in place. */
function inSharedMemory(value: Buffer): boolean {
  return value.buffer instanceof SharedArrayBuffer;
}
