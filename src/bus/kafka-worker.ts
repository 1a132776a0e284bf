import { MessageChannel, type Worker } from 'node:worker_threads';
import { startWorker } from '../common/worker.js';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import { silentLogger, type Logger } from '../common/logger.js';
import type { KafkaBusOptions } from './kafka.js';
import { headerBlockOf } from './kafka-header-block.js';
import { RecordRing } from './record-ring.js';
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
   * Slots of the record ring shared with the worker ({@link RecordRing}): values allocated from
   * {@link KafkaWorkerBus.recordBuffers} are written there and read by the worker in place, with no
   * `ArrayBuffer` of their own on the producing thread. A slot is freed once the worker's producer is
   * done with its value. 0: no ring (`recordBuffers` allocates). @default 64
   */
  recordRingSlots?: number;
  /** Bytes of each record ring slot: larger values are allocated as before. @default 131072 */
  recordRingSlotBytes?: number;
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
      /**
       * Three numbers per message: index into `buffers` (-1: the record ring, {@link KafkaWorkerData.ring}),
       * byte offset, byte length of its value.
       */
      spans: number[];
    }
  | { type: 'close' };

/** Messages from the worker to the main thread. */
export type FromWorker =
  | { type: 'ack'; id: number }
  /** The producer is done with the ring values of publish `id` (sent after its ack or nack). */
  | { type: 'released'; id: number }
  /** The publish failed: `code` and `retryable` of the producer's `ModelwatchError`. */
  | { type: 'nack'; id: number; message: string; code: string; retryable: boolean }
  | { type: 'log'; level: 'warn' | 'error'; message: string; fields: Record<string, unknown> }
  | { type: 'closed' };

/** What the worker entry receives as `workerData`. */
export interface KafkaWorkerData {
  options: Omit<KafkaBusOptions, 'logger'>;
  /** Niceness the worker adds to its own thread's (0: unchanged). */
  nice: number;
  /** The record ring's memory, when there is one: spans with buffer index -1 point into it. */
  ring?: SharedArrayBuffer | undefined;
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
  recordRingSlots: 64,
  recordRingSlotBytes: 128 * 1024,
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
  /** Values are transferred to the worker or read in place from ring slots: gone once published. */
  readonly takesValues = true;
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
  /** Ring slots of each publish the worker's producer may still read (until its `released`). */
  private readonly leases = new Map<number, number[]>();
  private readonly ring: RecordRing | undefined;
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
      recordRingSlots,
      recordRingSlotBytes,
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
    const slots = recordRingSlots ?? defaults.recordRingSlots;
    if (!(Number.isInteger(slots) && slots >= 0)) {
      throw new RangeError(`KafkaWorkerBusOptions.recordRingSlots must be an integer ≥ 0, got ${slots}`);
    }
    this.ring =
      slots > 0 && this.transferValues
        ? new RecordRing({ slots, slotBytes: recordRingSlotBytes ?? defaults.recordRingSlotBytes })
        : undefined;
  }

  /**
   * The record ring's allocator (see {@link KafkaWorkerBusOptions.recordRingSlots}), or undefined
   * without a ring. A value from it belongs to this bus once passed to `publish`.
   */
  get recordBuffers(): RecordRing | undefined {
    return this.ring;
  }

  /** Ring slots leased now: allocated and not yet given back or released by the worker (for tests). */
  get ringSlotsLeased(): number {
    return this.ring?.leased ?? 0;
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
    const w = spawnWorker(
      this.entry.url,
      { options: this.producerOptions, nice: this.nice, ring: this.ring?.buffer },
      this.youngGenerationMb,
    );
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

  /** The worker is gone: fail what it held and free its ring slots; the next publish starts a new one. */
  private lost(w: Worker, why: string): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    for (const id of [...this.leases.keys()]) this.releaseLease(id);
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
    if (m.type === 'released') {
      this.releaseLease(m.id);
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    if (this.pending.size === 0) this.worker?.unref();
    if (m.type === 'ack') p.resolve();
    else {
      // The classification crosses the thread boundary as data: a refusal stays a refusal.
      const code = m.code === ErrorCodes.busRejected ? ErrorCodes.busRejected : ErrorCodes.busUnavailable;
      p.reject(new ModelwatchError(code, m.message, { retryable: m.retryable && code !== ErrorCodes.busRejected }));
    }
  }

  private releaseLease(id: number): void {
    const slots = this.leases.get(id);
    if (slots === undefined) return;
    this.leases.delete(id);
    for (const slot of slots) this.ring?.releaseSlot(slot);
  }

  /**
   * Publishes through the worker; resolves on the broker's ack. Values in ring slots are read by the
   * worker in place; their slots are freed when the worker says its producer is done with them (which,
   * after a timeout or a failure, can be later than the answer), or when the worker is gone. With
   * `transferValues`, each other value that owns its whole `ArrayBuffer` is moved to the worker and is
   * empty afterwards.
   */
  publish(messages: BusMessage[], topic: string = this.topic): Promise<void> {
    if (this.closed) {
      this.releaseValues(messages);
      return Promise.reject(new ModelwatchError(ErrorCodes.busUnavailable, 'bus is closed'));
    }
    if (messages.length === 0) return Promise.resolve();
    const n = messages.length;
    const ring = this.ring;
    let slots: number[] | undefined;
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
      const slot = ring !== undefined ? ring.slotOf(v) : -1;
      if (slot >= 0) {
        (slots ??= []).push(slot);
        spans[3 * i] = -1;
        spans[3 * i + 1] = v.byteOffset;
        spans[3 * i + 2] = v.byteLength;
      } else if (
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
      this.releaseSlotsLater(slots);
      return Promise.reject(
        new ModelwatchError(ErrorCodes.busUnavailable, `kafka publisher worker: ${errorMessage(err)}`, {
          retryable: true,
          cause: err,
        }),
      );
    }
    const id = this.nextId++;
    if (slots !== undefined) this.leases.set(id, slots);
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
        this.releaseSlotsLater(this.leases.get(id));
        this.leases.delete(id);
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

  /**
   * Ends the running worker as if it had died (its publishes in flight fail, its ring slots are freed);
   * the next publish starts a new one. For tests and for a supervisor that finds the worker stuck.
   */
  async terminateWorker(): Promise<void> {
    const w = this.worker;
    if (w === undefined) return;
    await w.terminate();
    this.lost(w, 'kafka publisher worker terminated');
  }

  /**
   * Frees, on a later task, ring slots of a publish that failed before the worker received it. Not at
   * once: a caller that publishes the same records again after a retryable failure copies their values
   * out of the slots when the rejection settles, and a caller publishing several batches in one go
   * (the tee) would otherwise take the freed slots for its next batch before then.
   */
  private releaseSlotsLater(slots: number[] | undefined): void {
    if (slots !== undefined) setImmediate(() => this.releaseSlots(slots));
  }

  /** Frees ring slots of values the worker never received. */
  private releaseSlots(slots: number[] | undefined): void {
    if (slots !== undefined) for (const slot of slots) this.ring?.releaseSlot(slot);
  }

  /** Gives back the ring slots of messages that will not be published. */
  private releaseValues(messages: BusMessage[]): void {
    if (this.ring === undefined) return;
    for (const m of messages) this.ring.release(m.value);
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
