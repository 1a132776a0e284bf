// The tee rides out a short bus outage: a batch whose publish fails with a retryable error (broker down,
// timeout, bus full) goes back to the front of the queue and is published again after a backoff, while a
// refusal (a record the broker will never take) is dropped at once. On the librdkafka mock cluster through
// the publisher worker (what the sidecar ships), and on the in-process bus.
import {
  KafkaJSConnectionError,
  KafkaJSNonRetriableError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
} from 'kafkajs';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  InProcessBus,
  KafkaBus,
  KafkaWorkerBus,
  encodeCapture,
  kafkaErrorRetryable,
  messageBytes,
  type ConsumedMessage,
} from '../src/bus/index.js';
import { Tee, type TeeStats } from '../src/sidecar/index.js';
import { makeCall, waitFor } from './support/ingest.js';
import { startKafkaMock, type KafkaMock } from './support/kafka-mock.js';

const exact = (s: TeeStats): void => {
  expect(s.captured).toBe(s.sent + s.dropped + s.buffered);
  expect(s.dropped).toBe(s.droppedBy.buffer_full + s.droppedBy.publish_failed + s.droppedBy.shutdown);
};

/** Kafka error codes (Kafka protocol), injected into the mock's Produce answers. */
const PRODUCE_API_KEY = 0;
const MESSAGE_TOO_LARGE = 10;

/** A publisher worker with short deadlines, so that an outage of a few seconds outlives several publishes. */
function workerBus(kafka: KafkaMock, topic: string): KafkaWorkerBus {
  return new KafkaWorkerBus({
    brokers: kafka.brokers,
    topic,
    publishTimeoutMs: 800,
    workerGraceMs: 400,
    requestTimeoutMs: 500,
    connectionTimeoutMs: 300,
    workerNice: 0,
  });
}

/** Everything on `topic` (until `count` records arrived). */
async function readTopic(kafka: KafkaMock, topic: string, count: number): Promise<ConsumedMessage[]> {
  const reader = new KafkaBus({ brokers: kafka.brokers, topic, groupId: `${topic}-reader` });
  const got: ConsumedMessage[] = [];
  const consumer = await reader.consume({
    handler: (batch) => {
      got.push(...batch.messages);
      return Promise.resolve();
    },
  });
  try {
    await waitFor(() => got.length >= count, 20_000, `${count} records on ${topic}`);
  } finally {
    await consumer.stop();
    await reader.close();
  }
  return got;
}

/** First occurrence of each key, in topic order (a retried batch may have been delivered twice). */
function firstKeys(messages: ConsumedMessage[]): string[] {
  const seen = new Set<string>();
  const keys: string[] = [];
  for (const m of messages) {
    const k = m.key ?? '';
    if (!seen.has(k)) keys.push(k);
    seen.add(k);
  }
  return keys;
}

describe('kafkaErrorRetryable', () => {
  it('classifies kafkajs errors by class and protocol error type, through kafkajs wrappers', () => {
    // kafkajs's own error table: LEADER_NOT_AVAILABLE (5) and REQUEST_TIMED_OUT (7) are retriable,
    // MESSAGE_TOO_LARGE (10) and TOPIC_AUTHORIZATION_FAILED (29) are not.
    const protocol = (code: number, type: string, retriable: boolean): KafkaJSProtocolError =>
      new KafkaJSProtocolError(Object.assign(new Error(type), { type, code, retriable }));
    const leader = protocol(5, 'LEADER_NOT_AVAILABLE', true);
    const tooLarge = protocol(10, 'MESSAGE_TOO_LARGE', false);
    const auth = protocol(29, 'TOPIC_AUTHORIZATION_FAILED', false);
    const refused = new KafkaJSConnectionError('connect ECONNREFUSED', { code: 'ECONNREFUSED' });
    expect(kafkaErrorRetryable(leader)).toBe(true);
    expect(kafkaErrorRetryable(protocol(7, 'REQUEST_TIMED_OUT', true))).toBe(true);
    expect(kafkaErrorRetryable(tooLarge)).toBe(false);
    expect(kafkaErrorRetryable(auth)).toBe(false);
    expect(kafkaErrorRetryable(refused)).toBe(true);
    // The retrier's wrappers: retries exhausted on a transient error, or a refusal passed through.
    const exhausted = (e: Error): Error => new KafkaJSNumberOfRetriesExceeded(e, { retryCount: 5, retryTime: 5_000 });
    expect(kafkaErrorRetryable(exhausted(refused))).toBe(true);
    expect(kafkaErrorRetryable(exhausted(leader))).toBe(true);
    expect(kafkaErrorRetryable(new KafkaJSNonRetriableError(tooLarge))).toBe(false);
    expect(kafkaErrorRetryable(new KafkaJSNonRetriableError('Invalid topic'))).toBe(false);
    expect(kafkaErrorRetryable(new TypeError('a bug'))).toBe(false);
  });
});

