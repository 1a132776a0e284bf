// Before kafkajs: puts the native CRC32C in place of kafkajs's JavaScript one (see kafka-crc32c.ts).
import { kafkaCrc32cStatus } from './kafka-crc32c.js';
// Then (also before kafkajs): Produce requests written in one buffer (see kafka-produce-encoder.ts).
import { HEADER_BLOCK, kafkaProduceEncoderStatus } from './kafka-produce-encoder.js';
// And (before kafkajs's partitioner): murmur2 in 32-bit arithmetic (see kafka-murmur2.ts).
import './kafka-murmur2.js';
import {
  Kafka,
  Partitioners,
  logLevel as KafkaLogLevel,
  type Consumer,
  type EachBatchPayload,
  type IHeaders,
  type KafkaConfig,
  type LogEntry,
  type Producer,
  type SASLOptions,
} from 'kafkajs';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { silentLogger } from '../common/logger.js';
import type { Bus, BusConsumer, BusMessage, ConsumeOptions, ConsumedMessage } from './types.js';

/** Options of {@link KafkaBus}; the first group mirrors the `kafka.*` config section. */
export interface KafkaBusOptions {
  /** Bootstrap servers, `host:port` each (at least one). */
  brokers: string[];
  /** Default topic. @default 'modelwatch.inference' */
  topic?: string;
  /** @default 'modelwatch' */
  clientId?: string;
  /** Consumer group of {@link KafkaBus.consume} when the call names none. @default 'modelwatch-ingest' */
  groupId?: string;
  /** Idempotent producer (needs a broker with a controller; the librdkafka mock has none). @default false */
  idempotent?: boolean;
  /** TLS to the brokers with the system CAs. @default false */
  ssl?: boolean;
  /** SASL credentials; never logged. @default undefined */
  sasl?: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string } | undefined;
  /** Deadline of one `publish` including producer retries; beyond it `publish` rejects. @default 30000 */
  publishTimeoutMs?: number;
  /**
   * Bound on the value bytes of publishes the producer is still working on, including those whose
   * `publish` already rejected at its deadline: the producer keeps retrying them (and holds their
   * records) after that. A `publish` that would pass the bound rejects at once (`bus_unavailable`,
   * retryable) without reaching the producer, so while the brokers are down the producer holds at
   * most this many bytes of records, whatever the caller keeps offering. @default 16777216 (16 MiB)
   */
  maxPendingBytes?: number;
  /** Per-request timeout to a broker. @default 10000 */
  requestTimeoutMs?: number;
  /** TCP connect timeout. @default 3000 */
  connectionTimeoutMs?: number;
  /** Consumer session timeout (group membership without heartbeats). @default 30000 */
  sessionTimeoutMs?: number;
  /** Consumer heartbeat interval. @default 3000 */
  heartbeatIntervalMs?: number;
  /** Longest a fetch waits for data at the broker (bounds batching latency). @default 1000 */
  fetchMaxWaitMs?: number;
  logger?: Logger;
}

const defaults = {
  brokers: [],
  topic: 'modelwatch.inference',
  clientId: 'modelwatch',
  groupId: 'modelwatch-ingest',
  idempotent: false,
  ssl: false,
  publishTimeoutMs: 30_000,
  maxPendingBytes: 16 * 1024 * 1024,
  requestTimeoutMs: 10_000,
  connectionTimeoutMs: 3_000,
  sessionTimeoutMs: 30_000,
  heartbeatIntervalMs: 3_000,
  fetchMaxWaitMs: 1_000,
  logger: silentLogger,
} satisfies Required<Omit<KafkaBusOptions, 'sasl'>>;

type ResolvedOptions = Required<Omit<KafkaBusOptions, 'sasl'>> & Pick<KafkaBusOptions, 'sasl'>;

