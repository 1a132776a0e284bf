import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeCapture, InProcessBus, type BusConsumer, type CapturedCall } from '../src/bus/index.js';
import { silentLogger } from '../src/common/logger.js';
import { configSchema, type ConfigInput } from '../src/config/schema.js';
import type { RuntimeContext } from '../src/runtime/context.js';
import { grpcStatusToHttp, startGrpcProxy } from '../src/sidecar/grpc-proxy.js';
import { peekInferRequest } from '../src/protocol/index.js';
import { acquireTee } from '../src/sidecar/shared-tee.js';
import type { Store } from '../src/store/store.js';
import {
  classifierProbabilities,
  decodeInferResponse,
  encodeInferRequest,
  startV2GrpcServer,
  v2ServiceConstructor,
  V2_PROTO_PATH,
  type V2GrpcServer,
  type WireInferRequest,
} from './support/v2-grpc-server.js';

const SERVICE = 'inference.GRPCInferenceService';
const identity = (b: Buffer): Buffer => b;

interface RawResult {
  code: grpc.status;
  details: string;
  value: Buffer | undefined;
  headers: Record<string, string>;
  trailers: Record<string, string>;
}

/** Only metadata the application set: grpc-js and HTTP/2 add their own transport keys on each hop. */
function appMetadata(md: grpc.Metadata | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(md?.getMap() ?? {})) {
    if (k.startsWith('x-')) out[k] = Buffer.isBuffer(v) ? v.toString('base64') : v;
  }
  return out;
}

function rawCall(
  client: grpc.Client,
  method: string,
  body: Buffer,
  md: Record<string, string> = {},
  deadlineMs = 10_000,
): Promise<RawResult> {
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) metadata.set(k, v);
  return new Promise((resolve) => {
    let headers: Record<string, string> = {};
    let value: Buffer | undefined;
    const call = client.makeUnaryRequest<Buffer, Buffer>(
      `/${SERVICE}/${method}`,
      identity,
      identity,
      body,
      metadata,
      { deadline: Date.now() + deadlineMs },
      (_err, v) => {
        value = v ?? undefined;
      },
    );
    call.on('metadata', (m: grpc.Metadata) => {
      headers = appMetadata(m);
    });
    call.on('status', (s: grpc.StatusObject) => {
      resolve({ code: s.code, details: s.details, value, headers, trailers: appMetadata(s.metadata) });
    });
  });
}

const root = new protobuf.Root().loadSync(V2_PROTO_PATH, { keepCase: true });
function encode(type: string, obj: Record<string, unknown>): Buffer {
  const t = root.lookupType(`inference.${type}`);
  return Buffer.from(t.encode(t.fromObject(obj)).finish());
}

function f32(values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeFloatLE(v, i * 4));
  return b;
}

function bytesTensor(items: string[]): Buffer {
  return Buffer.concat(
    items.flatMap((s) => {
      const len = Buffer.alloc(4);
      len.writeUInt32LE(Buffer.byteLength(s), 0);
      return [len, Buffer.from(s)];
    }),
  );
}

const rows = [
  [1, 2, 3, 4],
  [-1, 0.5, 0, 2],
  [0.25, -3, 1.5, -0.75],
];

const typedClassifier: WireInferRequest = {
  model_name: 'classifier',
  model_version: '1',
  id: 'typed-1',
  inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 4], contents: { fp32_contents: rows.flat() } }],
};
const rawClassifier: WireInferRequest = {
  model_name: 'classifier',
  id: 'raw-1',
  inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 4] }],
  raw_input_contents: [f32(rows.flat())],
};
const typedText: WireInferRequest = {
  model_name: 'strings',
  inputs: [
    {
      name: 'text',
      datatype: 'BYTES',
      shape: [2],
      contents: { bytes_contents: [Buffer.from('héllo'), Buffer.from('x')] },
    },
  ],
};
const rawText: WireInferRequest = {
  model_name: 'strings',
  inputs: [{ name: 'text', datatype: 'BYTES', shape: [3] }],
  raw_input_contents: [bytesTensor(['abc', '', 'Zürich'])],
};

function testContext(bus: InProcessBus, config: ConfigInput = {}): RuntimeContext {
  return {
    config: configSchema.parse(config),
    // The proxy never touches the store; a typed stand-in keeps this test free of an engine.
    store: undefined as unknown as Store,
    bus,
    logger: silentLogger,
    metrics: new Registry(),
  };
}

