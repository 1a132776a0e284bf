import { MessageChannel, type Worker } from 'node:worker_threads';
import { startWorker } from '../common/worker.js';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import { silentLogger, type Logger } from '../common/logger.js';
import type { KafkaBusOptions } from './kafka.js';
import { headerBlockOf } from './kafka-header-block.js';
import type { Bus, BusConsumer, BusMessage } from './types.js';

/** Options of {@link KafkaWorkerBus}: those of the Kafka producer, plus the worker's own. */
export interface KafkaWorkerBusOptions extends KafkaBusOptions {
  /**
   * Hand each message's value to the worker by transferring its `ArrayBuffer` (no copy) when the value
   * owns its whole buffer; such a value is detached (empty) once `publish` returns. Values that share
   * a buffer (pooled or sliced Buffers) are copied, all of a batch into one buffer (one transfer).
   * `false` copies every value. @default true
   */
  transferValues?: boolean;
  /**
   * How long `publish` waits for the worker's answer beyond the producer's own `publishTimeoutMs`
   * before it rejects (a stuck or dead worker). @default 2000
   */
  workerGraceMs?: number;
  /** How long `close()` lets the producer disconnect before the worker is terminated. @default 5000 */
  closeTimeoutMs?: number;
  /**
   * Largest young generation of the worker's V8 heap, in MB (`resourceLimits.maxYoungGenerationSizeMb`).
   * Without a bound the worker's young generation grows like the main thread's (up to ~48 MB on 64-bit)
   * while kafkajs encodes large records, and stays resident; a small one costs more, shorter
   * scavenges on the worker's own thread. 0 leaves V8's default. @default 8
   */
  workerYoungGenerationMb?: number;
  /**
   * How much nicer the worker thread is than the thread that started it (Linux: niceness is per
   * thread; raising it needs no privilege). The request thread then wins a contended core and the
   * worker takes what is left; records it cannot publish in time wait in the tee's bounded buffer
   * (overflow is counted). The sum is capped at 19, the lowest priority. At 10 the scheduler still gave
   * the worker about a tenth of a core it shared with a saturated request thread (CFS weights 1:10);
   * at 19 about 1:270. 0 leaves it equal. @default 19
   */
  workerNice?: number;
  /**
   * URL of the worker entry module. @default the `kafka-worker-entry` module next to this one (`.ts`
   * under tsx, registered in the worker; `.js` when built)
   */
  workerUrl?: URL | undefined;
}

/** Messages from the main thread to the worker. */
export type ToWorker =
  | {
      type: 'publish';
      id: number;
      topic: string;
      keys: (string | null)[];
      /** Each message's headers as a Kafka header block (src/bus/kafka-header-block.ts). */
      blocks: string[];
      /** The transferred buffers holding the values: values moved whole, then one of copied values. */
      buffers: ArrayBuffer[];
      /** Three numbers per message: index into `buffers`, byte offset, byte length of its value. */
      spans: number[];
    }
  | { type: 'close' };

/** Messages from the worker to the main thread. */
export type FromWorker =
  | { type: 'ack'; id: number }
  | { type: 'nack'; id: number; message: string; code: string }
  | { type: 'log'; level: 'warn' | 'error'; message: string; fields: Record<string, unknown> }
  | { type: 'closed' };

/** What the worker entry receives as `workerData`. */
export interface KafkaWorkerData {
  options: Omit<KafkaBusOptions, 'logger'>;
  /** Niceness the worker adds to its own thread's (0: unchanged). */
  nice: number;
}

