import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { silentLogger } from '../common/logger.js';
import { sleep } from '../common/time.js';
import {
  messageBytes,
  type Bus,
  type BusConsumer,
  type BusMessage,
  type ConsumeOptions,
  type ConsumedMessage,
} from './types.js';

/** Options of {@link InProcessBus}. */
export interface InProcessBusOptions {
  /** Default topic. @default 'modelwatch.inference' */
  topic?: string;
  /** Bound of unconsumed bytes across all topics; `publish` rejects with `bus_full` beyond it. @default 67108864 */
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
  logger?: Logger;
}

const defaults = {
  topic: 'modelwatch.inference',
  maxBufferedBytes: 64 * 1024 * 1024,
  maxBatchMessages: 1000,
  retryDelayMs: 200,
  lingerMessages: 0,
  lingerMs: 1000,
  logger: silentLogger,
} satisfies Required<InProcessBusOptions>;

interface TopicQueue {
  messages: ConsumedMessage[];
  nextOffset: number;
  bytes: number;
  wake: (() => void) | undefined;
  consumer: boolean;
}

/**
 * The embedded bus: one partition per topic, queue semantics (one consumer per topic), bounded in
 * bytes. Offsets behave like Kafka's: a batch leaves the queue only after its handler resolved.
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
    this.topic = this.opts.topic;
  }

  /** Unconsumed bytes across topics. */
  get bufferedBytes(): number {
    return this.bytes;
  }

  private queue(topic: string): TopicQueue {
    let q = this.topics.get(topic);
    if (!q) {
      q = { messages: [], nextOffset: 0, bytes: 0, wake: undefined, consumer: false };
      this.topics.set(topic, q);
    }
    return q;
  }

  publish(messages: BusMessage[], topic: string = this.topic): Promise<void> {
    if (this.closed) return Promise.reject(new ModelwatchError(ErrorCodes.busUnavailable, 'bus is closed'));
    const size = messages.reduce((n, m) => n + messageBytes(m), 0);
    if (this.bytes + size > this.opts.maxBufferedBytes) {
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
    for (const m of messages) {
      q.messages.push({ ...m, offset: String(q.nextOffset++), timestamp: now });
    }
    q.bytes += size;
    this.bytes += size;
    q.wake?.();
    return Promise.resolve();
  }

  consume(options: ConsumeOptions): Promise<BusConsumer> {
    const topic = options.topic ?? this.topic;
    const q = this.queue(topic);
    if (q.consumer) {
      return Promise.reject(new ModelwatchError(ErrorCodes.internal, `topic ${topic} already has a consumer`));
    }
    q.consumer = true;
    let running = true;
    const { lingerMessages, lingerMs } = this.opts;
    /** When the oldest waiting message was first seen by a lingering consumer. */
    let lingerSince: number | undefined;
    const loop = async (): Promise<void> => {
      options.onReady?.();
      while (running) {
        if (q.messages.length === 0) {
          await new Promise<void>((resolve) => {
            q.wake = resolve;
          });
          q.wake = undefined;
          continue;
        }
        if (q.messages.length < lingerMessages) {
          lingerSince ??= Date.now();
          const left = lingerSince + lingerMs - Date.now();
          if (left > 0) {
            // Woken by the next publish (count again) or when the linger time is up.
            await new Promise<void>((resolve) => {
              const t = setTimeout(resolve, left);
              q.wake = () => {
                clearTimeout(t);
                resolve();
              };
            });
            q.wake = undefined;
            continue;
          }
        }
        lingerSince = undefined;
        const batch = q.messages.slice(0, this.opts.maxBatchMessages);
        try {
          await options.handler({
            topic,
            partition: 0,
            messages: batch,
            backlog: q.messages.length - batch.length,
            heartbeat: () => Promise.resolve(),
            isRunning: () => running,
          });
        } catch (err) {
          // Not committed: the same batch is delivered again, like Kafka after a failed eachBatch.
          this.opts.logger.warn('in-process consumer handler failed; redelivering', { topic, error: String(err) });
          if (running) await sleep(this.opts.retryDelayMs);
          continue;
        }
        q.messages.splice(0, batch.length);
        const freed = batch.reduce((n, m) => n + messageBytes(m), 0);
        q.bytes -= freed;
        this.bytes -= freed;
      }
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
