import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { silentLogger } from '../common/logger.js';
import { sleep } from '../common/time.js';
import {
  messageBytes,
  type Bus,
  type BusConsumer,
  type BusMessage,
  type BatchHandler,
  type ConsumeOptions,
  type ConsumedMessage,
} from './types.js';

/** Options of {@link InProcessBus}. */
export interface InProcessBusOptions {
  /** Default topic. @default 'modelwatch.inference' */
  topic?: string;
  /** Bound of unconsumed bytes across all topics; `publish` rejects with `bus_full` beyond it. @default 16777216 */
  maxBufferedBytes?: number;
  /** Largest batch handed to a consumer. @default 1000 */
  maxBatchMessages?: number;
  /** Delay before re-delivering a batch whose handler threw. @default 200 */
  retryDelayMs?: number;
  /**
   * A consumer waits for this many messages before taking a batch (0: takes whatever is there), for at
   * most {@link lingerMs} after the first one arrived: a few large inserts cost the store far less than
   * many small ones. @default 0
   */
  lingerMessages?: number;
  /** Longest wait for {@link lingerMessages}. @default 1000 */
  lingerMs?: number;
  /**
   * Longest wait for {@link lingerMessages} while messages keep arriving (a publish less than
   * {@link steadyGapMs} ago), counted like {@link lingerMs} from the first waiting message: under a steady flow
   * the consumer takes fewer, larger batches; once the flow pauses it takes what waits (at {@link lingerMs}
   * at the earliest). At most {@link lingerMs}: no extension. @default 1000
   */
  steadyLingerMs?: number;
  /** Publishes at most this far apart make a steady flow (see {@link steadyLingerMs}). @default 250 */
  steadyGapMs?: number;
  /**
   * A lingering consumer also takes a batch once the waiting messages hold this many bytes
   * ({@link messageBytes}), however few they are: a message count says nothing of the rows a message
   * carries, and a handful of large calls would otherwise wait out {@link lingerMs}. 0: no byte threshold.
   * @default 0
   */
  lingerBytes?: number;
  logger?: Logger;
}

const defaults = {
  topic: 'modelwatch.inference',
  maxBufferedBytes: 16 * 1024 * 1024,
  maxBatchMessages: 1000,
  retryDelayMs: 200,
  lingerMessages: 0,
  lingerMs: 1000,
  steadyLingerMs: 1000,
  steadyGapMs: 250,
  lingerBytes: 0,
  logger: silentLogger,
} satisfies Required<InProcessBusOptions>;

interface TopicQueue {
  messages: ConsumedMessage[];
  /** `messageBytes` of each queued message (computed once, at publish). */
  sizes: number[];
  nextOffset: number;
  bytes: number;
  /** `Date.now()` of the last publish. */
  lastPublishAt: number;
  wake: (() => void) | undefined;
  consumer: boolean;
  /** Secondary subscribers ({@link InProcessBus.tap}): each gets a copy of every message published. */
  taps: Set<Tap>;
}

/** Options of {@link InProcessBus.tap}. */
export interface TapOptions {
  /** @default the bus's default topic */
  topic?: string;
  /** Receives copies of the published messages, at most `maxBatchMessages` at a time. */
  handler: BatchHandler;
  /** Bound of this subscriber's own queue; messages beyond it are dropped (and counted). @default 16777216 */
  maxBufferedBytes?: number;
  /** Called with the number of messages dropped because the queue was full. */
  onDrop?: (messages: number) => void;
  onReady?: () => void;
}

interface Tap {
  messages: ConsumedMessage[];
  bytes: number;
  max: number;
  wake: (() => void) | undefined;
  onDrop: ((n: number) => void) | undefined;
}

/**
 * The embedded bus: one partition per topic, queue semantics (one consumer per topic), bounded in
 * bytes. Offsets behave like Kafka's: a batch leaves the queue only after its handler resolved (with
 * `take`, once its `stored` resolved; the next batch may be handed over meanwhile). Other
 * subscribers (live shadow) read copies through {@link InProcessBus.tap}, which never changes the queue.
 */
export class InProcessBus implements Bus {
  readonly kind = 'inprocess' as const;
  readonly topic: string;
  private readonly opts: Required<InProcessBusOptions>;
  private readonly topics = new Map<string, TopicQueue>();
  private bytes = 0;
  private closed = false;

  constructor(options: InProcessBusOptions = {}) {
    this.opts = { ...defaults, ...options };
    if (!(this.opts.maxBufferedBytes > 0)) throw new RangeError('maxBufferedBytes must be > 0');
    if (!(this.opts.maxBatchMessages > 0)) throw new RangeError('maxBatchMessages must be > 0');
    if (!(this.opts.lingerBytes >= 0)) throw new RangeError('lingerBytes must be >= 0');
    if (!(this.opts.steadyLingerMs >= 0)) throw new RangeError('steadyLingerMs must be >= 0');
    if (!(this.opts.steadyGapMs > 0)) throw new RangeError('steadyGapMs must be > 0');
    this.topic = this.opts.topic;
  }