interface Pending {
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Frees the memory of `buffers` now rather than at the owning isolate's next major collection; each is
 * detached (empty) afterwards. V8 frees an `ArrayBuffer`'s memory only when it collects the object, and
 * objects that lived a while (a batch's values waiting for the broker's ack) are often promoted by
 * then: at 1,000 captures/s of 64 KiB bodies (~125 MB/s) the publisher worker piled up tens of MB of
 * them between major collections. Transferring them into a message that is never received, on a
 * channel closed at once, frees them (closing a port drops its queue). Buffers that cannot be
 * transferred (already detached) are left to the collector.
 */
export function releaseArrayBuffers(buffers: ArrayBuffer[]): void {
  if (buffers.length === 0) return;
  const { port1, port2 } = new MessageChannel();
  try {
    port1.postMessage(null, buffers);
  } catch {
    // Left to the collector.
  }
  port1.close();
  port2.close();
}

const defaults = {
  transferValues: true,
  workerGraceMs: 2_000,
  closeTimeoutMs: 5_000,
  workerNice: 19,
  workerYoungGenerationMb: 8,
};

/** The worker entry next to this module, and how to start it. */
function defaultEntry(): { url: URL; tsx: boolean } {
  const here = import.meta.url;
  if (here.endsWith('.ts')) return { url: new URL('./kafka-worker-entry.ts', here), tsx: true };
  return { url: new URL('./kafka-worker-entry.js', here), tsx: false };
}

function spawnWorker(url: URL, workerData: KafkaWorkerData, youngGenerationMb: number): Worker {
  return startWorker(
    url,
    workerData,
    [],
    youngGenerationMb > 0 ? { maxYoungGenerationSizeMb: youngGenerationMb } : undefined,
  );
}

/**
 * A publish-only {@link Bus} that runs the kafkajs producer in a `worker_threads` worker, so record
 * encoding and CRC32C checksums cost the worker's event loop, not the one serving requests (the
 * sidecar's tee; DESIGN §4 rule 1). `publish` posts the batch (values transferred, see
 * {@link KafkaWorkerBusOptions.transferValues}) and resolves when the worker reports the broker's ack
 * (`acks: -1`), or rejects on a producer error or after `publishTimeoutMs + workerGraceMs`. A worker
 * that dies is replaced on the next publish. `consume` is not supported: consumers use {@link KafkaBus}.
 */
export class KafkaWorkerBus implements Bus {
  readonly kind = 'kafka' as const;
  readonly topic: string;
  private readonly producerOptions: Omit<KafkaBusOptions, 'logger'>;
  private readonly logger: Logger;
  private readonly transferValues: boolean;
  private readonly answerTimeoutMs: number;
  private readonly closeTimeoutMs: number;
  private readonly nice: number;
  private readonly youngGenerationMb: number;
  private readonly entry: { url: URL; tsx: boolean };
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(options: KafkaWorkerBusOptions) {
    const {
      transferValues,
      workerGraceMs,
      closeTimeoutMs,
      workerNice,
      workerYoungGenerationMb,
      workerUrl,
      logger,
      ...producer
    } = options;
    if (producer.brokers.length === 0) throw new RangeError('KafkaWorkerBus needs at least one broker');
    const grace = workerGraceMs ?? defaults.workerGraceMs;
    const closeMs = closeTimeoutMs ?? defaults.closeTimeoutMs;
    const publishMs = producer.publishTimeoutMs ?? 30_000;
    for (const [k, v] of Object.entries({
      workerGraceMs: grace,
      closeTimeoutMs: closeMs,
      publishTimeoutMs: publishMs,
    })) {
      if (!(Number.isFinite(v) && v > 0)) throw new RangeError(`KafkaWorkerBusOptions.${k} must be > 0, got ${v}`);
    }
    this.producerOptions = { ...producer, brokers: [...producer.brokers] };
    this.topic = producer.topic ?? 'modelwatch.inference';
    this.logger = logger ?? silentLogger;
    this.transferValues = transferValues ?? defaults.transferValues;
    this.answerTimeoutMs = publishMs + grace;
    this.closeTimeoutMs = closeMs;
    this.nice = workerNice ?? defaults.workerNice;
    if (!(Number.isInteger(this.nice) && this.nice >= -20 && this.nice <= 19)) {
      throw new RangeError(`KafkaWorkerBusOptions.workerNice must be an integer in -20..19, got ${this.nice}`);
    }
    this.youngGenerationMb = workerYoungGenerationMb ?? defaults.workerYoungGenerationMb;
    if (!(Number.isFinite(this.youngGenerationMb) && this.youngGenerationMb >= 0)) {
      throw new RangeError(
        `KafkaWorkerBusOptions.workerYoungGenerationMb must be a number ≥ 0, got ${this.youngGenerationMb}`,
      );
    }
    this.entry = workerUrl ? { url: workerUrl, tsx: workerUrl.pathname.endsWith('.ts') } : defaultEntry();
  }

  /** The running worker's thread id, or undefined when none runs (for tests and diagnostics). */
  get workerThreadId(): number | undefined {
    return this.worker?.threadId;
  }

  /** The running worker's V8 heap limits, or undefined when none runs (for tests and diagnostics). */
  get workerResourceLimits(): Worker['resourceLimits'] | undefined {
    return this.worker?.resourceLimits;
  }

  private getWorker(): Worker {
    if (this.worker) return this.worker;
    const w = spawnWorker(this.entry.url, { options: this.producerOptions, nice: this.nice }, this.youngGenerationMb);
    w.unref();
    w.on('message', (m: FromWorker) => this.onMessage(m));
    w.on('error', (err: Error) => {
      this.logger.warn('kafka publisher worker failed', { error: errorMessage(err) });
      this.lost(w, `kafka publisher worker failed: ${errorMessage(err)}`);
    });
    w.on('exit', (code) => this.lost(w, `kafka publisher worker exited (code ${code})`));
    this.worker = w;
    return w;
  }