describe('Tee retries through a bus outage (librdkafka mock, publisher worker)', () => {
  it('keeps every record through a broker outage longer than its publish timeout: delivered in order, none failed', async () => {
    const topic = 'tee.retry';
    const kafka = await startKafkaMock({ topics: { [topic]: 1 } });
    const bus = workerBus(kafka, topic);
    const registry = new Registry();
    // The tee waits longer than the worker's answer (800 + 400 ms): each failed publish comes back as a
    // failure, not a timeout, so the flusher never runs ahead of a batch that may still be delivered.
    const tee = new Tee(bus, {
      flushIntervalMs: 10,
      maxBatchMessages: 10,
      publishTimeoutMs: 2_500,
      retryBackoffMs: 100,
      maxRetryBackoffMs: 400,
      kafkaHeaderBlock: true,
      registry,
    });
    try {
      await bus.publish([encodeCapture(makeCall(-1))]); // connected, metadata known
      tee.start();
      await kafka.down(1);
      const downAt = Date.now();
      for (let i = 0; i < 30; i++) tee.offer(makeCall(i));
      await waitFor(() => tee.stats().retried > 0, 10_000, 'a failed batch put back');
      // More records while down queue behind the ones put back.
      for (let i = 30; i < 60; i++) tee.offer(makeCall(i));
      // Down for longer than the tee's publish timeout, with several attempts failed.
      await waitFor(() => Date.now() - downAt > 3_000 && tee.stats().retried >= 20, 15_000, 'several retries');
      let s = tee.stats();
      exact(s);
      expect(s).toMatchObject({ captured: 60, sent: 0, dropped: 0, buffered: 60 });
      await kafka.up(1);
      // Every step on the way stays exact.
      await waitFor(
        () => {
          exact(tee.stats());
          return tee.stats().buffered === 0;
        },
        25_000,
        'every record sent after the broker came back',
      );
      s = tee.stats();
      exact(s);
      expect(s).toMatchObject({ captured: 60, sent: 60, dropped: 0, buffered: 0, inFlight: 0 });
      expect(s.droppedBy.publish_failed).toBe(0);
      expect(s.retried).toBeGreaterThanOrEqual(20);
      const text = await registry.metrics();
      expect(text).toMatch(/^modelwatch_tee_retried_records_total (\d+)$/m);
      expect(Number(/^modelwatch_tee_retried_records_total (\d+)$/m.exec(text)?.[1])).toBe(s.retried);
      expect(text).toMatch(/^modelwatch_tee_dropped_total\{reason="publish_failed"\} 0$/m);

      const onTopic = await readTopic(kafka, topic, 61);
      const want = ['req--1', ...Array.from({ length: 60 }, (_, i) => `req-${i}`)];
      expect(firstKeys(onTopic)).toEqual(want);
      // Records put back are the records captured, byte for byte (the tee's copies, not the worker's).
      for (const m of onTopic) {
        const i = Number((m.key ?? '').slice(4));
        expect(m.value.equals(encodeCapture(makeCall(i)).value)).toBe(true);
      }
      await tee.close(1_000);
    } finally {
      await tee.close(0);
      await bus.close();
      await kafka.stop();
    }
  }, 90_000);

  it('keeps the values of a batch whose ring slots the bus gave back (publisher worker died) intact when it is put back', async () => {
    const topic = 'tee.retry.dead';
    const kafka = await startKafkaMock({ topics: { [topic]: 1 } });
    const bus = new KafkaWorkerBus({
      brokers: kafka.brokers,
      topic,
      publishTimeoutMs: 8_000,
      requestTimeoutMs: 500,
      connectionTimeoutMs: 300,
      workerNice: 0,
    });
    // Batches of 5 records; a short publish timeout on the tee's side, so that later batches go out while the
    // first is still in flight. Records queued past a whole batch wait as bytes and are rebuilt into ring slots
    // when taken, so the third batch's values lie in ring slots, which the publisher worker reads in place.
    const tee = new Tee(bus, {
      flushIntervalMs: 10,
      maxBatchMessages: 5,
      publishTimeoutMs: 300,
      retryBackoffMs: 100,
      maxRetryBackoffMs: 400,
      kafkaHeaderBlock: true,
    });
    const rows = 400;
    try {
      await bus.publish([encodeCapture(makeCall(-1, rows))]); // connected, metadata known
      await kafka.down(1);
      // The first batch goes out at once; the second waits as objects, the third as bytes.
      for (let i = 0; i < 15; i++) tee.offer(makeCall(i, rows));
      expect(tee.stats().heldOffHeap).toBe(5);
      tee.start();
      await waitFor(
        () => tee.stats().inFlight === 15 && bus.ringSlotsLeased === 5,
        5_000,
        'three batches in flight, the third in ring slots',
      );
      // The worker dies with all three in flight: the bus frees the slots, then fails the publishes.
      await bus.terminateWorker();
      await waitFor(() => tee.stats().retried >= 15, 5_000, 'the batches put back');
      // The proxy reads request bodies into ring slots: the freed ones are taken first and written over.
      for (let k = 0; k < 5; k++) {
        const body = tee.allocateRecord(8_000);
        expect(body.buffer).toBeInstanceOf(SharedArrayBuffer);
        body.fill(0x5a);
        tee.releaseRecord(body);
      }
      await kafka.up(1);
      await waitFor(() => tee.stats().buffered === 0, 30_000, 'every record sent after the broker came back');
      const s = tee.stats();
      exact(s);
      expect(s).toMatchObject({ captured: 15, sent: 15, dropped: 0 });
      // Every record arrives as captured (batches failing together may be put back in either order).
      const onTopic = await readTopic(kafka, topic, 16);
      expect(new Set(firstKeys(onTopic))).toEqual(
        new Set(['req--1', ...Array.from({ length: 15 }, (_, i) => `req-${i}`)]),
      );
      for (const m of onTopic) {
        const i = Number((m.key ?? '').slice(4));
        expect(m.value.equals(encodeCapture(makeCall(i, rows)).value)).toBe(true);
      }
      await tee.close(1_000);
    } finally {
      await tee.close(0);
      await bus.close();
      await kafka.stop();
    }
  }, 90_000);

  it('drops a batch the broker refuses outright at once (not retried), and later records still go out', async () => {
    const topic = 'tee.refused';
    const kafka = await startKafkaMock({ topics: { [topic]: 1 } });
    const bus = workerBus(kafka, topic);
    const tee = new Tee(bus, { flushIntervalMs: 10, maxBatchMessages: 10, kafkaHeaderBlock: true });
    try {
      await bus.publish([encodeCapture(makeCall(-1))]);
      // The classification crosses from the worker's producer to this thread.
      await kafka.pushErrors(PRODUCE_API_KEY, MESSAGE_TOO_LARGE, 1);
      await expect(bus.publish([encodeCapture(makeCall(-2))])).rejects.toMatchObject({
        code: 'bus_rejected',
        retryable: false,
      });
      await kafka.pushErrors(PRODUCE_API_KEY, MESSAGE_TOO_LARGE, 1);
      for (let i = 0; i < 5; i++) tee.offer(makeCall(i));
      await tee.flush();
      let s = tee.stats();
      exact(s);
      expect(s).toMatchObject({ captured: 5, sent: 0, buffered: 0, retried: 0, droppedBy: { publish_failed: 5 } });
      tee.start();
      for (let i = 5; i < 10; i++) tee.offer(makeCall(i));
      await waitFor(() => tee.stats().buffered === 0, 10_000, 'later records sent');
      s = tee.stats();
      exact(s);
      expect(s).toMatchObject({ captured: 10, sent: 5, retried: 0, droppedBy: { publish_failed: 5 } });
      const onTopic = await readTopic(kafka, topic, 6);
      expect(onTopic.map((m) => m.key)).toEqual(['req--1', 'req-5', 'req-6', 'req-7', 'req-8', 'req-9']);
      await tee.close(1_000);
    } finally {
      await tee.close(0);
      await bus.close();
      await kafka.stop();
    }
  }, 60_000);

  it('counts what it still holds at close as shutdown, none as publish_failed', async () => {
    const topic = 'tee.closing';
    const kafka = await startKafkaMock({ topics: { [topic]: 1 } });
    const bus = workerBus(kafka, topic);
    const tee = new Tee(bus, {
      flushIntervalMs: 10,
      maxBatchMessages: 10,
      publishTimeoutMs: 2_500,
      retryBackoffMs: 100,
      kafkaHeaderBlock: true,
    });
    try {
      await bus.publish([encodeCapture(makeCall(-1))]);
      tee.start();
      await kafka.down(1);
      for (let i = 0; i < 40; i++) tee.offer(makeCall(i));
      // Failed and put back more than once: the worker has said its producer is done with the first attempt's
      // ring slots, so the bus gave them back and the records below take them.
      await waitFor(() => tee.stats().retried >= 20, 10_000, 'failed batches put back');
      await tee.close(1_500);
      exact(tee.stats());
      // Publishes still in flight answer when the bus closes: put back no more, counted as shutdown.
      await bus.close();
      await waitFor(() => tee.stats().buffered === 0, 5_000, 'publishes in flight answered');
      const s = tee.stats();
      exact(s);
      expect(s).toMatchObject({ captured: 40, sent: 0, buffered: 0, droppedBy: { publish_failed: 0, shutdown: 40 } });
      expect(s.retried).toBeGreaterThan(0);
    } finally {
      await bus.close();
      await kafka.stop();
    }
  }, 60_000);
});