  /** Unconsumed bytes across topics. */
  get bufferedBytes(): number {
    return this.bytes;
  }

  private queue(topic: string): TopicQueue {
    let q = this.topics.get(topic);
    if (!q) {
      q = {
        messages: [],
        sizes: [],
        nextOffset: 0,
        bytes: 0,
        lastPublishAt: 0,
        wake: undefined,
        consumer: false,
        taps: new Set(),
      };
      this.topics.set(topic, q);
    }
    return q;
  }

  publish(messages: BusMessage[], topic: string = this.topic): Promise<void> {
    if (this.closed) return Promise.reject(new ModelwatchError(ErrorCodes.busUnavailable, 'bus is closed'));
    // Sized one message at a time, stopping at the first that does not fit: a producer retrying against a
    // full bus pays for a few messages per attempt, not for its whole batch.
    const room = this.opts.maxBufferedBytes - this.bytes;
    const sizes: number[] = [];
    let size = 0;
    for (const m of messages) {
      const n = messageBytes(m);
      size += n;
      if (size > room) break;
      sizes.push(n);
    }
    if (size > room) {
      // A batch larger than the whole bus never fits, however long the caller waits: refused outright.
      for (let i = sizes.length + 1; i < messages.length && size <= this.opts.maxBufferedBytes; i++) {
        size += messageBytes(messages[i] as BusMessage);
      }
      if (size > this.opts.maxBufferedBytes) {
        return Promise.reject(
          new ModelwatchError(
            ErrorCodes.busRejected,
            `in-process bus: a batch of ${size}+ bytes exceeds the bus's ${this.opts.maxBufferedBytes} bytes`,
          ),
        );
      }
      return Promise.reject(
        new ModelwatchError(
          ErrorCodes.busFull,
          `in-process bus full (${this.bytes} of ${this.opts.maxBufferedBytes} bytes)`,
          {
            retryable: true,
          },
        ),
      );
    }
    const q = this.queue(topic);
    const now = Date.now();
    const first = q.messages.length;
    for (const m of messages) {
      q.messages.push({
        key: m.key,
        value: m.value,
        headers: m.headers,
        offset: String(q.nextOffset++),
        timestamp: now,
      });
    }
    for (const n of sizes) q.sizes.push(n);
    q.bytes += size;
    this.bytes += size;
    q.lastPublishAt = now;
    q.wake?.();
    for (const tap of q.taps) {
      // Taps are lossy copies outside the bus's byte bound: a full tap drops, it never pushes back on publishers.
      if (tap.bytes + size > tap.max) {
        tap.onDrop?.(messages.length);
        continue;
      }
      for (let i = first; i < q.messages.length; i++) tap.messages.push(q.messages[i] as ConsumedMessage);
      tap.bytes += size;
      tap.wake?.();
    }
    return Promise.resolve();
  }

  /**
   * A second subscriber of a topic (fan-out), next to its one queue consumer: every message published
   * after the call is also handed to `handler`. The tap has its own byte-bounded queue, outside the bus
   * bound: when it is full, new messages are dropped for it (`onDrop`) and publishers and the queue
   * consumer are unaffected. Delivery is at most once: a batch whose handler threw is logged and dropped.
   */
  tap(options: TapOptions): Promise<BusConsumer> {
    const topic = options.topic ?? this.topic;
    const q = this.queue(topic);
    const tap: Tap = {
      messages: [],
      bytes: 0,
      max: options.maxBufferedBytes ?? 16 * 1024 * 1024,
      wake: undefined,
      onDrop: options.onDrop,
    };
    if (!(tap.max > 0)) return Promise.reject(new RangeError('maxBufferedBytes must be > 0'));
    q.taps.add(tap);
    let running = true;
    const loop = async (): Promise<void> => {
      options.onReady?.();
      while (running) {
        if (tap.messages.length === 0) {
          await new Promise<void>((resolve) => {
            tap.wake = resolve;
          });
          tap.wake = undefined;
          continue;
        }
        const batch = tap.messages.splice(0, this.opts.maxBatchMessages);
        tap.bytes -= batch.reduce((n, m) => n + messageBytes(m), 0);
        try {
          await options.handler({
            topic,
            partition: 0,
            messages: batch,
            backlog: tap.messages.length,
            heartbeat: () => Promise.resolve(),
            isRunning: () => running,
          });
        } catch (err) {
          this.opts.logger.warn('in-process tap handler failed; batch dropped', { topic, error: String(err) });
        }
      }
    };
    const done = loop();
    return Promise.resolve({
      stop: async () => {
        running = false;
        q.taps.delete(tap);
        tap.wake?.();
        await done;
      },
    });
  }

