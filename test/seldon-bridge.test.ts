import { Kafka, logLevel, type Producer } from 'kafkajs';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeCapture,
  InProcessBus,
  type Bus,
  type BusConsumer,
  type BusMessage,
  type CapturedCall,
  type ConsumeOptions,
} from '../src/bus/index.js';
import { ErrorCodes, ModelwatchError } from '../src/common/errors.js';
import { silentLogger } from '../src/common/logger.js';
import { defaultModelSchema } from '../src/config/model-schema.js';
import { configSchema } from '../src/config/schema.js';
import { startSeldonBridge, type SeldonBridge } from '../src/ingest/seldon.js';
import { decodeCall } from '../src/protocol/index.js';
import type { RuntimeContext } from '../src/runtime/context.js';
import type { Store } from '../src/store/store.js';
import { startKafkaMock, type KafkaMock } from './support/kafka-mock.js';
import {
  classifierProbabilities,
  v2Types,
  type WireInferRequest,
  type WireInferResponse,
} from './support/v2-grpc-server.js';

/** The real in-process bus, with one-shot publish failures on demand (fault injection). */
class FailingBus implements Bus {
  failNext = 0;
  failed = 0;
  constructor(private readonly inner: Bus) {}
  get kind(): Bus['kind'] {
    return this.inner.kind;
  }
  get topic(): string {
    return this.inner.topic;
  }
  publish(messages: BusMessage[], topic?: string): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--;
      this.failed++;
      return Promise.reject(
        new ModelwatchError(ErrorCodes.busUnavailable, 'injected publish failure', { retryable: true }),
      );
    }
    return this.inner.publish(messages, topic);
  }
  consume(options: ConsumeOptions): Promise<BusConsumer> {
    return this.inner.consume(options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const IRIS = 'seldon.default.model.iris';
const TEXT = 'seldon.prod.model.strings';

let mock: KafkaMock;
let producer: Producer;
let bridge: SeldonBridge;
let consumer: BusConsumer;
let ctx: RuntimeContext;
let bus: FailingBus;
const captures: CapturedCall[] = [];

async function waitFor(pred: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${captures.length} captures)`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function encodeRequest(req: WireInferRequest): Buffer {
  const t = v2Types().request;
  return Buffer.from(t.encode(t.fromObject(req)).finish());
}

function encodeResponse(res: Partial<WireInferResponse>): Buffer {
  const t = v2Types().response;
  return Buffer.from(t.encode(t.fromObject(res)).finish());
}

const rows = [
  [5.1, 3.5, 1.4, 0.2],
  [6.2, 2.9, 4.3, 1.3],
];
const irisRequest = encodeRequest({
  model_name: 'iris',
  model_version: '3',
  inputs: [{ name: 'predict', datatype: 'FP32', shape: [2, 4], contents: { fp32_contents: rows.flat() } }],
});
const irisResponse = encodeResponse({
  model_name: 'iris',
  model_version: '3',
  outputs: [
    {
      name: 'proba',
      datatype: 'FP32',
      shape: [2, 2],
      contents: { fp32_contents: rows.flatMap((r) => classifierProbabilities(r)) },
    },
  ],
});

async function send(
  topic: string,
  value: Buffer,
  requestId: string | undefined,
  extra: Record<string, string> = {},
): Promise<void> {
  await producer.send({
    topic,
    messages: [
      {
        // Seldon's composite key: <partition>.<resourceName>.<requestId>.
        key: `0.${topic.split('.')[3] ?? ''}.${requestId ?? 'nokey'}`,
        value,
        headers: { ...(requestId === undefined ? {} : { 'x-request-id': requestId }), ...extra },
      },
    ],
  });
}

beforeAll(async () => {
  mock = await startKafkaMock({
    topics: { [`${IRIS}.inputs`]: 2, [`${IRIS}.outputs`]: 2, [`${TEXT}.inputs`]: 1, [`${TEXT}.outputs`]: 1 },
  });
  bus = new FailingBus(new InProcessBus());
  ctx = {
    config: configSchema.parse({ kafka: { brokers: mock.brokers, seldonTopics: [IRIS, `${TEXT}.inputs`] } }),
    // The bridge never touches the store.
    store: undefined as unknown as Store,
    bus,
    logger: silentLogger,
    metrics: new Registry(),
  };
  consumer = await bus.consume({
    handler: (batch) => {
      for (const m of batch.messages) captures.push(decodeCapture(m));
      return Promise.resolve();
    },
  });
  bridge = await startSeldonBridge(ctx, { pairTtlMs: 3_000, sweepIntervalMs: 50 });
  await bridge.ready;
  producer = new Kafka({ brokers: mock.brokers, logLevel: logLevel.NOTHING }).producer({
    allowAutoTopicCreation: false,
  });
  await producer.connect();
}, 120_000);

afterAll(async () => {
  await producer?.disconnect();
  await bridge?.stop();
  await consumer?.stop();
  await mock?.stop();
});

describe('Seldon Core 2 bridge on the librdkafka mock cluster', () => {
  it.each([
    ['inputs first', 'rid-in-first', ['inputs', 'outputs']],
    ['outputs first', 'rid-out-first', ['outputs', 'inputs']],
  ] as const)('pairs an input and an output by x-request-id (%s)', async (_name, rid, order) => {
    const [first, second] = order;
    await send(`${IRIS}.${first}`, first === 'inputs' ? irisRequest : irisResponse, rid, { traceparent: `00-${rid}` });
    // The first half is consumed and waiting before the second is even produced: the order is real.
    await waitFor(() => bridge.pending === 1, `${rid} first half pending`);
    await send(`${IRIS}.${second}`, second === 'inputs' ? irisRequest : irisResponse, rid, {
      traceparent: `00-${rid}`,
    });
    await waitFor(() => captures.some((c) => c.requestId === rid), rid);
    const mine = captures.filter((c) => c.requestId === rid);
    expect(mine).toHaveLength(1);
    const call = mine[0]!;
    expect(call).toMatchObject({
      source: 'seldon',
      model: 'iris',
      version: '3',
      route: IRIS,
      status: 200,
      error: '',
      headers: { traceparent: `00-${rid}` },
    });
    expect(call.request.body.equals(irisRequest)).toBe(true);
    expect(call.response.body.equals(irisResponse)).toBe(true);
    expect(call.request.contentType).toBe('application/x-protobuf');
    expect(call.latencyMs).toBeGreaterThanOrEqual(0);
    // Ingest decodes Seldon bodies with the gRPC codec: features and outputs come out per row.
    const decoded = decodeCall(call, defaultModelSchema);
    expect(decoded.rows).toHaveLength(2);
    expect(decoded.rows[1]!.features_num.predict_2).toBeCloseTo(4.3, 5);
    expect(decoded.rows[0]!.outputs_num.proba_1).toBeCloseTo(classifierProbabilities(rows[0]!)[1], 6);
  });

  it('keeps models and ids apart, and reads a prefix given with its .inputs suffix', async () => {
    const textReq = encodeRequest({
      model_name: 'strings',
      inputs: [{ name: 'text', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [Buffer.from('hi')] } }],
    });
    const textRes = encodeResponse({
      model_name: 'strings',
      outputs: [{ name: 'length', datatype: 'INT32', shape: [1], contents: { int_contents: [2] } }],
    });
    // The same request id on two models must not pair across them.
    await send(`${TEXT}.inputs`, textReq, 'shared-id');
    await send(`${IRIS}.inputs`, irisRequest, 'shared-id');
    await send(`${IRIS}.outputs`, irisResponse, 'shared-id');
    await send(`${TEXT}.outputs`, textRes, 'shared-id');
    await waitFor(() => captures.filter((c) => c.requestId === 'shared-id').length === 2, 'shared-id pairs');
    const byModel = new Map(captures.filter((c) => c.requestId === 'shared-id').map((c) => [c.model, c]));
    expect(byModel.get('strings')?.request.body.equals(textReq)).toBe(true);
    expect(byModel.get('strings')?.response.body.equals(textRes)).toBe(true);
    expect(byModel.get('iris')?.response.body.equals(irisResponse)).toBe(true);
    expect(byModel.get('strings')?.route).toBe(TEXT);
  });

  it('falls back to the record key when x-request-id is missing', async () => {
    await send(`${IRIS}.inputs`, irisRequest, undefined);
    await producer.send({ topic: `${IRIS}.outputs`, messages: [{ key: '0.iris.nokey', value: irisResponse }] });
    await waitFor(() => captures.some((c) => c.requestId === 'nokey'), 'key-paired call');
    expect(captures.find((c) => c.requestId === 'nokey')).toMatchObject({ status: 200, error: '' });
  });

  it('publishes an input whose output never comes after the TTL, with status 0', async () => {
    const t0 = Date.now();
    await send(`${IRIS}.inputs`, irisRequest, 'lonely');
    await waitFor(() => captures.some((c) => c.requestId === 'lonely'), 'orphan flush');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2_500);
    const call = captures.find((c) => c.requestId === 'lonely')!;
    expect(call).toMatchObject({ status: 0, error: 'response missing', model: 'iris' });
    expect(call.response.size).toBe(0);
    expect(decodeCall(call, defaultModelSchema).rows).toHaveLength(2);
  });

  it('does not lose a pair whose publish failed: the batch is redelivered and pairs again', async () => {
    await send(`${IRIS}.inputs`, irisRequest, 'retry-me');
    await waitFor(() => bridge.pending === 1, 'input pending');
    bus.failNext = 1;
    await send(`${IRIS}.outputs`, irisResponse, 'retry-me');
    await waitFor(() => captures.some((c) => c.requestId === 'retry-me'), 'pair after redelivery');
    expect(bus.failed).toBe(1);
    const mine = captures.filter((c) => c.requestId === 'retry-me');
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ status: 200, error: '' });
    expect(mine[0]!.request.body.equals(irisRequest)).toBe(true);
    expect(bridge.pending).toBe(0);
  });

  it('records a Seldon error header on the output as a failed call', async () => {
    await send(`${IRIS}.inputs`, irisRequest, 'failing');
    await send(`${IRIS}.outputs`, Buffer.alloc(0), 'failing', { 'seldon-pipeline-errors': 'model iris failed' });
    await waitFor(() => captures.some((c) => c.requestId === 'failing'), 'failed call');
    expect(captures.find((c) => c.requestId === 'failing')).toMatchObject({ status: 500, error: 'model iris failed' });
  });
});

describe('Seldon bridge configuration', () => {
  it('rejects a prefix that is not <prefix>.<ns>.model.<name>, naming the setting', async () => {
    await expect(startSeldonBridge(ctx, { topics: ['seldon.default.pipeline.p'] })).rejects.toMatchObject({
      code: 'config_invalid',
      field: 'kafka.seldonTopics',
    });
    await expect(startSeldonBridge(ctx, { topics: [] })).rejects.toMatchObject({ field: 'kafka.seldonTopics' });
  });
});