describe('Tee retries on a full in-process bus', () => {
  it('puts a batch the bus has no room for back at the front and delivers everything in order once drained', async () => {
    // Ids 100..999 encode to the same size.
    const size = messageBytes(encodeCapture(makeCall(100)));
    // Room for five records; batches of two: the third publish finds room for one only.
    const bus = new InProcessBus({ maxBufferedBytes: size * 5 + size / 2 });
    const tee = new Tee(bus, { flushIntervalMs: 5, maxBatchMessages: 2, retryBackoffMs: 20, maxRetryBackoffMs: 50 });
    tee.start();
    for (let i = 100; i < 110; i++) tee.offer(makeCall(i));
    await waitFor(() => tee.stats().retried > 0, 5_000, 'a batch put back');
    let s = tee.stats();
    exact(s);
    expect(s).toMatchObject({ captured: 10, sent: 4, buffered: 6, dropped: 0 });
    const got: string[] = [];
    const consumer = await bus.consume({
      handler: (batch) => {
        got.push(...batch.messages.map((m) => m.key ?? ''));
        return Promise.resolve();
      },
    });
    await waitFor(() => tee.stats().buffered === 0 && got.length === 10, 10_000, 'everything delivered');
    await consumer.stop();
    s = tee.stats();
    exact(s);
    expect(s).toMatchObject({ captured: 10, sent: 10, dropped: 0 });
    expect(got).toEqual(Array.from({ length: 10 }, (_, i) => `req-${100 + i}`));
    await tee.close(100);
    await bus.close();
  });
});
