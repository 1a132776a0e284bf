// The one-copy Produce request encoder (src/bus/kafka-produce-encoder.ts) must put on the wire exactly the
// bytes kafkajs's own encoding writes for the same request: compared byte for byte here with kafkajs's
// framer over its Produce v3 request (kept aside before the wrapping; the checksum is part of the bytes
// compared), and end to end through a librdkafka mock broker and a kafkajs consumer (neither of which
// verifies the batch CRC, hence the byte comparison).
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
// First, as in src/bus/kafka.ts: before anything loads kafkajs.
import '../src/bus/kafka-crc32c.js';
import {
  HEADER_BLOCK,
  encodeProduceFrame,
  kafkaProduceEncoderStatus,
  kafkajsProduceOriginals,
  onProduceFrameAnswered,
  produceFastPathApplies,
  type ProduceMessage,
  type ProduceRequestArgs,
} from '../src/bus/kafka-produce-encoder.js';
import { KafkaBus } from '../src/bus/kafka.js';
import { releaseArrayBuffers } from '../src/bus/kafka-worker.js';
import { encodeCapture } from '../src/protocol/capture.js';
import { headerBlockOf } from '../src/bus/kafka-header-block.js';
import type { ConsumedMessage } from '../src/bus/types.js';
import { startKafkaMock, type KafkaMock } from './support/kafka-mock.js';

const require = createRequire(import.meta.url);
type Framer = (a: { correlationId: number; clientId: string | null; request: unknown }) => Promise<{ buffer: Buffer }>;
/** The framer kafkajs's connection calls (ours once installed). */
const framerInUse = require('kafkajs/src/protocol/request.js') as Framer;
/** kafkajs's Produce v7 request, which builds on the (wrapped) v3 one. */
const produceV7 = require('kafkajs/src/protocol/requests/produce/v7/request.js') as (a: ProduceRequestArgs) => unknown;
const Long = require('kafkajs/src/utils/long.js') as { fromValue(v: unknown): unknown };

const NOW = 1_764_460_800_123;

/** A capture record as the sidecar's tee makes it: ~24 headers, the bodies as the value. */
function captureMessage(i: number, bodyBytes: number): ProduceMessage {
  const body = randomBytes(bodyBytes);
  const rec = encodeCapture({
    eventId: `0190f2a0-0000-7000-8000-${String(i).padStart(12, '0')}`,
    requestId: `req-${i}-é`,
    source: 'sidecar',
    model: 'classifier',
    version: 'v3',
    route: '/v2/models/classifier/infer',
    method: 'POST',
    status: 200,
    latencyMs: 1.25 + i,
    startedAt: NOW - i,
    request: { body, size: body.length, truncated: false, contentType: 'application/json', contentEncoding: '' },
    response: {
      body: body.subarray(0, 10),
      size: 10,
      truncated: false,
      contentType: 'application/json',
      contentEncoding: '',
    },
    headers: { 'x-tenant': 'ü-tenant' },
    error: '',
  });
  return { key: rec.key, value: rec.value, headers: rec.headers };
}

async function kafkajsFrame(args: ProduceRequestArgs, apiVersion: number): Promise<Buffer> {
  const o = kafkajsProduceOriginals();
  if (!o) throw new Error('encoder not installed');
  const request = Object.assign(o.produceV3(args), { apiVersion });
  return (await o.createRequest({ correlationId: 4242, clientId: 'modelwatch', request })).buffer;
}

function ours(args: ProduceRequestArgs, apiVersion: number, clientId: string | null = 'modelwatch'): Buffer {
  const o = kafkajsProduceOriginals();
  if (!o) throw new Error('encoder not installed');
  return encodeProduceFrame({ apiKey: 0, apiVersion, correlationId: 4242, clientId }, args, o.Long, o.crc32c);
}

function args(partitions: ProduceMessage[][], extra: Partial<ProduceRequestArgs> = {}): ProduceRequestArgs {
  return {
    acks: -1,
    timeout: 10_000,
    transactionalId: undefined,
    producerId: Long.fromValue(-1),
    producerEpoch: 0,
    compression: 0,
    topicData: [
      {
        topic: 'modelwatch.inference',
        partitions: partitions.map((messages, p) => ({ partition: p, firstSequence: 0, messages })),
      },
    ],
    ...extra,
  };
}

