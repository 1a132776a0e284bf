import { v5 as uuidv5 } from 'uuid';
import { KafkaBus, type BusMessage, type ConsumedBatch, type ConsumedMessage } from '../bus/index.js';
import type { ManualCommitConsumer } from '../bus/kafka.js';
import { encodeCapture, PROTOBUF_CONTENT_TYPE, type CapturedBody, type CapturedCall } from '../protocol/capture.js';
import { peekInferRequest } from '../protocol/infer-peek.js';
import { ErrorCodes, ModelwatchError, PairBuffer, errorMessage, type Pair } from '../common/index.js';
import type { RunningRole, RuntimeContext } from '../runtime/context.js';
import { counterOn, summedGaugeOn } from '../common/metrics.js';
import { OffsetLedger, type RecordPosition } from './seldon-offsets.js';

/** Options of {@link startSeldonBridge}. Unset values come from `ctx.config.kafka` and `ctx.config.sidecar`. */
export interface SeldonBridgeOptions {
  /** Model topic prefixes `<prefix>.<namespace>.model.<name>`. @default ctx.config.kafka.seldonTopics */
  topics?: string[];
  /** Seldon's Kafka bootstrap servers. @default ctx.config.kafka.brokers */
  brokers?: string[];
  /** Consumer group base; each topic gets `<groupId>.<topic>`. @default `${ctx.config.kafka.groupId}-seldon` */
  groupId?: string;
  /** How long an input waits for its output (and the other way round), ms. @default 30000 */
  pairTtlMs?: number;
  /** Most unpaired messages held; beyond it the oldest is published unpaired. @default 10000 */
  maxPending?: number;
  /** How often unpaired messages are checked against the TTL, ms. @default 1000 */
  sweepIntervalMs?: number;
  /** Cap of each captured body. @default ctx.config.sidecar.maxCaptureBytes */
  maxCaptureBytes?: number;
  /** How often the consumers' low-water marks are committed, ms. @default 1000 */
  commitIntervalMs?: number;
  /**
   * Consumer session timeout, ms: how long after a crash the group waits before another bridge takes
   * the partitions over. Heartbeats go at a third of it (at most every 3 s). @default 30000
   */
  sessionTimeoutMs?: number;
}

const defaults = {
  pairTtlMs: 30_000,
  maxPending: 10_000,
  sweepIntervalMs: 1_000,
  commitIntervalMs: 1_000,
  sessionTimeoutMs: 30_000,
} satisfies Partial<Required<SeldonBridgeOptions>>;

/** The running Seldon bridge. */
export interface SeldonBridge extends RunningRole {
  /** Resolves once every topic's consumer joined its group. */
  ready: Promise<void>;
  /** Messages waiting for their other half. */
  readonly pending: number;
}

/** Seldon's correlation header (`util.RequestIdHeader`). */
const REQUEST_ID_HEADER = 'x-request-id';
/** Seldon's error text header on pipeline/model errors (`TopicErrorHeader`). */
const ERROR_HEADER = 'seldon-pipeline-errors';

interface Half {
  topicPrefix: string;
  model: string;
  message: ConsumedMessage;
  /** Where the record sits on Seldon's Kafka: the source of the capture's event id and of its commit. */
  pos: RecordPosition;
}

/** Namespace of the name-based (v5) UUIDs that are Seldon captures' event ids. */
const EVENT_ID_NAMESPACE = '6b0b7f0e-3c52-4a8e-9f57-5e1d0c3a9d21';

/**
 * The event id of the capture a half starts (the request's, or the response's when it came alone): a
 * function of the record's topic, partition and offset, so a half read again after a crash yields the
 * same id and ingest's event-id dedupe drops the second copy.
 */
export function seldonEventId(pos: RecordPosition): string {
  return uuidv5(`${pos.topic}/${pos.partition}/${pos.offset}`, EVENT_ID_NAMESPACE);
}

/** The model named by `<prefix>.<namespace>.model.<name>` (validated at start-up). */
function modelOf(prefix: string): string {
  const i = prefix.indexOf('.model.');
  return prefix.slice(i + '.model.'.length);
}

/**
 * Seldon's request id: the `x-request-id` header, else the ModelInferRequest `id`, else the last part
 * of the record key (current Seldon keys are `<partition>.<resourceName>.<requestId>`).
 */
function requestIdOf(m: ConsumedMessage): string {
  const h = m.headers[REQUEST_ID_HEADER];
  if (h !== undefined && h !== '') return h;
  const id = peekInferRequest(m.value).id;
  if (id !== '') return id;
  if (m.key !== null && m.key !== '') return m.key.slice(m.key.lastIndexOf('.') + 1);
  return '';
}

