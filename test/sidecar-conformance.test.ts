// The REST sidecar is transparent: every call through it equals the same call made directly to the
// upstream (status, headers that matter, body bytes), and every inference call it tees lands in
// ClickHouse with the right features and outputs.
import { connect } from 'node:net';
import { gzipSync, deflateSync } from 'node:zlib';
import { request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus, decodeCapture, type CapturedCall } from '../src/bus/index.js';
import { startIngest, type IngestRole } from '../src/ingest/index.js';
import { startSidecar, type RunningSidecar } from '../src/sidecar/index.js';
import { Tables, type ClickHouseStore } from '../src/store/index.js';
import { waitFor } from './support/ingest.js';
import { RecordingBus, call, sidecarConfig, sidecarContext, testAgent, type RawResponse } from './support/sidecar.js';
import { openTestStore } from './support/store.js';
import {
  classifierP1,
  decodeBinaryResponse,
  encodeBinaryRequest,
  startV2Server,
  type TestV2Server,
} from './support/v2-server.js';
import { selectRows } from './support/store.js';

interface Case {
  name: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Expected upstream status (checked on the direct call too, so the case tests what it says). */
  status: number;
  /** Inference call the tee must capture: model, version. */
  infer?: { model: string; version: string };
}

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v), 'utf8');
const JSON_CT = { 'content-type': 'application/json' };
const rowsA = [
  [0.1, 0.2, 0.3, 0.4],
  [1.5, -2.0, 0.25, 3.0],
  [-1.0, 0.0, 2.5, -0.5],
];
const flatReq = json({ inputs: [{ name: 'input', shape: [3, 4], datatype: 'FP32', data: rowsA.flat() }] });
const nestedReq = json({ id: 'nested-1', inputs: [{ name: 'input', shape: [3, 4], datatype: 'FP32', data: rowsA }] });
const texts = ['hello', 'Grüße', '日本語テキスト', ''];
const bytesReq = json({ inputs: [{ name: 'text', shape: [4], datatype: 'BYTES', data: texts }] });
const binReq = encodeBinaryRequest([{ name: 'input', datatype: 'FP32', shape: [3, 4], data: rowsA.flat() }]);
const binReqBinOut = encodeBinaryRequest([{ name: 'input', datatype: 'FP32', shape: [3, 4], data: rowsA.flat() }], {
  binaryOutput: true,
});
const binBytes = encodeBinaryRequest([{ name: 'text', datatype: 'BYTES', shape: [4], data: texts }], {
  binaryOutput: true,
});
const binHeader = (hl: number): Record<string, string> => ({
  'content-type': 'application/octet-stream',
  'inference-header-content-length': String(hl),
});