describe('Produce request encoder', () => {
  beforeAll(() => {
    vi.spyOn(Date, 'now').mockReturnValue(NOW);
  });
  afterAll(() => {
    vi.restoreAllMocks();
  });

  it('is installed in place of kafkajs’s encoding', () => {
    expect(kafkaProduceEncoderStatus()).toEqual({ installed: true });
    expect(kafkajsProduceOriginals()?.createRequest).not.toBe(framerInUse);
  });

  it('writes capture records byte for byte as kafkajs does, at 1 KB and 64 KB', async () => {
    for (const [n, size] of [
      [1, 1_000],
      [20, 1_000],
      [200, 1_000],
      [16, 65_526],
    ] as const) {
      const a = args([Array.from({ length: n }, (_, i) => captureMessage(i, size))]);
      expect(produceFastPathApplies(a)).toBe(true);
      const want = await kafkajsFrame(a, 7);
      expect(ours(a, 7).equals(want)).toBe(true);
    }
  });

  it('matches kafkajs at every varint boundary, with null, string and Buffer keys, values and headers', async () => {
    const sizes = [0, 1, 63, 64, 65, 8_191, 8_192, 8_193, 1_048_575, 1_048_576];
    const messages: ProduceMessage[] = sizes.map((n, i) => ({
      key: i % 3 === 0 ? null : i % 3 === 1 ? `k${i}✓` : Buffer.from([i, 0, 255]),
      value: i === 2 ? null : i === 3 ? 'a string value ✓'.repeat(n % 7) : randomBytes(n),
      headers:
        i % 2 === 0
          ? { a: 'x'.repeat(n % 200), 'ü-name': Buffer.from('bin'), multi: ['one', Buffer.from('two'), ''] }
          : undefined,
    }));
    const a = args([messages, messages.slice(0, 3), []], {
      transactionalId: 'tx-✓',
      producerId: Long.fromValue(1_234_567_890_123),
      producerEpoch: 7,
      acks: 1,
      timeout: 30_000,
    });
    a.topicData.push({ topic: 'other', partitions: [{ partition: 5, firstSequence: 99, messages }] });
    expect(produceFastPathApplies(a)).toBe(true);
    for (const v of [3, 5, 7]) expect(ours(a, v).equals(await kafkajsFrame(a, v))).toBe(true);
    // A null client id, as kafkajs's framer writes it (length -1).
    const o = kafkajsProduceOriginals();
    const request = Object.assign(o!.produceV3(a), { apiVersion: 3 });
    const want = (await o!.createRequest({ correlationId: 4242, clientId: null, request })).buffer;
    expect(ours(a, 3, null).equals(want)).toBe(true);
  });

  it('writes a message’s header block in place of its headers: the same bytes as kafkajs for those headers', async () => {
    const plain = [
      ...Array.from({ length: 70 }, (_, i) => captureMessage(i, 1_000)),
      { key: 'k', value: Buffer.from('v'), headers: { 'long-ü': 'é'.repeat(5_000), '': '' } },
      captureMessage(99, 65_526),
    ];
    const blocks: ProduceMessage[] = plain.map((m) => ({
      key: m.key,
      value: m.value,
      [HEADER_BLOCK]: headerBlockOf(m.headers as Record<string, string>),
    }));
    // Mixed in one request too: some records with a block, some with headers.
    const mixed = blocks.map((m, i) => (i % 2 === 0 ? m : plain[i]!));
    for (const msgs of [blocks, mixed]) {
      const a = args([msgs, msgs.slice(0, 5)]);
      expect(produceFastPathApplies(a)).toBe(true);
      expect(ours(a, 7).equals(await kafkajsFrame(args([plain, plain.slice(0, 5)]), 7))).toBe(true);
    }
    expect(produceFastPathApplies(args([[{ key: 'k', value: 'v', [HEADER_BLOCK]: '' }]]))).toBe(false);
  });

  it('is what kafkajs’s connection sends for a Produce request, and leaves what it does not cover to kafkajs', async () => {
    const a = args([[captureMessage(1, 500), captureMessage(2, 70_000)]]);
    const sent = await framerInUse({ correlationId: 4242, clientId: 'modelwatch', request: produceV7(a) });
    expect(sent.buffer.equals(await kafkajsFrame(a, 7))).toBe(true);
    // Compressed, or with message timestamps: kafkajs's own encoding, through the same framer.
    const gzip = args([[captureMessage(3, 500)]], { compression: 1 });
    const stamped = args([[{ ...captureMessage(4, 500), timestamp: NOW - 5 }]]);
    const badHeader = args([[{ key: 'k', value: Buffer.from('v'), headers: { n: 5 as unknown as string } }]]);
    for (const x of [gzip, stamped, badHeader]) expect(produceFastPathApplies(x)).toBe(false);
    const stampedSent = await framerInUse({ correlationId: 4242, clientId: 'modelwatch', request: produceV7(stamped) });
    expect(stampedSent.buffer.equals(await kafkajsFrame(stamped, 7))).toBe(true);
    const gz = await framerInUse({ correlationId: 1, clientId: 'modelwatch', request: produceV7(gzip) });
    // Compressed batch: attributes carry codec 1 (first byte after the batch header fields).
    expect(gz.buffer.length).toBeGreaterThan(0);
  });
});