  /** The worker is gone: fail what it held; the next publish starts a new one. */
  private lost(w: Worker, why: string): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new ModelwatchError(ErrorCodes.busUnavailable, why, { retryable: true }));
    }
  }

  private onMessage(m: FromWorker): void {
    if (m.type === 'log') {
      this.logger[m.level](m.message, m.fields);
      return;
    }
    if (m.type === 'closed') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    if (this.pending.size === 0) this.worker?.unref();
    if (m.type === 'ack') p.resolve();
    else p.reject(new ModelwatchError(ErrorCodes.busUnavailable, m.message, { retryable: true }));
  }

  /**
   * Publishes through the worker; resolves on the broker's ack. With `transferValues`, each value that
   * owns its whole `ArrayBuffer` is moved to the worker and is empty afterwards.
   */
  publish(messages: BusMessage[], topic: string = this.topic): Promise<void> {
    if (this.closed) return Promise.reject(new ModelwatchError(ErrorCodes.busUnavailable, 'bus is closed'));
    if (messages.length === 0) return Promise.resolve();
    const n = messages.length;
    const keys: (string | null)[] = new Array<string | null>(n);
    const blocks: string[] = new Array<string>(n);
    const spans: number[] = new Array<number>(3 * n);
    // Transferred whole: the values that own their ArrayBuffer. The rest are copied into one buffer,
    // placed last; `copied` marks them (their span's buffer index is filled in once it is known).
    const buffers: ArrayBuffer[] = [];
    let copied: boolean[] | undefined;
    let copyBytes = 0;
    for (let i = 0; i < n; i++) {
      const m = messages[i] as BusMessage;
      keys[i] = m.key;
      // One string per record crosses the thread boundary (a header object costs the worker ~20 µs to
      // rebuild); a producer that did not build the block (the tee does) gets it built here.
      blocks[i] = m.kafkaHeaders ?? headerBlockOf(m.headers);
      const v = m.value;
      const ab = v.buffer;
      if (
        this.transferValues &&
        ab instanceof ArrayBuffer &&
        v.byteOffset === 0 &&
        v.byteLength === ab.byteLength &&
        v.byteLength > 0 &&
        !buffers.includes(ab)
      ) {
        spans[3 * i] = buffers.length;
        spans[3 * i + 1] = 0;
        spans[3 * i + 2] = v.byteLength;
        buffers.push(ab);
      } else {
        (copied ??= new Array<boolean>(n).fill(false))[i] = true;
        spans[3 * i + 1] = copyBytes;
        spans[3 * i + 2] = v.byteLength;
        copyBytes += v.byteLength;
      }
    }
    if (copied !== undefined) {
      const packed = Buffer.allocUnsafeSlow(copyBytes);
      const at = buffers.length;
      for (let i = 0; i < n; i++) {
        if (!copied[i]) continue;
        (messages[i] as BusMessage).value.copy(packed, spans[3 * i + 1]);
        spans[3 * i] = at;
      }
      buffers.push(packed.buffer);
    }
    let worker: Worker;
    try {
      worker = this.getWorker();
    } catch (err) {
      return Promise.reject(
        new ModelwatchError(ErrorCodes.busUnavailable, `kafka publisher worker: ${errorMessage(err)}`, {
          retryable: true,
          cause: err,
        }),
      );
    }
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.pending.delete(id)) return;
        if (this.pending.size === 0) this.worker?.unref();
        reject(
          new ModelwatchError(
            ErrorCodes.busUnavailable,
            `kafka publish to ${topic} (worker) timed out after ${this.answerTimeoutMs} ms`,
            {
              retryable: true,
            },
          ),
        );
      }, this.answerTimeoutMs);
      timer.unref();
      this.pending.set(id, { resolve, reject, timer });
      // A publish in flight keeps the process alive, as the producer's sockets would on this thread.
      worker.ref();
      const msg: ToWorker = { type: 'publish', id, topic, keys, blocks, buffers, spans };
      try {
        worker.postMessage(msg, buffers);
      } catch (err) {
        this.pending.delete(id);
        clearTimeout(timer);
        reject(
          new ModelwatchError(ErrorCodes.busUnavailable, `kafka publisher worker: ${errorMessage(err)}`, {
            retryable: true,
            cause: err,
          }),
        );
      }
    });
  }

  /** Not supported: the worker only publishes. Consume with {@link KafkaBus}. */
  consume(): Promise<BusConsumer> {
    return Promise.reject(
      new ModelwatchError(ErrorCodes.internal, 'KafkaWorkerBus only publishes; consume with KafkaBus'),
    );
  }

  /**
   * Lets the worker disconnect its producer (up to `closeTimeoutMs`), then terminates it. Publishes
   * still in flight are rejected. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      const w = this.worker;
      if (!w) return;
      w.ref();
      let t: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => {
          w.on('message', (m: FromWorker) => {
            if (m.type === 'closed') resolve();
          });
          w.once('exit', () => resolve());
          try {
            w.postMessage({ type: 'close' } satisfies ToWorker);
          } catch {
            resolve();
          }
        }),
        new Promise<void>((resolve) => {
          t = setTimeout(resolve, this.closeTimeoutMs);
        }),
      ]);
      clearTimeout(t);
      await w.terminate();
      this.lost(w, 'bus is closed');
    })();
    return this.closing;
  }
}