const cases: Case[] = [
  { name: 'server metadata', method: 'GET', path: '/v2', status: 200 },
  { name: 'health live', method: 'GET', path: '/v2/health/live', status: 200 },
  { name: 'health ready', method: 'GET', path: '/v2/health/ready', status: 200 },
  { name: 'model metadata', method: 'GET', path: '/v2/models/classifier', status: 200 },
  { name: 'versioned model metadata', method: 'GET', path: '/v2/models/classifier/versions/1', status: 200 },
  { name: 'model ready', method: 'GET', path: '/v2/models/classifier/ready', status: 200 },
  { name: 'versioned model ready', method: 'GET', path: '/v2/models/strings/versions/1/ready', status: 200 },
  { name: 'unknown model metadata 404', method: 'GET', path: '/v2/models/nope', status: 404 },
  {
    name: 'infer JSON flat',
    method: 'POST',
    path: '/v2/models/classifier/infer',
    headers: JSON_CT,
    body: flatReq,
    status: 200,
    infer: { model: 'classifier', version: '' },
  },
  {
    name: 'infer JSON nested, versioned',
    method: 'POST',
    path: '/v2/models/classifier/versions/2/infer',
    headers: JSON_CT,
    body: nestedReq,
    status: 200,
    infer: { model: 'classifier', version: '2' },
  },
  {
    name: 'infer BYTES JSON (multi-byte UTF-8)',
    method: 'POST',
    path: '/v2/models/strings/infer',
    headers: JSON_CT,
    body: bytesReq,
    status: 200,
    infer: { model: 'strings', version: '' },
  },
  {
    name: 'infer binary request, JSON response',
    method: 'POST',
    path: '/v2/models/classifier/versions/1/infer',
    headers: binHeader(binReq.headerLength),
    body: binReq.body,
    status: 200,
    infer: { model: 'classifier', version: '1' },
  },
  {
    name: 'infer binary request and response',
    method: 'POST',
    path: '/v2/models/classifier/infer',
    headers: binHeader(binReqBinOut.headerLength),
    body: binReqBinOut.body,
    status: 200,
    infer: { model: 'classifier', version: '' },
  },
  {
    name: 'infer BYTES binary both ways',
    method: 'POST',
    path: '/v2/models/strings/versions/1/infer',
    headers: binHeader(binBytes.headerLength),
    body: binBytes.body,
    status: 200,
    infer: { model: 'strings', version: '1' },
  },
  {
    name: 'infer gzip request body',
    method: 'POST',
    path: '/v2/models/classifier/infer',
    headers: { ...JSON_CT, 'content-encoding': 'gzip' },
    body: gzipSync(flatReq),
    status: 200,
    infer: { model: 'classifier', version: '' },
  },
  {
    name: 'infer deflate request body',
    method: 'POST',
    path: '/v2/models/strings/infer',
    headers: { ...JSON_CT, 'content-encoding': 'deflate' },
    body: deflateSync(bytesReq),
    status: 200,
    infer: { model: 'strings', version: '' },
  },
  {
    name: 'infer gzip response body',
    method: 'POST',
    path: '/v2/models/classifier/infer',
    headers: { ...JSON_CT, 'x-test-gzip-response': '1' },
    body: flatReq,
    status: 200,
    infer: { model: 'classifier', version: '' },
  },
  {
    name: 'infer query string kept',
    method: 'POST',
    path: '/v2/models/classifier/infer?trace=1&x=%20y',
    headers: JSON_CT,
    body: flatReq,
    status: 200,
    infer: { model: 'classifier', version: '' },
  },
  {
    name: 'infer bad JSON 400',
    method: 'POST',
    path: '/v2/models/classifier/infer',
    headers: JSON_CT,
    body: Buffer.from('{"inputs": [', 'utf8'),
    status: 400,
    infer: { model: 'classifier', version: '' },
  },
  {
    name: 'infer header length past the end 400',
    method: 'POST',
    path: '/v2/models/classifier/infer',
    headers: binHeader(binReq.body.length + 50),
    body: binReq.body,
    status: 400,
    infer: { model: 'classifier', version: '' },
  },
  {
    name: 'infer wrong shape 400',
    method: 'POST',
    path: '/v2/models/classifier/infer',
    headers: JSON_CT,
    body: json({ inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', data: [1, 2, 3] }] }),
    status: 400,
    infer: { model: 'classifier', version: '' },
  },
  {
    name: 'infer unknown model 404',
    method: 'POST',
    path: '/v2/models/nope/infer',
    headers: JSON_CT,
    body: flatReq,
    status: 404,
    infer: { model: 'nope', version: '' },
  },
  {
    name: 'infer upstream 503',
    method: 'POST',
    path: '/v2/models/classifier/infer',
    headers: { ...JSON_CT, 'x-test-fail': '503' },
    body: flatReq,
    status: 503,
    infer: { model: 'classifier', version: '' },
  },
  {
    name: 'infer upstream 500',
    method: 'POST',
    path: '/v2/models/strings/infer',
    headers: { ...JSON_CT, 'x-test-fail': '500' },
    body: bytesReq,
    status: 500,
    infer: { model: 'strings', version: '' },
  },
  { name: 'unknown route 404', method: 'GET', path: '/no/such/route?q=1', status: 404 },
  { name: 'HEAD', method: 'HEAD', path: '/test/echo', status: 200 },
  { name: 'DELETE', method: 'DELETE', path: '/test/echo', headers: { 'x-custom': 'del' }, status: 200 },
  {
    name: 'PUT with body',
    method: 'PUT',
    path: '/test/echo',
    headers: { 'content-type': 'text/plain', 'x-custom': 'put' },
    body: Buffer.from('put body ✓', 'utf8'),
    status: 200,
  },
  {
    name: 'PATCH with body',
    method: 'PATCH',
    path: '/test/echo?a=1&b=two',
    headers: JSON_CT,
    body: json({ patch: true }),
    status: 200,
  },
  { name: 'OPTIONS', method: 'OPTIONS', path: '/test/echo', status: 200 },
  { name: 'multiple set-cookie and custom headers', method: 'GET', path: '/test/cookies', status: 200 },
  { name: 'chunked response', method: 'GET', path: '/test/chunked', status: 200 },
  { name: 'GET on infer route 405', method: 'GET', path: '/v2/models/classifier/infer', status: 405 },
  {
    name: 'SSE generate_stream',
    method: 'POST',
    path: '/v2/models/classifier/generate_stream',
    headers: { ...JSON_CT, 'x-test-interval-ms': '5' },
    body: json({ text_input: 'hi' }),
    status: 200,
  },
];

// Headers whose value must be identical through the sidecar (Date and connection management differ by nature).
const MATTER = [
  'content-type',
  'content-length',
  'content-encoding',
  'inference-header-content-length',
  'set-cookie',
  'x-custom-response',
  'cache-control',
  'x-echo-method',
];

let upstream: TestV2Server;
let sidecar: RunningSidecar;
let ingest: IngestRole;
let store: ClickHouseStore;
let cleanup: () => Promise<void>;
const recorded = new RecordingBus(new InProcessBus());
const results = new Map<string, { direct: RawResponse; proxied: RawResponse }>();

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  upstream = await startV2Server();
  const ctx = sidecarContext(sidecarConfig({ sidecar: { upstream: upstream.url } }), recorded, store);
  sidecar = await startSidecar(ctx);
  ingest = await startIngest(ctx);
  await ingest.ready;
  for (const [i, c] of cases.entries()) {
    const init = {
      method: c.method,
      headers: { ...c.headers, 'x-request-id': `case-${i}` },
      ...(c.body ? { body: c.body } : {}),
    };
    const direct = await call(upstream.url, c.path, init);
    const proxied = await call(sidecar.url, c.path, init);
    results.set(c.name, { direct, proxied });
  }
});

