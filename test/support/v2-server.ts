// A real HTTP server speaking the V2 (Open Inference Protocol) REST API, for tests and benchmarks.
// Two models: `classifier` (FP32 [batch,4] → probabilities FP32 [batch,2], logistic regression with
// fixed weights; versions 1 and 2 differ in bias) and `strings` (BYTES [batch] → length INT32 and
// upper BYTES). JSON and the Triton binary extension in and out, gzip/deflate request bodies, errors in
// V2 shape, a server-sent-event `generate_stream`, and fault knobs (delay, reset, fail).
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync, gzipSync, inflateSync } from 'node:zlib';

/** Classifier weights and per-version bias. */
export const CLASSIFIER = {
  weights: [0.8, -0.5, 0.3, 1.2],
  bias: { '1': -0.1, '2': 0.2 } as Record<string, number>,
} as const;

/**
 * Fault knobs; per-request headers `x-test-delay-ms`, `x-test-reset`, `x-test-fail` override them
 * (`x-test-sink: 1` makes any route stream-hash the body and answer `{bytes, sha256}`).
 */
export interface V2ServerKnobs {
  /** Delay before answering any request. */
  delayMs: number;
  /** Destroy the connection instead of answering. */
  reset: boolean;
  /** Answer every request with this status (V2 error body) when non-zero. */
  failStatus: number;
  /** Chunks sent by `generate_stream`. */
  streamChunks: number;
  /** Gap between `generate_stream` chunks. */
  streamIntervalMs: number;
}

/** A running test V2 server. */
export interface TestV2Server {
  url: string;
  port: number;
  server: Server;
  knobs: V2ServerKnobs;
  /** Requests received. */
  requests: number;
  stop(): Promise<void>;
}

/** A tensor as a test builds it. */
export interface TestTensor {
  name: string;
  datatype: 'FP32' | 'BYTES' | 'INT32' | 'FP64';
  shape: number[];
  data: number[] | string[];
}

/** P(class 1) of the classifier for one row. */
export function classifierP1(row: number[], version = '1'): number {
  let z = CLASSIFIER.bias[version] ?? 0;
  for (let j = 0; j < 4; j++) z += (CLASSIFIER.weights[j] as number) * (row[j] as number);
  return 1 / (1 + Math.exp(-z));
}

/** Encodes a tensor's elements as binary-extension bytes (little-endian; BYTES length-prefixed). */
export function tensorBytes(t: Pick<TestTensor, 'datatype' | 'data'>): Buffer {
  switch (t.datatype) {
    case 'FP32': {
      const b = Buffer.alloc(4 * t.data.length);
      t.data.forEach((v, i) => b.writeFloatLE(Number(v), 4 * i));
      return b;
    }
    case 'FP64': {
      const b = Buffer.alloc(8 * t.data.length);
      t.data.forEach((v, i) => b.writeDoubleLE(Number(v), 8 * i));
      return b;
    }
    case 'INT32': {
      const b = Buffer.alloc(4 * t.data.length);
      t.data.forEach((v, i) => b.writeInt32LE(Number(v), 4 * i));
      return b;
    }
    case 'BYTES': {
      const parts: Buffer[] = [];
      for (const v of t.data) {
        const s = Buffer.from(String(v), 'utf8');
        const len = Buffer.alloc(4);
        len.writeUInt32LE(s.length, 0);
        parts.push(len, s);
      }
      return Buffer.concat(parts);
    }
  }
}

function readTensor(datatype: string, buf: Buffer, count: number): number[] | string[] {
  switch (datatype) {
    case 'FP32':
      return Array.from({ length: count }, (_, i) => buf.readFloatLE(4 * i));
    case 'FP64':
      return Array.from({ length: count }, (_, i) => buf.readDoubleLE(8 * i));
    case 'INT32':
      return Array.from({ length: count }, (_, i) => buf.readInt32LE(4 * i));
    case 'BYTES': {
      const out: string[] = [];
      let o = 0;
      while (o + 4 <= buf.length && out.length < count) {
        const n = buf.readUInt32LE(o);
        if (o + 4 + n > buf.length) throw new Error('BYTES element runs past the tensor end');
        out.push(buf.subarray(o + 4, o + 4 + n).toString('utf8'));
        o += 4 + n;
      }
      return out;
    }
    default:
      throw new Error(`datatype ${datatype} not supported by the test server`);
  }
}

/**
 * Builds a binary-extension request body: a JSON header naming each input's `binary_data_size`,
 * followed by the tensors' bytes. Returns the body and the value of `Inference-Header-Content-Length`.
 */