/** Routes kafkajs's own log lines into our {@link Logger} (kafkajs errors become warnings: it retries them). */
function kafkaLogCreator(logger: Logger): NonNullable<KafkaConfig['logCreator']> {
  return () =>
    ({ namespace, level, log }: LogEntry) => {
      const { message, timestamp: _ts, ...extra } = log;
      const fields: Record<string, unknown> = { component: 'kafkajs', namespace, ...extra };
      // kafkajs logs SASL settings on some connection errors; keep secrets out (DESIGN §4 rule 8).
      delete fields.sasl;
      delete fields.password;
      if (level <= KafkaLogLevel.WARN) logger.warn(message, fields);
      else if (level === KafkaLogLevel.INFO) logger.debug(message, fields);
      else logger.debug(message, fields);
    };
}

/** A Kafka consumer whose group offsets move only when {@link ManualCommitConsumer.commit} is called. */
export interface ManualCommitConsumer extends BusConsumer {
  /**
   * Commits, per partition of the consumer's topic, `offset` = the next record a restarted consumer of
   * the group reads. Only partitions assigned to this member at its last group join are committed (after
   * a rebalance another member owns the rest); resolves with what was committed. Rejects when the commit
   * failed; commits nothing once the consumer is stopping.
   */
  commit(offsets: { partition: number; offset: string }[]): Promise<{ partition: number; offset: string }[]>;
  /**
   * Stops fetching and waits for the batch in flight, but stays in the group so that
   * {@link ManualCommitConsumer.commit} still works; `stop()` then leaves. Idempotent.
   */
  drain(): Promise<void>;
}

function headerText(v: IHeaders[string]): string | undefined {
  if (v === undefined) return undefined;
  const one = Array.isArray(v) ? v[v.length - 1] : v;
  if (one === undefined) return undefined;
  return typeof one === 'string' ? one : one.toString('utf8');
}

function toHeaders(h: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  for (const [k, v] of Object.entries(h)) {
    const s = headerText(v);
    if (s !== undefined) out[k] = s;
  }
  return out;
}

/** kafkajs errors that mean the broker could not be reached or did not answer in time: worth trying again. */
const TRANSIENT_KAFKAJS_ERRORS: ReadonlySet<string> = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSTopicMetadataNotLoaded',
  'KafkaJSLockTimeout',
  'KafkaJSTimeout',
]);

/**
 * Whether a producer error from kafkajs is worth publishing the same records again for, by its class and
 * protocol error type, never its message. kafkajs wraps the error that ended its own retries: an
 * exhausted retrier (`KafkaJSNumberOfRetriesExceeded`) or a refusal (`KafkaJSNonRetriableError`) carries
 * the original as `cause`, which decides. A broker's answer (`KafkaJSProtocolError`) is retriable as
 * kafkajs's table says (`LEADER_NOT_AVAILABLE`, `REQUEST_TIMED_OUT`, `NOT_ENOUGH_REPLICAS`: yes;
 * `MESSAGE_TOO_LARGE`, `INVALID_TOPIC_EXCEPTION`, `TOPIC_AUTHORIZATION_FAILED`: no); losing the broker
 * (connection, request timeout, no broker or metadata) is. Anything else (a bug, a bad record kafkajs
 * refuses before sending) is not, so one poison record cannot hold a queue back forever.
 */
export function kafkaErrorRetryable(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 8 && e instanceof Error; depth++) {
    const name = e.name;
    const retriable = (e as { retriable?: unknown }).retriable;
    if (name === 'KafkaJSProtocolError' || typeof (e as { type?: unknown }).type === 'string') {
      return retriable === true;
    }
    if (TRANSIENT_KAFKAJS_ERRORS.has(name)) return true;
    const cause = (e as { cause?: unknown }).cause;
    if (cause instanceof Error && cause !== e) {
      e = cause;
      continue;
    }
    // Retries ran out on an error kafkajs itself considered transient.
    if (name === 'KafkaJSNumberOfRetriesExceeded') return true;
    if (name === 'KafkaJSError') return retriable === true;
    return false;
  }
  return false;
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(new ModelwatchError(ErrorCodes.busUnavailable, `${what} timed out after ${ms} ms`, { retryable: true })),
      ms,
    );
    timer.unref();
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/**
 * {@link Bus} on Apache Kafka through kafkajs. `publish` resolves after every in-sync replica acked
 * (`acks: -1`); a consumer commits a batch's offsets only after its handler resolved (DESIGN §4 rule 6).
 */