describe('gRPC proxy', () => {
  let upstream: V2GrpcServer;
  let bus: InProcessBus;
  let ctx: RuntimeContext;
  let proxy: Awaited<ReturnType<typeof startGrpcProxy>>;
  let direct: grpc.Client;
  let viaProxy: grpc.Client;
  let consumer: BusConsumer;
  const captured: CapturedCall[] = [];
  const waiters: (() => void)[] = [];

  async function capturesUntil(n: number): Promise<CapturedCall[]> {
    const deadline = Date.now() + 5000;
    while (captured.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${captured.length} of ${n} captures arrived`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return captured;
  }

  beforeAll(async () => {
    upstream = await startV2GrpcServer();
    bus = new InProcessBus();
    ctx = testContext(bus, { sidecar: { grpcUpstream: upstream.address, grpcListen: '127.0.0.1:0' } });
    proxy = await startGrpcProxy(ctx);
    consumer = await bus.consume({
      handler: (batch) => {
        for (const m of batch.messages) captured.push(decodeCapture(m));
        waiters.splice(0).forEach((w) => w());
        return Promise.resolve();
      },
    });
    direct = new grpc.Client(upstream.address, grpc.credentials.createInsecure());
    viaProxy = new grpc.Client(proxy.address, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    direct.close();
    viaProxy.close();
    await proxy.stop();
    await consumer.stop();
    await upstream.stop();
  });

  const cases: [string, grpc.status, string, Buffer, Record<string, string>?][] = [
    ['ServerLive', grpc.status.OK, 'ServerLive', encode('ServerLiveRequest', {})],
    ['ServerReady', grpc.status.OK, 'ServerReady', encode('ServerReadyRequest', {})],
    [
      'ServerMetadata with echoed metadata',
      grpc.status.OK,
      'ServerMetadata',
      encode('ServerMetadataRequest', {}),
      { 'x-echo': 'meta-1' },
    ],
    ['ModelReady known', grpc.status.OK, 'ModelReady', encode('ModelReadyRequest', { name: 'classifier' })],
    [
      'ModelReady unknown → NOT_FOUND',
      grpc.status.NOT_FOUND,
      'ModelReady',
      encode('ModelReadyRequest', { name: 'nope' }),
    ],
    [
      'ModelMetadata classifier',
      grpc.status.OK,
      'ModelMetadata',
      encode('ModelMetadataRequest', { name: 'classifier' }),
    ],
    [
      'ModelMetadata strings',
      grpc.status.OK,
      'ModelMetadata',
      encode('ModelMetadataRequest', { name: 'strings', version: '' }),
    ],
    [
      'ModelMetadata unknown → NOT_FOUND',
      grpc.status.NOT_FOUND,
      'ModelMetadata',
      encode('ModelMetadataRequest', { name: 'ghost' }),
    ],
    [
      'ModelInfer FP32 typed contents',
      grpc.status.OK,
      'ModelInfer',
      encodeInferRequest(typedClassifier),
      { 'x-echo': 'e1' },
    ],
    ['ModelInfer FP32 raw contents', grpc.status.OK, 'ModelInfer', encodeInferRequest(rawClassifier)],
    ['ModelInfer BYTES typed contents', grpc.status.OK, 'ModelInfer', encodeInferRequest(typedText)],
    ['ModelInfer BYTES raw contents', grpc.status.OK, 'ModelInfer', encodeInferRequest(rawText)],
    [
      'ModelInfer unknown model → NOT_FOUND',
      grpc.status.NOT_FOUND,
      'ModelInfer',
      encodeInferRequest({ model_name: 'ghost', inputs: [] }),
      { 'x-echo': 'e2' },
    ],
    [
      'ModelInfer bad shape → INVALID_ARGUMENT',
      grpc.status.INVALID_ARGUMENT,
      'ModelInfer',
      encodeInferRequest({ model_name: 'classifier', inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 3] }] }),
    ],
    [
      'ModelInfer forced UNAVAILABLE',
      grpc.status.UNAVAILABLE,
      'ModelInfer',
      encodeInferRequest(typedClassifier),
      { 'x-fail-with': '14' },
    ],
    ['unimplemented Triton RPC → UNIMPLEMENTED', grpc.status.UNIMPLEMENTED, 'RepositoryIndex', Buffer.alloc(0)],
  ];

  it.each(cases)('%s: through the proxy equals direct', async (_name, expected, method, body, md) => {
    const a = await rawCall(direct, method, body, md);
    expect(a.code).toBe(expected);
    const b = await rawCall(viaProxy, method, body, md);
    expect(b.code).toBe(a.code);
    expect(b.details).toBe(a.details);
    expect(b.headers).toEqual(a.headers);
    expect(b.trailers).toEqual(a.trailers);
    if (a.value === undefined) expect(b.value).toBeUndefined();
    else expect(b.value?.equals(a.value)).toBe(true);
  });

  it('echoes metadata both ways and propagates the failure status', async () => {
    const ok = await rawCall(viaProxy, 'ServerLive', encode('ServerLiveRequest', {}), { 'x-echo': 'abc' });
    expect(ok.code).toBe(grpc.status.OK);
    expect(ok.headers['x-echo']).toBe('abc');
    expect(ok.trailers['x-echo-trailer']).toBe('abc');
    const missing = await rawCall(viaProxy, 'ModelInfer', encodeInferRequest({ model_name: 'ghost', inputs: [] }));
    expect(missing.code).toBe(grpc.status.NOT_FOUND);
    expect(missing.details).toContain("'ghost'");
  });

  it('forwards the bidirectional ModelStreamInfer stream message by message', async () => {
    const stream = (c: grpc.Client): Promise<{ messages: Buffer[]; code: grpc.status }> =>
      new Promise((resolve) => {
        const messages: Buffer[] = [];
        const s = c.makeBidiStreamRequest<Buffer, Buffer>(`/${SERVICE}/ModelStreamInfer`, identity, identity);
        s.on('data', (b: Buffer) => messages.push(b));
        s.on('error', () => {});
        s.on('status', (st: grpc.StatusObject) => resolve({ messages, code: st.code }));
        s.write(encodeInferRequest(typedClassifier));
        s.write(encodeInferRequest({ model_name: 'ghost', inputs: [] }));
        s.write(encodeInferRequest(rawText));
        s.end();
      });
    const a = await stream(direct);
    const b = await stream(viaProxy);
    expect(a.code).toBe(grpc.status.OK);
    expect(a.messages).toHaveLength(3);
    expect(b.code).toBe(a.code);
    expect(b.messages.map((m) => m.toString('hex'))).toEqual(a.messages.map((m) => m.toString('hex')));
  });

  it('serves the typed V2 client: decoded answers equal direct ones', async () => {
    const Service = v2ServiceConstructor();
    type Cb = (err: grpc.ServiceError | null, res?: Record<string, unknown>) => void;
    type Unary = (req: object, cb: Cb) => void;
    const call = (c: grpc.Client, m: string, req: object): Promise<Record<string, unknown>> =>
      new Promise((resolve, reject) => {
        const fn = (c as unknown as Record<string, Unary>)[m]!;
        fn.call(c, req, (err, res) => (err ? reject(err) : resolve(res!)));
      });
    const d = new Service(upstream.address, grpc.credentials.createInsecure());
    const p = new Service(proxy.address, grpc.credentials.createInsecure());
    try {
      const viaP = await call(p, 'ModelInfer', typedClassifier);
      expect(viaP).toEqual(await call(d, 'ModelInfer', typedClassifier));
      const out = (viaP.outputs as { contents: { fp32_contents: number[] } }[])[0]!.contents.fp32_contents;
      expect(out).toEqual(rows.flatMap((r) => classifierProbabilities(r)));
      expect(await call(p, 'ServerMetadata', {})).toEqual(await call(d, 'ServerMetadata', {}));
    } finally {
      d.close();
      p.close();
    }
  });

  it('tees ModelInfer (and only ModelInfer) with bytes, model, status and request id', async () => {
    // Earlier cases' captures may still sit in the shared tee's buffer: flush them through first.
    const lease = acquireTee(ctx);
    await lease.tee.flush();
    await lease.release(0);
    while (bus.bufferedBytes > 0) await new Promise((r) => setTimeout(r, 10));
    captured.length = 0;
    const reqTyped = encodeInferRequest(typedClassifier);
    const reqRaw = encodeInferRequest(rawText);
    const reqGhost = encodeInferRequest({ model_name: 'ghost', model_version: '7', inputs: [] });
    await rawCall(viaProxy, 'ServerLive', encode('ServerLiveRequest', {}));
    const typed = await rawCall(viaProxy, 'ModelInfer', reqTyped, {
      'x-request-id': 'req-typed',
      authorization: 'Bearer s3cret',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    });
    await rawCall(viaProxy, 'ModelMetadata', encode('ModelMetadataRequest', { name: 'classifier' }));
    const raw = await rawCall(viaProxy, 'ModelInfer', reqRaw);
    const ghost = await rawCall(viaProxy, 'ModelInfer', reqGhost, { 'x-request-id': 'req-ghost' });
    const unavailable = await rawCall(viaProxy, 'ModelInfer', reqTyped, {
      'x-fail-with': String(grpc.status.UNAVAILABLE),
    });

    const calls = await capturesUntil(4);
    // Give a stray capture of a non-infer RPC the chance to show up before counting.
    await new Promise((r) => setTimeout(r, 100));
    expect(calls).toHaveLength(4);
    const [c1, c2, c3, c4] = calls as [CapturedCall, CapturedCall, CapturedCall, CapturedCall];

    expect(c1).toMatchObject({
      source: 'grpc',
      requestId: 'req-typed',
      model: 'classifier',
      version: '1',
      route: 'inference.GRPCInferenceService/ModelInfer',
      status: 200,
      error: '',
    });
    expect(c1.request.body.equals(reqTyped)).toBe(true);
    expect(c1.request).toMatchObject({
      size: reqTyped.length,
      truncated: false,
      contentType: 'application/x-protobuf',
    });
    expect(c1.response.body.equals(typed.value!)).toBe(true);
    expect(decodeInferResponse(c1.response.body).model_name).toBe('classifier');
    expect(c1.latencyMs).toBeGreaterThan(0);
    expect(c1.headers.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(c1.headers.authorization).toBeUndefined();
    expect(JSON.stringify(c1)).not.toContain('s3cret');

    expect(c2).toMatchObject({ model: 'strings', version: '', status: 200 });
    expect(c2.requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(c2.request.body.equals(reqRaw)).toBe(true);
    expect(c2.response.body.equals(raw.value!)).toBe(true);
    const rawOut = decodeInferResponse(c2.response.body);
    expect(rawOut.raw_output_contents[0]!.equals(bytesTensor(['ABC', '', 'ZÜRICH']))).toBe(true);

    expect(ghost.code).toBe(grpc.status.NOT_FOUND);
    expect(c3).toMatchObject({ requestId: 'req-ghost', model: 'ghost', version: '7', status: 404 });
    expect(c3.response.size).toBe(0);
    expect(c3.error).toContain('NOT_FOUND');

    expect(unavailable.code).toBe(grpc.status.UNAVAILABLE);
    expect(c4.status).toBe(503);
    expect(new Set(calls.map((c) => c.eventId)).size).toBe(4);
  });

  it('propagates the deadline: DEADLINE_EXCEEDED like direct, and the upstream call is cancelled', async () => {
    const body = encodeInferRequest(typedClassifier);
    const before = upstream.cancelled;
    const a = await rawCall(direct, 'ModelInfer', body, { 'x-delay-ms': '400' }, 100);
    const b = await rawCall(viaProxy, 'ModelInfer', body, { 'x-delay-ms': '400' }, 100);
    expect(a.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(b.code).toBe(a.code);
    const deadline = Date.now() + 3000;
    while (upstream.cancelled < before + 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    // Both upstream calls (direct and the proxy's) saw their caller go away instead of answering.
    expect(upstream.cancelled).toBe(before + 2);
  });

  it('stop() lets an in-flight call finish, then refuses new ones', async () => {
    const p = await startGrpcProxy(testContext(new InProcessBus()), {
      upstream: upstream.address,
      listen: '127.0.0.1:0',
    });
    const c = new grpc.Client(p.address, grpc.credentials.createInsecure());
    try {
      const inflight = rawCall(c, 'ModelInfer', encodeInferRequest(typedClassifier), { 'x-delay-ms': '300' });
      await new Promise((r) => setTimeout(r, 100));
      const stopped = p.stop();
      const res = await inflight;
      expect(res.code).toBe(grpc.status.OK);
      await stopped;
      const after = await rawCall(c, 'ServerLive', encode('ServerLiveRequest', {}), {}, 2000);
      expect(after.code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      c.close();
      await p.stop();
    }
  });

  it('caps captures and marks them truncated, and answers UNAVAILABLE for a dead upstream', async () => {
    const bus2 = new InProcessBus();
    const got: CapturedCall[] = [];
    const cons = await bus2.consume({
      handler: (batch) => {
        for (const m of batch.messages) got.push(decodeCapture(m));
        return Promise.resolve();
      },
    });
    const capped = await startGrpcProxy(testContext(bus2), {
      upstream: upstream.address,
      listen: '127.0.0.1:0',
      maxCaptureBytes: 16,
    });
    const dead = await startGrpcProxy(testContext(bus2), { upstream: '127.0.0.1:1', listen: '127.0.0.1:0' });
    const c1 = new grpc.Client(capped.address, grpc.credentials.createInsecure());
    const c2 = new grpc.Client(dead.address, grpc.credentials.createInsecure());
    try {
      const body = encodeInferRequest(rawClassifier);
      const res = await rawCall(c1, 'ModelInfer', body);
      expect(res.code).toBe(grpc.status.OK);
      const down = await rawCall(c2, 'ModelInfer', body, { 'x-request-id': 'dead-1' });
      expect(down.code).toBe(grpc.status.UNAVAILABLE);
      const deadline = Date.now() + 5000;
      while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const byId = new Map(got.map((c) => [c.requestId, c]));
      const dc = byId.get('dead-1')!;
      expect(dc).toMatchObject({ status: 503, model: 'classifier' });
      expect(dc.error).toContain('UNAVAILABLE');
      const cc = got.find((c) => c.requestId !== 'dead-1')!;
      expect(cc.request).toMatchObject({ size: body.length, truncated: true });
      expect(cc.request.body.equals(body.subarray(0, 16))).toBe(true);
      expect(cc.response.truncated).toBe(true);
      expect(cc.response.size).toBe(res.value!.length);
    } finally {
      c1.close();
      c2.close();
      await capped.stop();
      await dead.stop();
      await cons.stop();
    }
  });

  it('limits message size explicitly: 64 MiB by default, configurable, larger refused with RESOURCE_EXHAUSTED', async () => {
    expect(configSchema.parse({}).sidecar.grpcMaxMessageBytes).toBe(64 * 1024 * 1024);
    const limit = 64 * 1024;
    const sctx = testContext(new InProcessBus(), {
      sidecar: { grpcUpstream: upstream.address, grpcListen: '127.0.0.1:0', grpcMaxMessageBytes: limit },
    });
    const small = await startGrpcProxy(sctx);
    const c = new grpc.Client(small.address, grpc.credentials.createInsecure());
    const request = (n: number): Buffer =>
      encodeInferRequest({
        model_name: 'classifier',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [n, 4] }],
        raw_input_contents: [f32(Array.from({ length: n * 4 }, (_, i) => i % 7))],
      });
    try {
      const under = request(1_000); // 16 KB of tensor
      expect(under.length).toBeLessThan(limit);
      expect((await rawCall(c, 'ModelInfer', under)).code).toBe(grpc.status.OK);
      const over = request(5_000); // 80 KB of tensor
      expect(over.length).toBeGreaterThan(limit);
      const before = upstream.inferCalls;
      const refused = await rawCall(c, 'ModelInfer', over);
      expect(refused.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      // Refused at the proxy: the upstream never saw it.
      expect(upstream.inferCalls).toBe(before);
      // The default limit (64 MiB) carries a message above grpc-js's own 4 MiB default.
      const big = request(300_000); // 4.8 MB
      const viaDefault = await rawCall(viaProxy, 'ModelInfer', big);
      expect(viaDefault.code).toBe(grpc.status.OK);
    } finally {
      c.close();
      await small.stop();
    }
  });
});

describe('gRPC helpers', () => {
  it('maps gRPC status codes to HTTP', () => {
    expect(grpcStatusToHttp(grpc.status.OK)).toBe(200);
    expect(grpcStatusToHttp(grpc.status.INVALID_ARGUMENT)).toBe(400);
    expect(grpcStatusToHttp(grpc.status.NOT_FOUND)).toBe(404);
    expect(grpcStatusToHttp(grpc.status.UNAVAILABLE)).toBe(503);
    expect(grpcStatusToHttp(grpc.status.INTERNAL)).toBe(500);
    expect(grpcStatusToHttp(grpc.status.DEADLINE_EXCEEDED)).toBe(500);
  });

  it('peeks model, version and id whatever the field order, and survives garbage', () => {
    const w = protobuf.Writer.create();
    // raw_input_contents (7) first, then id (3), version (2), model (1).
    w.uint32((7 << 3) | 2).bytes(Buffer.alloc(1000, 1));
    w.uint32((3 << 3) | 2).string('the-id');
    w.uint32((2 << 3) | 2).string('v9');
    w.uint32((1 << 3) | 2).string('m');
    expect(peekInferRequest(Buffer.from(w.finish()))).toEqual({ model: 'm', version: 'v9', id: 'the-id' });
    expect(peekInferRequest(Buffer.from([0x0a, 0xff, 0xff]))).toEqual({ model: '', version: '', id: '' });
  });
});