/**
 * Bridges Seldon Core 2 model topics into modelwatch: consumes `<prefix>.inputs` and
 * `<prefix>.outputs` for each configured prefix (values are V2 protobuf `ModelInferRequest` /
 * `ModelInferResponse`), pairs them by the `x-request-id` header (bounded, with a TTL; either side
 * may come first), and publishes one `CapturedCall` (`source: 'seldon'`, bodies = the protobuf
 * bytes) per pair on `ctx.bus`; ingest decodes them with the gRPC codec. A half still waiting when
 * its TTL passes is published alone (an input without output: status 0, error `response missing`).
 *
 * Nothing is lost on a crash: each partition's committed offset stays at its oldest half not yet on
 * the bus (a low-water mark; fetching goes on past it), and a paired input is released only once its
 * output's offset is committed, so a restart reads again every half that was waiting, never an output
 * without its input. Halves read twice become captures with the same event id ({@link seldonEventId}),
 * which ingest stores once. `stop()` commits the low-water marks and leaves waiting halves to the next
 * start instead of publishing them unpaired.
 */
export async function startSeldonBridge(ctx: RuntimeContext, options: SeldonBridgeOptions = {}): Promise<SeldonBridge> {
  const k = ctx.config.kafka;
  const prefixes = (options.topics ?? k.seldonTopics).map((t) => t.replace(/\.(inputs|outputs)$/, ''));
  const brokers = options.brokers ?? k.brokers;
  const groupId = options.groupId ?? `${k.groupId}-seldon`;
  const pairTtlMs = options.pairTtlMs ?? defaults.pairTtlMs;
  const sessionTimeoutMs = options.sessionTimeoutMs ?? defaults.sessionTimeoutMs;
  const maxCaptureBytes = options.maxCaptureBytes ?? ctx.config.sidecar.maxCaptureBytes;
  if (prefixes.length === 0) {
    throw new ModelwatchError(ErrorCodes.configInvalid, 'no Seldon topics configured', { field: 'kafka.seldonTopics' });
  }
  for (const p of prefixes) {
    const i = p.indexOf('.model.');
    if (i <= 0 || p.length <= i + '.model.'.length || !/^[A-Za-z0-9._-]+$/.test(p)) {
      throw new ModelwatchError(
        ErrorCodes.configInvalid,
        `Seldon topic prefix ${p} is not <prefix>.<namespace>.model.<name>`,
        { field: 'kafka.seldonTopics' },
      );
    }
  }
  if (brokers.length === 0) {
    throw new ModelwatchError(ErrorCodes.configInvalid, 'the Seldon bridge needs Kafka brokers', {
      field: 'kafka.brokers',
    });
  }
  if (!(maxCaptureBytes >= 0)) throw new RangeError('maxCaptureBytes must be >= 0');

  const registers = [ctx.metrics];
  const received = counterOn<'side'>(ctx.metrics, {
    name: 'modelwatch_seldon_messages_total',
    help: 'Messages consumed from Seldon model topics, by side (inputs, outputs).',
    labelNames: ['side'],
    registers,
  });
  const published = counterOn<'pairing' | 'result'>(ctx.metrics, {
    name: 'modelwatch_seldon_calls_total',
    help: 'Calls published from Seldon topics, by pairing (paired, or the orphan reason) and result (sent, failed).',
    labelNames: ['pairing', 'result'],
    registers,
  });

  const body = (m: ConsumedMessage | undefined): CapturedBody => {
    const b = m?.value ?? Buffer.alloc(0);
    const truncated = b.length > maxCaptureBytes;
    return {
      body: truncated ? b.subarray(0, maxCaptureBytes) : b,
      size: b.length,
      truncated,
      contentType: m === undefined ? '' : PROTOBUF_CONTENT_TYPE,
      contentEncoding: '',
    };
  };

  const toCall = (pair: Pair<Half, Half>): CapturedCall => {
    const req = pair.request;
    const res = pair.response;
    const first = (req ?? res)!;
    const peek = peekInferRequest(req?.message.value ?? res!.message.value);
    const headers: Record<string, string> = {};
    const allow = ctx.config.sidecar.captureHeaders.filter((h) => h !== 'authorization' && h !== 'cookie');
    for (const h of allow) {
      const v = first.message.headers[h];
      if (v !== undefined) headers[h] = v;
    }
    const seldonError = res?.message.headers[ERROR_HEADER];
    let status = 200;
    let error = '';
    if (res === undefined) {
      status = 0;
      error = 'response missing';
    } else if (seldonError !== undefined && seldonError !== '') {
      status = 500;
      error = seldonError;
    } else if (req === undefined) {
      error = 'request missing';
    }
    const startedAt = req?.message.timestamp ?? res!.message.timestamp;
    return {
      eventId: seldonEventId(first.pos),
      requestId: pair.key.slice(pair.key.indexOf('|') + 1),
      source: 'seldon',
      model: first.model,
      version: peek.version,
      route: first.topicPrefix,
      method: 'POST',
      status,
      startedAt,
      latencyMs:
        req !== undefined && res !== undefined ? Math.max(0, res.message.timestamp - req.message.timestamp) : 0,
      request: body(req?.message),
      response: body(res?.message),
      headers,
      error,
    };
  };

  const ledger = new OffsetLedger();
  let stopped = false;
  /** A pair is on the bus: its halves no longer hold their partitions' commits (an input waits for its output's). */
  const release = (pair: Pair<Half, Half>): void => {
    if (pair.response !== undefined) ledger.release(pair.response.pos);
    if (pair.request !== undefined) {
      if (pair.response !== undefined) ledger.releaseAfterCommit(pair.request.pos, pair.response.pos);
      else ledger.release(pair.request.pos);
    }
  };
  /** Puts the halves of a pair that could not be published back to wait (they stay held). */
  const restore = (pair: Pair<Half, Half>, except: Set<Half> = new Set()): void => {
    if (stopped) return;
    if (pair.request !== undefined && !except.has(pair.request)) pairs.request(pair.key, pair.request);
    if (pair.response !== undefined && !except.has(pair.response)) pairs.response(pair.key, pair.response);
  };

  // While a batch is being handled, completed pairs are collected and published with it; pairs flushed
  // by the TTL timer are published on their own (and wait again if that fails).
  let collecting: { messages: BusMessage[]; pairings: string[]; pairs: Pair<Half, Half>[] } | undefined;
  const inflight = new Set<Promise<void>>();
  const emit = (pair: Pair<Half, Half>, pairing: string): void => {
    let message: BusMessage;
    try {
      message = encodeCapture(toCall(pair));
    } catch (err) {
      // Cannot happen for well-formed halves; never block the partition's commit on it.
      published.inc({ pairing, result: 'failed' });
      ctx.logger.warn('seldon capture could not be built', { key: pair.key, error: errorMessage(err) });
      release(pair);
      return;
    }
    if (collecting) {
      collecting.messages.push(message);
      collecting.pairings.push(pairing);
      collecting.pairs.push(pair);
      return;
    }
    const p = ctx.bus
      .publish([message])
      .then(() => {
        published.inc({ pairing, result: 'sent' });
        release(pair);
      })
      .catch((err: unknown) => {
        published.inc({ pairing, result: 'failed' });
        ctx.logger.warn('seldon capture publish failed; its halves wait again', {
          key: pair.key,
          error: errorMessage(err),
        });
        restore(pair);
      })
      .finally(() => inflight.delete(p));
    inflight.add(p);
  };
  const onPair = (pair: Pair<Half, Half>): void => emit(pair, pair.orphanReason === '' ? 'paired' : pair.orphanReason);
  const pairs = new PairBuffer<Half, Half>({
    ttlMs: pairTtlMs,
    maxPending: options.maxPending ?? defaults.maxPending,
    sweepIntervalMs: options.sweepIntervalMs ?? defaults.sweepIntervalMs,
    onPair,
  });
  const pendingGauge = summedGaugeOn(
    ctx.metrics,
    { name: 'modelwatch_seldon_pending_messages', help: 'Seldon messages waiting for their other half.' },
    () => pairs.size,
  );

  const handler =
    (topicPrefix: string, side: 'inputs' | 'outputs') =>
    async (batch: ConsumedBatch): Promise<void> => {
      const model = modelOf(topicPrefix);
      const out = { messages: [] as BusMessage[], pairings: [] as string[], pairs: [] as Pair<Half, Half>[] };
      collecting = out;
      const added: { key: string; half: Half }[] = [];
      const mine = new Set<Half>();
      try {
        for (const message of batch.messages) {
          const pos: RecordPosition = { topic: batch.topic, partition: batch.partition, offset: message.offset };
          // Read again after a rebalance (the fetch restarts at the committed offset) while still in hand.
          if (ledger.isHeld(pos)) continue;
          received.inc({ side });
          ledger.hold(pos);
          const half: Half = { topicPrefix, model, message, pos };
          mine.add(half);
          const id = requestIdOf(message);
          if (id === '') {
            // Without any id the message cannot be paired; publish it alone rather than drop it.
            const key = `${topicPrefix}|${pos.topic}/${pos.partition}/${pos.offset}`;
            const alone =
              side === 'inputs' ? { request: half, response: undefined } : { request: undefined, response: half };
            emit({ key, ...alone, orphanReason: 'ttl' }, 'no_id');
            continue;
          }
          const key = `${topicPrefix}|${id}`;
          added.push({ key, half });
          if (side === 'inputs') pairs.request(key, half);
          else pairs.response(key, half);
        }
      } finally {
        collecting = undefined;
      }
      if (out.messages.length > 0) {
        try {
          await ctx.bus.publish(out.messages);
        } catch (err) {
          out.pairings.forEach((pairing) => published.inc({ pairing, result: 'failed' }));
          // Throwing leaves the fetch position where it was and Kafka delivers the batch again: its halves
          // are taken back (still waiting or not) so the redelivery is not a duplicate, and halves of
          // earlier batches that it paired or flushed wait again, so the redelivered halves pair with them.
          for (const { key, half } of added) pairs.withdraw(key, side === 'inputs' ? 'request' : 'response', half);
          for (const half of mine) ledger.release(half.pos);
          for (const pair of out.pairs) restore(pair, mine);
          throw err;
        }
        out.pairings.forEach((pairing) => published.inc({ pairing, result: 'sent' }));
        out.pairs.forEach(release);
      }
      const last = batch.messages[batch.messages.length - 1];
      if (last !== undefined) ledger.handled(batch.topic, batch.partition, last.offset);
    };

  const kafka = new KafkaBus({
    brokers,
    clientId: `${k.clientId}-seldon`,
    groupId,
    ssl: k.ssl,
    sasl: k.sasl,
    sessionTimeoutMs,
    heartbeatIntervalMs: Math.min(3_000, Math.floor(sessionTimeoutMs / 3)),
    logger: ctx.logger,
  });
  const consumers = new Map<string, ManualCommitConsumer>();
  // Outputs first: committing an output releases the input paired with it for the inputs' commit.
  const topics = (['outputs', 'inputs'] as const).flatMap((side) => prefixes.map((p) => `${p}.${side}`));
  const commitDue = async (): Promise<void> => {
    for (const topic of topics) {
      const consumer = consumers.get(topic);
      const due = ledger.due(topic);
      if (consumer === undefined || due.length === 0) continue;
      try {
        for (const d of await consumer.commit(due)) ledger.committed(topic, d.partition, d.offset);
      } catch (err) {
        ctx.logger.warn('seldon offset commit failed; retried on the next round', { topic, error: errorMessage(err) });
      }
    }
  };
  let committing: Promise<void> = Promise.resolve();
  const commitRound = (): Promise<void> => (committing = committing.then(commitDue));
  const joined: Promise<void>[] = [];
  try {
    for (const prefix of prefixes) {
      for (const side of ['inputs', 'outputs'] as const) {
        const topic = `${prefix}.${side}`;
        let markReady!: () => void;
        joined.push(new Promise<void>((resolve) => (markReady = resolve)));
        consumers.set(
          topic,
          await kafka.consumeWithManualCommit({
            topic,
            groupId: `${groupId}.${topic}`,
            handler: handler(prefix, side),
            onReady: () => markReady(),
          }),
        );
      }
    }
  } catch (err) {
    await Promise.allSettled([...consumers.values()].map((c) => c.stop()));
    pairs.close({ flush: false });
    pendingGauge.release();
    await kafka.close();
    throw err;
  }
  const commitTimer = setInterval(() => void commitRound(), options.commitIntervalMs ?? defaults.commitIntervalMs);
  commitTimer.unref();
  ctx.logger.info('seldon bridge started', { topics: prefixes });

  let stopping: Promise<void> | undefined;
  return {
    name: 'seldon',
    urls: [],
    ready: Promise.all(joined).then(() => undefined),
    get pending() {
      return pairs.size;
    },
    stop() {
      stopping ??= (async () => {
        clearInterval(commitTimer);
        await Promise.allSettled([...consumers.values()].map((c) => c.drain()));
        // Waiting halves are not published unpaired: their offsets stay uncommitted and the next start
        // reads them again, when their other half may come.
        stopped = true;
        pairs.close({ flush: false });
        await Promise.all([...inflight]);
        // Twice: the outputs' commit releases the inputs paired with them.
        await commitRound();
        await commitRound();
        await Promise.allSettled([...consumers.values()].map((c) => c.stop()));
        pendingGauge.release();
        await kafka.close();
        ctx.logger.info('seldon bridge stopped', { uncommitted: ledger.heldCount });
      })();
      return stopping;
    },
  };
}