describe('Produce request encoder against a broker', () => {
  let mock: KafkaMock;
  let bus: KafkaBus;
  beforeAll(async () => {
    mock = await startKafkaMock({ brokers: 1, topics: { 'enc.test': 2 } });
    bus = new KafkaBus({ brokers: mock.brokers, topic: 'enc.test', publishTimeoutMs: 20_000 });
  }, 30_000);
  afterEach(() => {
    vi.restoreAllMocks();
  });
  afterAll(async () => {
    await bus.close();
    await mock.stop();
  });

  it('delivers every key, value and header unchanged through a broker, each frame handed over once answered', async () => {
    expect(kafkaProduceEncoderStatus().installed).toBe(true);
    // What the publisher worker does: frees each answered frame at once (it was written whole).
    const answered: { length: number; size: number; apiKey: number }[] = [];
    onProduceFrameAnswered((frame) => {
      answered.push({ length: frame.length, size: frame.readInt32BE(0), apiKey: frame.readInt16BE(4) });
      const ab = frame.buffer;
      if (ab instanceof ArrayBuffer && frame.byteOffset === 0 && frame.byteLength === ab.byteLength) {
        releaseArrayBuffers([ab]);
      }
    });
    const sent = [
      ...Array.from({ length: 30 }, (_, i) => captureMessage(i, 1_000)),
      ...Array.from({ length: 6 }, (_, i) => captureMessage(100 + i, 65_526)),
    ].map((m) => ({ key: m.key as string, value: m.value as Buffer, headers: m.headers as Record<string, string> }));
    try {
      await bus.publish(sent.slice(0, 30));
      await bus.publish(sent.slice(30));
    } finally {
      onProduceFrameAnswered(undefined);
    }
    // One Produce request per publish (one broker): each frame once, after its answer.
    expect(answered).toHaveLength(2);
    for (const f of answered) expect(f).toMatchObject({ size: f.length - 4, apiKey: 0 });
    expect(answered[1]!.length).toBeGreaterThan(6 * 65_526);
    const got = new Map<string, ConsumedMessage>();
    let done!: () => void;
    const all = new Promise<void>((resolve) => (done = resolve));
    const consumer = await bus.consume({
      groupId: 'enc-test',
      handler: (batch) => {
        for (const m of batch.messages) got.set(m.key ?? '', m);
        if (got.size >= sent.length) done();
        return Promise.resolve();
      },
    });
    await Promise.race([all, new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 25_000))]);
    await consumer.stop();
    expect(got.size).toBe(sent.length);
    for (const m of sent) {
      const g = got.get(m.key);
      expect(g).toBeDefined();
      expect(Buffer.compare(g!.value, m.value)).toBe(0);
      expect(g!.headers).toEqual(m.headers);
    }
  }, 60_000);
});
