import type { RecordBuffers } from './record-ring.js';

/** A message as it travels on the bus (Kafka record shape). */
export interface BusMessage {
  /** Partitioning key: the request id, so a producer retry lands on the same partition. */
  key: string | null;
  value: Buffer;
  /** String headers (CloudEvents binary mode uses `ce_*`). */
  headers: Record<string, string>;
  /**
   * The same headers as the bytes of a Kafka record's header section, one character per byte, when the
   * producer built them so (src/bus/kafka-header-block.ts): the Kafka publisher worker sends this instead
   * of `headers`. Never set on consumed messages.
   */
  kafkaHeaders?: string;
}

/** A message handed to a consumer, with its position. */
export interface ConsumedMessage extends BusMessage {
  /** Offset within its partition, as a decimal string (Kafka offsets exceed 2^53 in theory). */
  offset: string;
  /** Broker or enqueue timestamp, epoch ms. */
  timestamp: number;
}

/** A batch from one partition. Offsets are committed only after the handler resolves. */
export interface ConsumedBatch {
  topic: string;
  partition: number;
  messages: ConsumedMessage[];
  /**
   * Messages in the partition after this batch that are not yet delivered (Kafka: high watermark −
   * last offset − 1; in-process: queue length), when the bus knows. Feeds the ingest lag metric.
   */
  backlog?: number;
  /** Keeps group membership alive during long work (retries through a store outage). */
  heartbeat(): Promise<void>;
  /** False once the consumer is stopping or lost the partition: stop retrying and throw. */
  isRunning(): boolean;
}

/**
 * Processes one batch. Resolving commits every offset in the batch; throwing commits nothing and the
 * batch is delivered again. Never resolve before the batch's effects are durable.
 */
export type BatchHandler = (batch: ConsumedBatch) => Promise<void>;

/**
 * Takes one batch without waiting for its effects to be durable: resolves once the handler is done with the
 * batch's messages (decoded, its writes queued), with `stored`, which resolves once every effect is durable
 * and rejects if they will not be (the batch is then delivered again). Writes of successive batches must be
 * ordered by the handler: a batch's writes start only after the previous batch's `stored` resolved.
 */
export type BatchTaker = (batch: ConsumedBatch) => Promise<{ stored: Promise<void> }>;

/** Options of {@link Bus.consume}. */
export interface ConsumeOptions {
  /** @default the bus's default topic */
  topic?: string;
  /** @default the configured group id */
  groupId?: string;
  handler: BatchHandler;
  /**
   * Lets a bus that can overlap batches (in-process) hand over the next batch while the previous one is
   * being stored: the bus calls it instead of `handler`, commits each batch only behind its `stored`, in
   * order, and never has more than one batch being stored. A bus that cannot (Kafka) calls `handler`.
   */
  take?: BatchTaker;
  /** Called once the consumer is assigned partitions (tests wait on it, never on a sleep). */
  onReady?: () => void;
}

/** A running consumer. */
export interface BusConsumer {
  /** Stops fetching, waits for the in-flight batch to finish, leaves the group. */
  stop(): Promise<void>;
}

/** Publisher/consumer port with an in-process and a Kafka adapter. */
export interface Bus {
  readonly kind: 'inprocess' | 'kafka';
  /** The topic used when none is given. */
  readonly topic: string;
  /**
   * Resolves once the bus has accepted every message (Kafka ack / enqueued); rejects otherwise, with a
   * `ModelwatchError` whose `retryable` says whether publishing the same messages again may succeed
   * (broker down, timeout, bus full) or not (`bus_rejected`: too large, invalid topic, not authorized).
   */
  publish(messages: BusMessage[], topic?: string): Promise<void>;
  consume(options: ConsumeOptions): Promise<BusConsumer>;
  close(): Promise<void>;
  /**
   * Where a producer may allocate record values so that publishing them costs no copy and no
   * `ArrayBuffer` of their own (the Kafka publisher worker's shared slots). A value from here is the
   * bus's again once handed to `publish` (whatever the outcome); one that is not published must be
   * given back with `release`. Absent: allocate values as usual.
   */
  readonly recordBuffers?: RecordBuffers | undefined;
  /**
   * Whether `publish` takes the messages' values (moves or reuses their memory, as the Kafka publisher
   * worker does): a caller that may publish the same messages again after a failure must keep its own
   * copy. Absent or false: after `publish` settles, the messages are as they were handed over.
   */
  readonly takesValues?: boolean;
}

/** Byte size of a message as counted by byte-bounded buffers. */
export function messageBytes(m: BusMessage): number {
  let n = m.value.length + (m.key?.length ?? 0);
  // for…in, not Object.entries: no [key, value] array per header (~23 per capture) on every publish.
  const h = m.headers;
  for (const k in h) n += k.length + (h[k] as string).length;
  return n;
}