export class KafkaBus implements Bus {
  readonly kind = 'kafka' as const;
  readonly topic: string;
  private readonly opts: ResolvedOptions;
  private readonly kafka: Kafka;
  private producer: Producer | undefined;
  private producerReady: Promise<Producer> | undefined;
  private readonly consumers = new Set<Consumer>();
  private closed = false;
  /** Value bytes of sends the producer has not finished (see {@link KafkaBusOptions.maxPendingBytes}). */
  private pendingBytes = 0;
  /** Whether the Produce encoder is installed, so messages may carry their headers as a block. */
  private readonly blocksEncoded = kafkaProduceEncoderStatus().installed;

  constructor(options: KafkaBusOptions) {
    this.opts = { ...defaults, ...options };
    const o = this.opts;
    if (o.brokers.length === 0) throw new RangeError('KafkaBus needs at least one broker');
    for (const [k, v] of Object.entries({
      publishTimeoutMs: o.publishTimeoutMs,
      maxPendingBytes: o.maxPendingBytes,
      requestTimeoutMs: o.requestTimeoutMs,
      connectionTimeoutMs: o.connectionTimeoutMs,
      sessionTimeoutMs: o.sessionTimeoutMs,
      heartbeatIntervalMs: o.heartbeatIntervalMs,
      fetchMaxWaitMs: o.fetchMaxWaitMs,
    })) {
      if (!(Number.isFinite(v) && v > 0)) throw new RangeError(`${k} must be > 0`);
    }
    if (o.heartbeatIntervalMs >= o.sessionTimeoutMs)
      throw new RangeError('heartbeatIntervalMs must be < sessionTimeoutMs');
    this.topic = o.topic;
    const sasl: SASLOptions | undefined = o.sasl
      ? { mechanism: o.sasl.mechanism, username: o.sasl.username, password: o.sasl.password }
      : undefined;
    this.kafka = new Kafka({
      clientId: o.clientId,
      brokers: o.brokers,
      ssl: o.ssl,
      ...(sasl ? { sasl } : {}),
      connectionTimeout: o.connectionTimeoutMs,
      requestTimeout: o.requestTimeoutMs,
      retry: { initialRetryTime: 300, maxRetryTime: 5_000, retries: 8 },
      logLevel: KafkaLogLevel.INFO,
      logCreator: kafkaLogCreator(o.logger),
    });
  }

  /**
   * The options this bus was built with, logger excepted (plain data): lets a publisher elsewhere (the
   * sidecar's worker-thread publisher) reach the same cluster the same way.
   */
  settings(): Omit<KafkaBusOptions, 'logger'> {
    const { logger: _logger, ...rest } = this.opts;
    return { ...rest, brokers: [...rest.brokers], ...(rest.sasl ? { sasl: { ...rest.sasl } } : {}) };
  }

  private getProducer(): Promise<Producer> {
    if (!this.producerReady) {
      const crc = kafkaCrc32cStatus();
      if (crc.implementation !== 'native') {
        this.opts.logger.warn('kafka producer checksums record batches in JavaScript (slower)', {
          reason: crc.reason,
        });
      }
      const enc = kafkaProduceEncoderStatus();
      if (!enc.installed) {
        this.opts.logger.warn('kafka producer encodes Produce requests with kafkajs (more copies)', {
          reason: enc.reason,
        });
      }
      const producer = this.kafka.producer({
        idempotent: this.opts.idempotent,
        allowAutoTopicCreation: false,
        // Java-client-compatible murmur2: the same key lands on the same partition as other producers'.
        createPartitioner: Partitioners.DefaultPartitioner,
        retry: { initialRetryTime: 300, maxRetryTime: 5_000, retries: 5 },
        ...(this.opts.idempotent ? { maxInFlightRequests: 1 } : {}),
      });
      this.producer = producer;
      this.producerReady = producer.connect().then(
        () => producer,
        (err: unknown) => {
          this.producerReady = undefined;
          throw new ModelwatchError(ErrorCodes.busUnavailable, `kafka producer connect: ${errorMessage(err)}`, {
            retryable: true,
            cause: err,
          });
        },
      );
    }
    return this.producerReady;
  }

