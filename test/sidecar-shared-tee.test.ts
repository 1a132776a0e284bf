import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus, decodeCapture, type CapturedCall } from '../src/bus/index.js';
import { acquireTee, startGrpcProxy, startSidecar } from '../src/sidecar/index.js';
import type { RuntimeContext } from '../src/runtime/index.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { call, sidecarConfig, sidecarContext } from './support/sidecar.js';
import { openTestStore } from './support/store.js';
import { encodeInferRequest, startV2GrpcServer, type V2GrpcServer } from './support/v2-grpc-server.js';
import { startV2Server, type TestV2Server } from './support/v2-server.js';

// REST and gRPC captures of one process go through one byte-bounded tee with one set of counters.
let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let rest: TestV2Server;
let grpcUp: V2GrpcServer;
let bus: InProcessBus;
let ctx: RuntimeContext;
const captured: CapturedCall[] = [];

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  rest = await startV2Server();
  grpcUp = await startV2GrpcServer();
  bus = new InProcessBus();
  ctx = sidecarContext(sidecarConfig({ sidecar: { upstream: rest.url, listen: '127.0.0.1:0' } }), bus, store);
  await bus.consume({
    handler: (batch) => {
      for (const m of batch.messages) captured.push(decodeCapture(m));
      return Promise.resolve();
    },
  });
});
afterAll(async () => {
  await rest.stop();
  await grpcUp.stop();
  await cleanup();
});

const identity = (b: Buffer): Buffer => b;

describe('shared tee', () => {
  it('counts REST and gRPC captures in one tee and closes it when the last role stops', async () => {
    const sidecar = await startSidecar(ctx);
    const proxy = await startGrpcProxy(ctx, { upstream: grpcUp.address, listen: '127.0.0.1:0' });
    const lease = acquireTee(ctx);
    expect(lease.tee).toBe(sidecar.tee);
    await lease.release(0);

    const body = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
    const r = await call(sidecar.url, '/v2/models/classifier/infer', {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    });
    expect(r.status).toBe(200);

    const client = new grpc.Client(proxy.address, grpc.credentials.createInsecure());
    const req = encodeInferRequest({
      model_name: 'classifier',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], contents: { fp32_contents: [1, 2, 3, 4] } }],
    });
    await new Promise<void>((resolve, reject) => {
      client.makeUnaryRequest('/inference.GRPCInferenceService/ModelInfer', identity, identity, req, (err) =>
        err ? reject(err) : resolve(),
      );
    });
    client.close();

    await sidecar.tee.flush();
    const stats = sidecar.tee.stats();
    expect(stats.captured).toBe(2);
    expect(stats.sent + stats.dropped + stats.buffered).toBe(stats.captured);
    while (captured.length < 2) await new Promise((res) => setTimeout(res, 10));
    expect(captured.map((c) => c.source).sort()).toEqual(['grpc', 'rest']);

    // The gRPC proxy stopping first must not close the tee the sidecar still uses.
    await proxy.stop();
    const r2 = await call(sidecar.url, '/v2/models/classifier/infer', {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json' },
    });
    expect(r2.status).toBe(200);
    await sidecar.stop();
    expect(sidecar.tee.stats().captured).toBe(3);
    expect(sidecar.tee.stats().sent).toBe(3);
    // After the last holder released it, a new acquire builds a fresh tee.
    const fresh = acquireTee(ctx);
    expect(fresh.tee).not.toBe(sidecar.tee);
    await fresh.release(0);
  });
});