export function encodeBinaryRequest(
  inputs: TestTensor[],
  opts: { binaryOutput?: boolean; id?: string } = {},
): { body: Buffer; headerLength: number } {
  const blobs = inputs.map((t) => tensorBytes(t));
  const header: Record<string, unknown> = {
    inputs: inputs.map((t, i) => ({
      name: t.name,
      shape: t.shape,
      datatype: t.datatype,
      parameters: { binary_data_size: (blobs[i] as Buffer).length },
    })),
  };
  if (opts.id !== undefined) header.id = opts.id;
  if (opts.binaryOutput === true) header.parameters = { binary_data_output: true };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  return { body: Buffer.concat([json, ...blobs]), headerLength: json.length };
}

/** Splits a binary-extension response into its JSON header and decoded outputs. */
export function decodeBinaryResponse(
  body: Buffer,
  headerLength: number,
): { header: Record<string, unknown>; outputs: Record<string, number[] | string[]> } {
  const header = JSON.parse(body.subarray(0, headerLength).toString('utf8')) as {
    outputs: {
      name: string;
      datatype: string;
      shape: number[];
      parameters?: { binary_data_size?: number };
      data?: number[] | string[];
    }[];
  };
  const outputs: Record<string, number[] | string[]> = {};
  let o = headerLength;
  for (const out of header.outputs) {
    const count = out.shape.reduce((a, b) => a * b, 1);
    const size = out.parameters?.binary_data_size;
    if (size === undefined) {
      outputs[out.name] = out.data ?? [];
      continue;
    }
    outputs[out.name] = readTensor(out.datatype, body.subarray(o, o + size), count);
    o += size;
  }
  return { header, outputs };
}

interface V2Input {
  name?: unknown;
  shape?: unknown;
  datatype?: unknown;
  parameters?: { binary_data_size?: unknown };
  data?: unknown;
}

interface V2Request {
  id?: unknown;
  parameters?: { binary_data_output?: unknown };
  inputs?: unknown;
  outputs?: { name?: unknown; parameters?: { binary_data?: unknown } }[];
}

class V2Error extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function flatten(v: unknown, out: unknown[] = []): unknown[] {
  if (Array.isArray(v)) for (const x of v) flatten(x, out);
  else out.push(v);
  return out;
}

const MODELS: Record<string, { versions: string[]; inputs: object[]; outputs: object[] }> = {
  classifier: {
    versions: ['1', '2'],
    inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
    outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 2] }],
  },
  strings: {
    versions: ['1'],
    inputs: [{ name: 'text', datatype: 'BYTES', shape: [-1] }],
    outputs: [
      { name: 'length', datatype: 'INT32', shape: [-1] },
      { name: 'upper', datatype: 'BYTES', shape: [-1] },
    ],
  },
};