  async publish(messages: BusMessage[], topic: string = this.topic): Promise<void> {
    await this.publishTracked(messages, topic).result;
  }

  /**
   * {@link KafkaBus.publish}, also saying when the producer is done with the messages' values: `result`
   * is what `publish` returns; `done` settles (never rejects) once the producer no longer reads them,
   * which after a rejection at the deadline can be much later (it keeps retrying). For a caller that
   * reuses the values' memory (the publisher worker's shared slots).
   */
  publishTracked(messages: BusMessage[], topic: string = this.topic): { result: Promise<void>; done: Promise<void> } {
    if (this.closed) {
      return {
        result: Promise.reject(new ModelwatchError(ErrorCodes.busUnavailable, 'bus is closed')),
        done: Promise.resolve(),
      };
    }
    if (messages.length === 0) return { result: Promise.resolve(), done: Promise.resolve() };
    let bytes = 0;
    for (const m of messages) bytes += m.value.length;
    // An empty bus takes any one batch, however large; after that the bound holds.
    if (this.pendingBytes > 0 && this.pendingBytes + bytes > this.opts.maxPendingBytes) {
      const err = new ModelwatchError(
        ErrorCodes.busUnavailable,
        `kafka publish to ${topic}: ${this.pendingBytes} bytes of earlier publishes are still being retried (maxPendingBytes ${this.opts.maxPendingBytes})`,
        { retryable: true },
      );
      return { result: Promise.reject(err), done: Promise.resolve() };
    }
    this.pendingBytes += bytes;
    const send = async (): Promise<void> => {
      const producer = await this.getProducer();
      try {
        await producer.send({
          topic,
          acks: -1,
          timeout: this.opts.requestTimeoutMs,
          messages: messages.map((m) =>
            // A header block goes to the Produce encoder as is; kafkajs's own encoding needs the object.
            m.kafkaHeaders !== undefined && this.blocksEncoded
              ? { key: m.key, value: m.value, [HEADER_BLOCK]: m.kafkaHeaders }
              : { key: m.key, value: m.value, headers: m.headers },
          ),
        });
      } catch (err) {
        const retryable = kafkaErrorRetryable(err);
        throw new ModelwatchError(
          retryable ? ErrorCodes.busUnavailable : ErrorCodes.busRejected,
          `kafka publish to ${topic}: ${errorMessage(err)}`,
          { retryable, cause: err },
        );
      }
    };
    // The bytes stay counted until the producer itself is done with them, not just until the deadline.
    const sending = send().finally(() => {
      this.pendingBytes -= bytes;
    });
    return {
      result: withDeadline(sending, this.opts.publishTimeoutMs, `kafka publish to ${topic}`),
      done: sending.then(
        () => undefined,
        () => undefined,
      ),
    };
  }

  /** Value bytes of publishes the producer is still working on (bounded by `maxPendingBytes`). */
  get pendingPublishBytes(): number {
    return this.pendingBytes;
  }

  async consume(options: ConsumeOptions): Promise<BusConsumer> {
    const c = await this.startConsumer(options, true);
    return { stop: () => c.stop() };
  }

  /**
   * Like {@link KafkaBus.consume}, but a resolved handler only moves the consumer's fetch position on:
   * the group's committed offsets move only through {@link ManualCommitConsumer.commit}. For a consumer
   * that keeps records in memory past their batch (the Seldon bridge's unpaired halves) and must not
   * commit past them. A throwing handler gets its batch again, as with `consume`.
   */
  consumeWithManualCommit(options: ConsumeOptions): Promise<ManualCommitConsumer> {
    return this.startConsumer(options, false);
  }

