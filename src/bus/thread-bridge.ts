import type { MessagePort } from 'node:worker_threads';
import { ErrorCodes, ModelwatchError, errorMessage, type ErrorCode } from '../common/errors.js';
import type { Bus, BusConsumer, BusMessage } from './types.js';

/**
 * One batch handed across a thread boundary: every value packed into one `ArrayBuffer` (transferred, not
 * copied), `ends[i]` the end offset of message `i`'s value in it.
 */
export interface BridgePublish {
  type: 'bus-publish';
  id: number;
  topic: string;
  keys: (string | null)[];
  headers: Record<string, string>[];
  buffer: ArrayBuffer;
  ends: number[];
}

/** The answer to a {@link BridgePublish}: accepted by the bus on the other side, or refused (with its error code). */
export type BridgeAnswer =
  | { type: 'bus-ack'; id: number }
  | { type: 'bus-nack'; id: number; code: ErrorCode; message: string; retryable: boolean };

/** Whether a posted message is a {@link BridgePublish}. */
export function isBridgePublish(m: unknown): m is BridgePublish {
  return typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'bus-publish';
}

/** Whether a posted message is a {@link BridgeAnswer}. */
export function isBridgeAnswer(m: unknown): m is BridgeAnswer {
  const t = typeof m === 'object' && m !== null ? (m as { type?: unknown }).type : undefined;
  return t === 'bus-ack' || t === 'bus-nack';
}

/** The port side a {@link BridgeBus} posts on (a worker's `parentPort`, or a `MessagePort`). */
export type BridgePort = Pick<MessagePort, 'postMessage'>;

interface Pending {
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * The publishing half of a bus that lives on another thread: `publish` packs the batch into one
 * transferred `ArrayBuffer` and resolves when the other thread's bus accepted it ({@link serveBridgePublish}),
 * rejecting with that bus's error (`bus_full`, …) otherwise. It never waits on the other thread's event loop
 * beyond the returned promise, so a busy receiver delays acknowledgements, never the caller. Publish-only:
 * `consume` rejects.
 */
export class BridgeBus implements Bus {
  /** The bus on the other side is the process's in-process bus. */
  readonly kind = 'inprocess' as const;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closed = false;

  constructor(
    private readonly port: BridgePort,
    readonly topic: string,
  ) {}

  /** Batches sent whose answer has not come back. */
  get inFlight(): number {
    return this.pending.size;
  }

  publish(messages: BusMessage[], topic: string = this.topic): Promise<void> {
    if (this.closed) return Promise.reject(new ModelwatchError(ErrorCodes.busUnavailable, 'bus bridge is closed'));
    if (messages.length === 0) return Promise.resolve();
    let total = 0;
    for (const m of messages) total += m.value.length;
    const packed = Buffer.allocUnsafeSlow(total);
    const keys: (string | null)[] = new Array<string | null>(messages.length);
    const headers: Record<string, string>[] = new Array<Record<string, string>>(messages.length);
    const ends: number[] = new Array<number>(messages.length);
    let at = 0;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i] as BusMessage;
      at += m.value.copy(packed, at);
      ends[i] = at;
      keys[i] = m.key;
      headers[i] = m.headers;
    }
    const id = this.nextId++;
    const buffer = packed.buffer;
    const msg: BridgePublish = { type: 'bus-publish', id, topic, keys, headers, buffer, ends };
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        this.port.postMessage(msg, [buffer]);
      } catch (err) {
        this.pending.delete(id);
        reject(new ModelwatchError(ErrorCodes.busUnavailable, `bus bridge post failed: ${errorMessage(err)}`));
      }
    });
  }

  /** Settles the publish an answer refers to (answers of unknown ids are ignored). */
  answer(a: BridgeAnswer): void {
    const p = this.pending.get(a.id);
    if (p === undefined) return;
    this.pending.delete(a.id);
    if (a.type === 'bus-ack') p.resolve();
    else p.reject(new ModelwatchError(a.code, a.message, { retryable: a.retryable }));
  }

  consume(): Promise<BusConsumer> {
    return Promise.reject(new ModelwatchError(ErrorCodes.internal, 'a bus bridge only publishes'));
  }

  /** Rejects every unanswered publish and refuses new ones. */
  close(): Promise<void> {
    this.closed = true;
    const err = new ModelwatchError(ErrorCodes.busUnavailable, 'bus bridge is closed');
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    return Promise.resolve();
  }
}

/**
 * The receiving half: publishes one {@link BridgePublish} on `bus` (the values become views of the
 * transferred buffer, no copy) and posts the answer back on `port`.
 */
export function serveBridgePublish(bus: Bus, port: BridgePort, m: BridgePublish): void {
  const messages: BusMessage[] = new Array<BusMessage>(m.keys.length);
  let start = 0;
  for (let i = 0; i < m.keys.length; i++) {
    const end = m.ends[i] as number;
    messages[i] = {
      key: m.keys[i] ?? null,
      value: Buffer.from(m.buffer, start, end - start),
      headers: m.headers[i] as Record<string, string>,
    };
    start = end;
  }
  bus.publish(messages, m.topic).then(
    () => port.postMessage({ type: 'bus-ack', id: m.id } satisfies BridgeAnswer),
    (err: unknown) => {
      const code: ErrorCode = err instanceof ModelwatchError ? err.code : ErrorCodes.busUnavailable;
      const retryable = err instanceof ModelwatchError ? err.retryable : false;
      port.postMessage({
        type: 'bus-nack',
        id: m.id,
        code,
        message: errorMessage(err),
        retryable,
      } satisfies BridgeAnswer);
    },
  );
}