  consume(options: ConsumeOptions): Promise<BusConsumer> {
    const topic = options.topic ?? this.topic;
    const q = this.queue(topic);
    if (q.consumer) {
      return Promise.reject(new ModelwatchError(ErrorCodes.internal, `topic ${topic} already has a consumer`));
    }
    q.consumer = true;
    let running = true;
    const { lingerMessages, lingerMs, lingerBytes, steadyLingerMs, steadyGapMs, logger } = this.opts;
    /** When the oldest waiting message was first seen by a lingering consumer. */
    let lingerSince: number | undefined;
    // Messages at the head of the queue handed to `take` and not yet committed (their batch is being
    // stored), and their bytes: the next batch starts after them.
    let delivered = 0;
    let deliveredBytes = 0;
    let storing: { messages: number; bytes: number; stored: Promise<void> } | undefined;
    const commit = (n: number): void => {
      q.messages.splice(0, n);
      let freed = 0;
      for (const b of q.sizes.splice(0, n)) freed += b;
      q.bytes -= freed;
      this.bytes -= freed;
    };
    /** Waits for the batch being stored and commits it; false (nothing committed from it on) if it failed. */
    const settle = async (): Promise<boolean> => {
      const s = storing;
      if (s === undefined) return true;
      storing = undefined;
      try {
        await s.stored;
      } catch (err) {
        // Not committed: it and every batch handed over after it are delivered again, like Kafka after a
        // failed eachBatch.
        logger.warn('in-process consumer: a batch was not stored; redelivering', { topic, error: String(err) });
        delivered = 0;
        deliveredBytes = 0;
        return false;
      }
      commit(s.messages);
      delivered -= s.messages;
      deliveredBytes -= s.bytes;
      return true;
    };
    const take = options.take;
    const loop = async (): Promise<void> => {
      options.onReady?.();
      while (running) {
        const waiting = q.messages.length - delivered;
        if (waiting === 0) {
          // Nothing new: finish storing what was handed over before sleeping.
          if (storing !== undefined) {
            if (!(await settle()) && running) await sleep(this.opts.retryDelayMs);
            continue;
          }
          await new Promise<void>((resolve) => {
            q.wake = resolve;
          });
          q.wake = undefined;
          continue;
        }
        const enough = (): boolean =>
          q.messages.length - delivered >= lingerMessages ||
          (lingerBytes > 0 && q.bytes - deliveredBytes >= lingerBytes);
        if (!enough()) {
          const now = Date.now();
          lingerSince ??= now;
          let left = lingerSince + lingerMs - now;
          if (left <= 0 && steadyLingerMs > lingerMs) {
            // Past lingerMs with a short batch: keep waiting while the flow is steady, each wait until the flow
            // would count as paused (one timer per steadyGapMs at most), up to steadyLingerMs.
            const pausedAt = q.lastPublishAt + steadyGapMs;
            if (pausedAt > now) left = Math.min(pausedAt, lingerSince + steadyLingerMs) - now;
          }
          if (left > 0) {
            // Woken by the publish that reaches the threshold, by stop(), or when the linger time is up: a
            // producer that publishes a few messages at a time (the tee, every event-loop turn) does not
            // cost a timer and a pass of this loop per publish. A batch being stored meanwhile is
            // committed first (then the wait is worked out again).
            if (storing !== undefined) {
              if (!(await settle()) && running) await sleep(this.opts.retryDelayMs);
              continue;
            }
            await new Promise<void>((resolve) => {
              const t = setTimeout(resolve, left);
              q.wake = () => {
                if (running && !enough()) return;
                clearTimeout(t);
                resolve();
              };
            });
            q.wake = undefined;
            continue;
          }
        }
        lingerSince = undefined;
        const batch = q.messages.slice(delivered, delivered + this.opts.maxBatchMessages);
        const consumed = {
          topic,
          partition: 0,
          messages: batch,
          backlog: q.messages.length - delivered - batch.length,
          heartbeat: () => Promise.resolve(),
          isRunning: () => running,
        };
        if (take === undefined) {
          try {
            await options.handler(consumed);
          } catch (err) {
            // Not committed: the same batch is delivered again, like Kafka after a failed eachBatch.
            logger.warn('in-process consumer handler failed; redelivering', { topic, error: String(err) });
            if (running) await sleep(this.opts.retryDelayMs);
            continue;
          }
          commit(batch.length);
          continue;
        }
        let taken: { stored: Promise<void> };
        try {
          taken = await take(consumed);
        } catch (err) {
          // Not taken; whatever was being stored is committed if it was stored, then delivery resumes after it.
          logger.warn('in-process consumer handler failed; redelivering', { topic, error: String(err) });
          await settle();
          delivered = 0;
          deliveredBytes = 0;
          if (running) await sleep(this.opts.retryDelayMs);
          continue;
        }
        taken.stored.catch(() => undefined);
        let bytes = 0;
        for (let i = delivered; i < delivered + batch.length; i++) bytes += q.sizes[i] as number;
        // The handler started this batch's writes only behind the previous batch's: commit that one now.
        if (!(await settle())) {
          await taken.stored.catch(() => undefined);
          if (running) await sleep(this.opts.retryDelayMs);
          continue;
        }
        delivered += batch.length;
        deliveredBytes += bytes;
        storing = { messages: batch.length, bytes, stored: taken.stored };
      }
      await settle();
    };
    const done = loop();
    return Promise.resolve({
      stop: async () => {
        running = false;
        q.wake?.();
        await done;
        q.consumer = false;
      },
    });
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}