afterAll(async () => {
  await sidecar?.stop();
  await ingest?.stop();
  await upstream?.stop();
  await testAgent.close();
  await cleanup?.();
});

describe('sidecar conformance: through the sidecar equals direct', () => {
  it('has at least 25 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(25);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const r = results.get(c.name);
    expect(r).toBeDefined();
    const { direct, proxied } = r!;
    expect(direct.status).toBe(c.status);
    expect(proxied.status).toBe(direct.status);
    expect(proxied.body.equals(direct.body)).toBe(true);
    for (const h of MATTER) expect([h, proxied.headers[h]]).toEqual([h, direct.headers[h]]);
    expect(proxied.headers['x-request-id']).toBeDefined();
  });
});

describe('sidecar tee', () => {
  const captures = (): Map<string, CapturedCall> => {
    const m = new Map<string, CapturedCall>();
    for (const msg of recorded.published) {
      const c = decodeCapture(msg);
      m.set(c.requestId, c);
    }
    return m;
  };

  it('captures every inference call exactly, and nothing else', async () => {
    const inferCases = cases.filter((c) => c.infer);
    await waitFor(() => sidecar.tee.stats().sent >= inferCases.length, 10_000, 'tee to send');
    const got = captures();
    expect(got.size).toBe(inferCases.length);
    for (const [i, c] of cases.entries()) {
      const cap = got.get(`case-${i}`);
      if (!c.infer) {
        expect(cap).toBeUndefined();
        continue;
      }
      expect(cap, c.name).toBeDefined();
      const proxied = results.get(c.name)!.proxied;
      expect(cap!.model).toBe(c.infer.model);
      expect(cap!.version).toBe(c.infer.version);
      expect(cap!.status).toBe(c.status);
      expect(cap!.method).toBe('POST');
      // The captured route keeps no query parameters unless allow-listed (sidecar.captureQueryParams).
      expect(cap!.route).toBe(c.path.split('?')[0]);
      expect(cap!.source).toBe('rest');
      expect(cap!.error).toBe('');
      expect(cap!.request.body.equals(c.body!)).toBe(true);
      expect(cap!.request.size).toBe(c.body!.length);
      expect(cap!.request.truncated).toBe(false);
      expect(cap!.request.contentType).toBe(c.headers?.['content-type'] ?? '');
      expect(cap!.request.contentEncoding).toBe(c.headers?.['content-encoding'] ?? '');
      const hl = c.headers?.['inference-header-content-length'];
      expect(cap!.request.headerLength).toBe(hl === undefined ? undefined : Number(hl));
      expect(cap!.response.body.equals(proxied.body)).toBe(true);
      expect(cap!.response.size).toBe(proxied.body.length);
      expect(cap!.response.contentType).toBe(proxied.headers['content-type']);
      const rhl = proxied.headers['inference-header-content-length'];
      expect(cap!.response.headerLength).toBe(rhl === undefined ? undefined : Number(rhl));
      expect(cap!.latencyMs).toBeGreaterThan(0);
      expect(cap!.headers['content-type']).toBe(c.headers?.['content-type']);
      expect(cap!.eventId).toMatch(/^[0-9a-f-]{36}$/);
    }
    const s = sidecar.tee.stats();
    expect(s.captured).toBe(s.sent + s.dropped + s.buffered);
    expect(s.dropped).toBe(0);
  });

  it('stores the teed calls in ClickHouse with the right features and outputs', async () => {
    const inferCases = cases.map((c, i) => ({ c, i })).filter(({ c }) => c.infer);
    await waitFor(
      async () => {
        const rs = selectRows(store, { query: `SELECT count() AS n FROM ${Tables.requests}`, format: 'JSONEachRow' });
        const [row] = await rs.json<{ n: string }>();
        return Number(row?.n) >= inferCases.length;
      },
      20_000,
      'requests stored',
    );
    const rs = selectRows(store, {
      query: `SELECT request_id, model, version, status, rows FROM ${Tables.requests} ORDER BY request_id`,
      format: 'JSONEachRow',
    });
    const reqs = new Map(
      (await rs.json<{ request_id: string; model: string; version: string; status: number; rows: string }>()).map(
        (r) => [r.request_id, r],
      ),
    );
    for (const { c, i } of inferCases) {
      const r = reqs.get(`case-${i}`);
      expect(r, c.name).toBeDefined();
      expect(r!.model).toBe(c.infer!.model);
      expect(Number(r!.status)).toBe(c.status);
    }
    const ps = selectRows(store, {
      query: `SELECT request_id, row, model, version, features_num, features_cat, outputs_num, outputs_cat FROM ${Tables.predictions} ORDER BY request_id, row`,
      format: 'JSONEachRow',
    });
    const preds = await ps.json<{
      request_id: string;
      row: number;
      model: string;
      version: string;
      features_num: Record<string, number>;
      features_cat: Record<string, string>;
      outputs_num: Record<string, number>;
      outputs_cat: Record<string, string>;
    }>();
    const byReq = new Map<string, typeof preds>();
    for (const p of preds) byReq.set(p.request_id, [...(byReq.get(p.request_id) ?? []), p]);
    for (const { c, i } of inferCases) {
      const rows = byReq.get(`case-${i}`) ?? [];
      if (c.status !== 200) {
        // Failed calls are stored as request records; they carry no outputs.
        for (const r of rows) expect(Object.keys(r.outputs_num)).toHaveLength(0);
        continue;
      }
      if (c.infer!.model === 'classifier') {
        expect(rows, c.name).toHaveLength(3);
        const version = c.infer!.version === '' ? '2' : c.infer!.version;
        rows.forEach((r, k) => {
          const x = rowsA[k]!;
          for (let j = 0; j < 4; j++) expect(r.features_num[`input_${j}`]).toBeCloseTo(Math.fround(x[j]!), 6);
          expect(r.outputs_num.probabilities_1).toBeCloseTo(classifierP1(x, version), 6);
          expect(r.outputs_num.probabilities_0).toBeCloseTo(1 - classifierP1(x, version), 6);
        });
      } else {
        expect(rows, c.name).toHaveLength(texts.length);
        rows.forEach((r, k) => {
          expect(r.features_cat.text).toBe(texts[k]);
          expect(r.outputs_num.length).toBe([...texts[k]!].length);
          expect(r.outputs_cat.upper).toBe(texts[k]!.toUpperCase());
        });
      }
    }
  });

  it('decodes binary-extension responses the way the upstream encoded them', () => {
    const r = results.get('infer binary request and response')!.proxied;
    const { outputs } = decodeBinaryResponse(r.body, Number(r.headers['inference-header-content-length']));
    expect(outputs.probabilities?.[1]).toBeCloseTo(classifierP1(rowsA[0]!, '2'), 6);
  });
});