function json(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function decompress(body: Buffer, encoding: string | undefined): Buffer {
  const e = (encoding ?? '').trim().toLowerCase();
  if (e === '' || e === 'identity') return body;
  try {
    if (e === 'gzip') return gunzipSync(body);
    if (e === 'deflate') return inflateSync(body);
  } catch (err) {
    throw new V2Error(400, `cannot decompress ${e} body: ${String(err)}`);
  }
  throw new V2Error(415, `unsupported content-encoding ${e}`);
}

function infer(
  model: string,
  version: string,
  body: Buffer,
  headerLengthRaw: string | undefined,
): { header: Buffer; blobs: Buffer[]; binary: boolean } {
  let jsonPart: Buffer = body;
  let binary: Buffer = Buffer.alloc(0);
  if (headerLengthRaw !== undefined) {
    const hl = Number(headerLengthRaw);
    if (!Number.isInteger(hl) || hl < 0 || hl > body.length) {
      throw new V2Error(
        400,
        `Inference-Header-Content-Length ${headerLengthRaw} is past the end of the ${body.length}-byte body`,
      );
    }
    jsonPart = body.subarray(0, hl);
    binary = body.subarray(hl);
  }
  let request: V2Request;
  try {
    request = JSON.parse(jsonPart.toString('utf8')) as V2Request;
  } catch (err) {
    throw new V2Error(400, `invalid JSON: ${String(err)}`);
  }
  if (!Array.isArray(request.inputs) || request.inputs.length === 0)
    throw new V2Error(400, 'inputs must be a non-empty array');
  let offset = 0;
  const values = new Map<string, { datatype: string; shape: number[]; data: unknown[] }>();
  for (const raw of request.inputs as V2Input[]) {
    if (typeof raw.name !== 'string' || typeof raw.datatype !== 'string' || !Array.isArray(raw.shape)) {
      throw new V2Error(400, 'each input needs name, datatype and shape');
    }
    const shape = raw.shape as number[];
    const count = shape.reduce((a, b) => a * b, 1);
    let data: unknown[];
    const size = raw.parameters?.binary_data_size;
    if (typeof size === 'number') {
      if (offset + size > binary.length)
        throw new V2Error(400, `input ${raw.name}: binary data runs past the body end`);
      data = readTensor(raw.datatype, binary.subarray(offset, offset + size), count);
      offset += size;
    } else {
      data = flatten(raw.data);
    }
    if (data.length !== count)
      throw new V2Error(400, `input ${raw.name}: ${data.length} elements for shape [${shape.join(',')}]`);
    values.set(raw.name, { datatype: raw.datatype, shape, data });
  }
  const outputs: TestTensor[] = [];
  if (model === 'classifier') {
    const x = values.get('input');
    if (!x || x.datatype !== 'FP32' || x.shape.length !== 2 || x.shape[1] !== 4)
      throw new V2Error(400, 'classifier needs input FP32 [batch,4]');
    const n = x.shape[0] as number;
    const probs: number[] = [];
    for (let i = 0; i < n; i++) {
      const row = x.data.slice(4 * i, 4 * i + 4).map(Number);
      const p1 = Math.fround(classifierP1(row, version));
      probs.push(Math.fround(1 - p1), p1);
    }
    outputs.push({ name: 'probabilities', datatype: 'FP32', shape: [n, 2], data: probs });
  } else {
    const t = values.get('text');
    if (!t || (t.datatype !== 'BYTES' && t.datatype !== 'STRING'))
      throw new V2Error(400, 'strings needs input text BYTES');
    const strs = t.data.map(String);
    outputs.push({ name: 'length', datatype: 'INT32', shape: [strs.length], data: strs.map((s) => [...s].length) });
    outputs.push({ name: 'upper', datatype: 'BYTES', shape: [strs.length], data: strs.map((s) => s.toUpperCase()) });
  }
  const wantBinary =
    request.parameters?.binary_data_output === true ||
    (request.outputs ?? []).some((o) => o.parameters?.binary_data === true);
  const response: Record<string, unknown> = { model_name: model, model_version: version };
  if (typeof request.id === 'string') response.id = request.id;
  if (!wantBinary) {
    response.outputs = outputs;
    return { header: Buffer.from(JSON.stringify(response), 'utf8'), blobs: [], binary: false };
  }
  const blobs = outputs.map((o) => tensorBytes(o));
  response.outputs = outputs.map((o, i) => ({
    name: o.name,
    datatype: o.datatype,
    shape: o.shape,
    parameters: { binary_data_size: (blobs[i] as Buffer).length },
  }));
  return { header: Buffer.from(JSON.stringify(response), 'utf8'), blobs, binary: true };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function handle(req: IncomingMessage, res: ServerResponse, knobs: V2ServerKnobs): Promise<void> {
  const h = req.headers;
  const delay = Number(h['x-test-delay-ms'] ?? knobs.delayMs);
  if (delay > 0) await sleep(delay);
  if (h['x-test-reset'] === '1' || knobs.reset) {
    req.socket.destroy();
    return;
  }
  const fail = Number(h['x-test-fail'] ?? knobs.failStatus);
  const url = new URL(req.url ?? '/', 'http://x');
  const path = url.pathname;
  const method = req.method ?? 'GET';
  if (fail > 0) {
    await readBody(req);
    json(res, fail, { error: `injected failure ${fail}` });
    return;
  }
  // `/test/sink`, or any route with `x-test-sink: 1`: hash the body as it streams (never buffered).
  if (path === '/test/sink' || h['x-test-sink'] === '1') {
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const c of req) {
      hash.update(c as Buffer);
      bytes += (c as Buffer).length;
    }
    json(res, 200, { bytes, sha256: hash.digest('hex') });
    return;
  }
  if (path === '/test/echo') {
    const body = await readBody(req);
    json(
      res,
      200,
      {
        method,
        path: req.url,
        length: body.length,
        sha256: createHash('sha256').update(body).digest('hex'),
        contentType: h['content-type'] ?? null,
        custom: h['x-custom'] ?? null,
        requestId: h['x-request-id'] ?? null,
        // Headers a proxy must not forward (hop-by-hop, RFC 9110 §7.6.1), to check that it did not.
        hop: {
          dropMe: h['x-drop-me'] ?? null,
          keepAlive: h['keep-alive'] ?? null,
          te: h.te ?? null,
          upgrade: h.upgrade ?? null,
        },
      },
      { 'x-echo-method': method },
    );
    return;
  }
  if (path === '/test/cookies') {
    res.writeHead(200, [
      'content-type',
      'text/plain',
      'set-cookie',
      'a=1; Path=/',
      'set-cookie',
      'b=2; Path=/',
      'x-custom-response',
      'kept',
      'cache-control',
      'no-store',
    ]);
    res.end('cookies');
    return;
  }
  if (path === '/test/chunked') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    for (let i = 0; i < 5; i++) {
      res.write(`chunk-${i};`);
      await sleep(5);
    }
    res.end();
    return;
  }
  if (path === '/v2' && method === 'GET') {
    json(res, 200, { name: 'modelwatch-test-v2', version: '1.0.0', extensions: ['binary_tensor_data', 'generate'] });
    return;
  }
  if (path === '/v2/health/live' && method === 'GET') {
    json(res, 200, { live: true });
    return;
  }
  if (path === '/v2/health/ready' && method === 'GET') {
    json(res, 200, { ready: true });
    return;
  }
  const m = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/ready|\/infer|\/generate_stream|\/generate)?$/.exec(path);
  if (!m) {
    await readBody(req);
    json(res, 404, { error: `unknown route ${method} ${path}` });
    return;
  }
  const model = decodeURIComponent(m[1] as string);
  const spec = MODELS[model];
  const version = m[2] === undefined ? (spec?.versions[spec.versions.length - 1] ?? '') : decodeURIComponent(m[2]);
  const action = m[3] ?? '';
  if (!spec || !spec.versions.includes(version)) {
    await readBody(req);
    json(res, 404, { error: `model ${model} version ${version} not found` });
    return;
  }
  if (action === '' && method === 'GET') {
    json(res, 200, {
      name: model,
      versions: spec.versions,
      platform: 'modelwatch-test',
      inputs: spec.inputs,
      outputs: spec.outputs,
    });
    return;
  }
  if (action === '/ready' && method === 'GET') {
    json(res, 200, { name: model, ready: true });
    return;
  }
  if (action === '/generate_stream') {
    await readBody(req);
    const n = Number(h['x-test-chunks'] ?? knobs.streamChunks);
    const gap = Number(h['x-test-interval-ms'] ?? knobs.streamIntervalMs);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    for (let i = 0; i < n; i++) {
      if (i > 0) await sleep(gap);
      if (res.destroyed) return;
      res.write(`data: ${JSON.stringify({ model_name: model, text_output: `token-${i}`, index: i })}\n\n`);
    }
    res.end();
    return;
  }
  if (action === '/infer' && method === 'POST') {
    const raw = await readBody(req);
    const body = decompress(raw, h['content-encoding']);
    const hl = h['inference-header-content-length'];
    const out = infer(model, version, body, Array.isArray(hl) ? hl[0] : hl);
    let payload = out.blobs.length > 0 ? Buffer.concat([out.header, ...out.blobs]) : out.header;
    const headers: Record<string, string | number> = {
      'content-type': out.binary ? 'application/octet-stream' : 'application/json',
    };
    if (out.binary) headers['inference-header-content-length'] = out.header.length;
    if (h['x-test-gzip-response'] === '1') {
      payload = gzipSync(payload);
      headers['content-encoding'] = 'gzip';
    }
    headers['content-length'] = payload.length;
    res.writeHead(200, headers);
    res.end(payload);
    return;
  }
  await readBody(req);
  json(res, 405, { error: `method ${method} not allowed on ${path}` });
}

/** Starts the test V2 server on 127.0.0.1 (port 0 = any free port). */
export async function startV2Server(
  options: { port?: number; knobs?: Partial<V2ServerKnobs> } = {},
): Promise<TestV2Server> {
  const knobs: V2ServerKnobs = {
    delayMs: 0,
    reset: false,
    failStatus: 0,
    streamChunks: 5,
    streamIntervalMs: 50,
    ...options.knobs,
  };
  const state = { requests: 0 };
  const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    state.requests++;
    handle(req, res, knobs).catch((err: unknown) => {
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return;
      }
      const status = err instanceof V2Error ? err.status : 500;
      json(res, status, { error: err instanceof Error ? err.message : String(err) });
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    knobs,
    get requests() {
      return state.requests;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