  private async startConsumer(options: ConsumeOptions, autoCommit: boolean): Promise<ManualCommitConsumer> {
    if (this.closed) throw new ModelwatchError(ErrorCodes.busUnavailable, 'bus is closed');
    const topic = options.topic ?? this.topic;
    const groupId = options.groupId ?? this.opts.groupId;
    const log = this.opts.logger;
    const consumer = this.kafka.consumer({
      groupId,
      sessionTimeout: this.opts.sessionTimeoutMs,
      heartbeatInterval: this.opts.heartbeatIntervalMs,
      maxWaitTimeInMs: this.opts.fetchMaxWaitMs,
      allowAutoTopicCreation: false,
    });
    this.consumers.add(consumer);
    let ready = false;
    let assigned = new Set<number>();
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      assigned = new Set(e.payload.memberAssignment[topic] ?? []);
      log.info('kafka consumer joined group', { groupId, memberId: e.payload.memberId, topic });
      if (!ready) {
        ready = true;
        options.onReady?.();
      }
    });
    consumer.on(consumer.events.CRASH, (e) => {
      log.warn('kafka consumer crashed', { groupId, error: errorMessage(e.payload.error), restart: e.payload.restart });
    });
    const handle = async (payload: EachBatchPayload): Promise<void> => {
      const { batch } = payload;
      const messages: ConsumedMessage[] = batch.messages.map((m) => ({
        key: m.key === null ? null : m.key.toString('utf8'),
        value: m.value ?? Buffer.alloc(0),
        headers: toHeaders(m.headers),
        offset: m.offset,
        timestamp: Number(m.timestamp),
      }));
      const last = batch.lastOffset();
      await options.handler({
        topic: batch.topic,
        partition: batch.partition,
        messages,
        backlog: Math.max(0, Number(BigInt(batch.highWatermark) - BigInt(last) - 1n)),
        heartbeat: () => payload.heartbeat(),
        isRunning: () => payload.isRunning() && !payload.isStale(),
      });
      // Only now are the batch's effects durable: mark and commit (kafkajs commits resolved offsets + 1).
      // Without autoCommit the mark only moves the next fetch on; the owner commits.
      payload.resolveOffset(last);
      if (autoCommit) await payload.commitOffsetsIfNecessary();
      await payload.heartbeat();
    };
    let inBatch: Promise<void> = Promise.resolve();
    let draining: Promise<void> | undefined;
    try {
      await withDeadline(consumer.connect(), this.opts.publishTimeoutMs, 'kafka consumer connect');
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        autoCommit,
        eachBatchAutoResolve: false,
        eachBatch: async (payload) => {
          const { batch } = payload;
          if (batch.messages.length === 0 || draining !== undefined) return;
          let done!: () => void;
          inBatch = new Promise<void>((resolve) => (done = resolve));
          try {
            await handle(payload);
          } finally {
            done();
          }
        },
      });
    } catch (err) {
      this.consumers.delete(consumer);
      await consumer.disconnect().catch(() => undefined);
      throw new ModelwatchError(ErrorCodes.busUnavailable, `kafka consume ${topic}: ${errorMessage(err)}`, {
        retryable: true,
        cause: err,
      });
    }
    return {
      stop: async () => {
        // disconnect() stops fetching and waits for the in-flight batch (and its commit) to finish.
        await consumer.disconnect();
        this.consumers.delete(consumer);
      },
      commit: async (offsets) => {
        const mine = offsets.filter((o) => assigned.has(o.partition));
        if (mine.length === 0) return [];
        await consumer.commitOffsets(mine.map((o) => ({ topic, partition: o.partition, offset: o.offset })));
        return mine;
      },
      drain: () => {
        draining ??= (async () => {
          consumer.pause([{ topic }]);
          await inBatch;
        })();
        return draining;
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.consumers].map((c) => c.disconnect()));
    this.consumers.clear();
    if (this.producerReady) {
      await this.producerReady.then((p) => p.disconnect()).catch(() => undefined);
    }
    this.producer = undefined;
    this.producerReady = undefined;
  }
}