describe('sidecar request ids, streaming and metrics', () => {
  it('mints a UUIDv7 request id when none is given, returns it and captures under it', async () => {
    const res = await call(sidecar.url, '/v2/models/classifier/infer', {
      method: 'POST',
      headers: JSON_CT,
      body: flatReq,
    });
    const id = res.headers['x-request-id'] as string;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    await waitFor(() => recorded.published.some((m) => m.key === id), 5_000, 'capture');
  });

  it('propagates x-request-id and uses ce-id when there is none', async () => {
    const echo = await call(sidecar.url, '/v2/models/classifier/infer', {
      method: 'POST',
      headers: { ...JSON_CT, 'ce-id': 'cloud-event-7', authorization: 'Bearer secret', cookie: 'k=v' },
      body: flatReq,
    });
    expect(echo.headers['x-request-id']).toBe('cloud-event-7');
    await waitFor(() => recorded.published.some((m) => m.key === 'cloud-event-7'), 5_000, 'capture');
    const cap = decodeCapture(recorded.published.find((m) => m.key === 'cloud-event-7')!);
    expect(cap.headers.authorization).toBeUndefined();
    expect(cap.headers.cookie).toBeUndefined();
  });

  it('drops hop-by-hop request headers, including those named in Connection, and keeps the rest', async () => {
    const raw = async (port: number): Promise<Record<string, unknown>> => {
      const text = await new Promise<string>((resolve, reject) => {
        const s = connect(port, '127.0.0.1', () =>
          s.write(
            'GET /test/echo HTTP/1.1\r\nHost: x\r\nConnection: close, X-Drop-Me\r\nX-Drop-Me: 1\r\n' +
              'Keep-Alive: timeout=5\r\nTE: trailers\r\nX-Custom: kept\r\nX-Request-Id: hop-1\r\n\r\n',
          ),
        );
        let got = '';
        s.on('data', (d: Buffer) => (got += d.toString('utf8')));
        s.on('end', () => resolve(got));
        s.on('error', reject);
      });
      return JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Record<string, unknown>;
    };
    const direct = await raw(upstream.port);
    const proxied = await raw(Number(new URL(sidecar.url).port));
    expect(direct.hop).toEqual({ dropMe: '1', keepAlive: 'timeout=5', te: 'trailers', upgrade: null });
    expect(proxied.hop).toEqual({ dropMe: null, keepAlive: null, te: null, upgrade: null });
    expect(proxied.custom).toBe('kept');
    expect(proxied.requestId).toBe('hop-1');
  });

  it('streams server-sent events as they are produced', async () => {
    const t0 = Date.now();
    const res = await undiciRequest(`${sidecar.url}/v2/models/classifier/generate_stream`, {
      method: 'POST',
      headers: { ...JSON_CT, 'x-test-chunks': '4', 'x-test-interval-ms': '300' },
      body: '{}',
      dispatcher: testAgent,
    });
    const arrivals: number[] = [];
    let text = '';
    for await (const chunk of res.body) {
      arrivals.push(Date.now() - t0);
      text += (chunk as Buffer).toString('utf8');
    }
    const end = Date.now() - t0;
    expect(res.headers['content-type']).toBe('text/event-stream');
    expect(text.match(/^data: /gm)).toHaveLength(4);
    // The upstream needs ≥ 900 ms to finish; the first event must be at the client long before that.
    expect(end).toBeGreaterThanOrEqual(880);
    expect(arrivals[0]).toBeLessThan(end - 600);
    expect(arrivals.length).toBeGreaterThanOrEqual(3);
  });

  it('serves its own Prometheus metrics at GET /metrics', async () => {
    const res = await call(sidecar.url, '/metrics');
    expect(res.status).toBe(200);
    const text = res.body.toString('utf8');
    expect(text).toMatch(/modelwatch_sidecar_requests_total\{model="classifier",version="2",status="200"\} [1-9]/);
    expect(text).toMatch(/modelwatch_sidecar_request_failures_total\{model="classifier",version="",status="503"\} 1/);
    expect(text).toMatch(
      /modelwatch_sidecar_request_duration_seconds_bucket\{le="\+Inf",model="classifier",version="1"\} [1-9]/,
    );
    expect(text).toMatch(/modelwatch_sidecar_response_bytes_total\{model="strings",version="1"\} [1-9]/);
    const s = sidecar.tee.stats();
    expect(text).toMatch(/modelwatch_tee_captured_total [1-9]/);
    expect(text).toContain('modelwatch_tee_dropped_total{reason="buffer_full"} 0');
    expect(text).toContain('modelwatch_tee_buffered_records');
    expect(text).toContain('modelwatch_sidecar_upstream_errors_total{reason="connect"} 0');
    expect(s.captured).toBe(s.sent + s.dropped + s.buffered);
    // /metrics with another method, or any other path, goes to the upstream.
    const posted = await call(sidecar.url, '/metrics', { method: 'POST', body: 'x' });
    expect(posted.status).toBe(404);
  });
});
