// ModelInfer calls teed by the gRPC proxy go through the sidecar's Tee onto the bus, and ingest
// decodes the protobuf bytes into ClickHouse rows with the right features and outputs.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../src/bus/index.js';
import { startIngest, type IngestRole } from '../src/ingest/index.js';
import { startGrpcProxy, Tee } from '../src/sidecar/index.js';
import { Tables, type ClickHouseStore } from '../src/store/index.js';
import { waitFor } from './support/ingest.js';
import { sidecarConfig, sidecarContext } from './support/sidecar.js';
import { openTestStore } from './support/store.js';
import {
  classifierProbabilities,
  encodeInferRequest,
  startV2GrpcServer,
  type V2GrpcServer,
  type WireInferRequest,
} from './support/v2-grpc-server.js';
import { selectRows } from './support/store.js';

const identity = (b: Buffer): Buffer => b;

function infer(client: grpc.Client, req: WireInferRequest, requestId: string): Promise<grpc.status> {
  const md = new grpc.Metadata();
  md.set('x-request-id', requestId);
  return new Promise((resolve) => {
    const call = client.makeUnaryRequest<Buffer, Buffer>(
      '/inference.GRPCInferenceService/ModelInfer',
      identity,
      identity,
      encodeInferRequest(req),
      md,
      () => undefined,
    );
    call.on('status', (s: grpc.StatusObject) => resolve(s.code));
  });
}

function f32(values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeFloatLE(v, i * 4));
  return b;
}

const rows = [
  [1, 2, 3, 4],
  [-1, 0.5, 0, 2],
];

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let upstream: V2GrpcServer;
let proxy: Awaited<ReturnType<typeof startGrpcProxy>>;
let ingest: IngestRole;
let tee: Tee;
let client: grpc.Client;

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  upstream = await startV2GrpcServer();
  const bus = new InProcessBus();
  const ctx = sidecarContext(
    sidecarConfig({ sidecar: { grpcUpstream: upstream.address, grpcListen: '127.0.0.1:0' } }),
    bus,
    store,
  );
  tee = new Tee(bus, { registry: ctx.metrics, flushIntervalMs: 10 });
  tee.start();
  proxy = await startGrpcProxy(ctx, { sink: tee });
  ingest = await startIngest(ctx);
  await ingest.ready;
  client = new grpc.Client(proxy.address, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client.close();
  await proxy.stop();
  await tee.close(2000);
  await ingest.stop();
  await upstream.stop();
  await cleanup();
});

describe('gRPC capture → ingest → ClickHouse', () => {
  it('stores typed, raw, BYTES and failed ModelInfer calls with their features and outputs', async () => {
    const codes = [
      await infer(
        client,
        {
          model_name: 'classifier',
          model_version: '1',
          inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 4], contents: { fp32_contents: rows.flat() } }],
        },
        'g-typed',
      ),
      await infer(
        client,
        {
          model_name: 'classifier',
          inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 4] }],
          raw_input_contents: [f32(rows.flat())],
        },
        'g-raw',
      ),
      await infer(
        client,
        {
          model_name: 'strings',
          inputs: [
            {
              name: 'text',
              datatype: 'BYTES',
              shape: [2],
              contents: { bytes_contents: [Buffer.from('ab'), Buffer.from('héllo')] },
            },
          ],
        },
        'g-bytes',
      ),
      await infer(client, { model_name: 'ghost', inputs: [] }, 'g-ghost'),
    ];
    expect(codes).toEqual([grpc.status.OK, grpc.status.OK, grpc.status.OK, grpc.status.NOT_FOUND]);

    await waitFor(
      async () => {
        const rs = selectRows(store, {
          query: `SELECT count() AS n FROM ${Tables.requests}`,
          format: 'JSONEachRow',
        });
        const [row] = await rs.json<{ n: string }>();
        return Number(row?.n) >= 4;
      },
      20_000,
      'requests stored',
    );
    const rs = selectRows(store, {
      query: `SELECT request_id, model, version, status, source FROM ${Tables.requests} ORDER BY request_id`,
      format: 'JSONEachRow',
    });
    const reqs = await rs.json<{
      request_id: string;
      model: string;
      version: string;
      status: number;
      source: string;
    }>();
    expect(reqs.map((r) => [r.request_id, r.model, Number(r.status), r.source])).toEqual([
      ['g-bytes', 'strings', 200, 'grpc'],
      ['g-ghost', 'ghost', 404, 'grpc'],
      ['g-raw', 'classifier', 200, 'grpc'],
      ['g-typed', 'classifier', 200, 'grpc'],
    ]);

    const ps = selectRows(store, {
      query: `SELECT request_id, row, features_num, features_cat, outputs_num, outputs_cat FROM ${Tables.predictions} ORDER BY request_id, row`,
      format: 'JSONEachRow',
    });
    const preds = await ps.json<{
      request_id: string;
      row: number;
      features_num: Record<string, number>;
      features_cat: Record<string, string>;
      outputs_num: Record<string, number>;
      outputs_cat: Record<string, string>;
    }>();
    for (const id of ['g-typed', 'g-raw']) {
      const mine = preds.filter((p) => p.request_id === id);
      expect(mine, id).toHaveLength(2);
      mine.forEach((p, k) => {
        const x = rows[k]!;
        for (let j = 0; j < 4; j++) expect(p.features_num[`input_${j}`]).toBeCloseTo(x[j]!, 6);
        const [p0, p1] = classifierProbabilities(x);
        expect(p.outputs_num.probabilities_0).toBeCloseTo(p0, 6);
        expect(p.outputs_num.probabilities_1).toBeCloseTo(p1, 6);
      });
    }
    const text = preds.filter((p) => p.request_id === 'g-bytes');
    expect(text.map((p) => p.features_cat.text)).toEqual(['ab', 'héllo']);
    expect(text.map((p) => p.outputs_cat.upper)).toEqual(['AB', 'HÉLLO']);
    expect(text.map((p) => Number(p.outputs_num.length))).toEqual([2, 6]);
    expect(tee.stats()).toMatchObject({ captured: 4, sent: 4, dropped: 0, buffered: 0 });
  });
});
