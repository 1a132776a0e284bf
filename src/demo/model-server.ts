/**
 * A small V2 (Open Inference Protocol) REST model server for the demo: one ONNX classifier, run by
 * onnxruntime-node in a worker thread (the shadow runner's {@link ShadowPool}), so `session.run` never
 * blocks the event loop that serves requests, the sidecar and the rest of modelwatch.
 *
 * Routes: `GET /v2`, `GET /v2/health/live`, `GET /v2/health/ready`, `GET /v2/models/{m}[/versions/{v}]`
 * (metadata), `GET …/ready`, `POST …/infer` (JSON tensors; FP32 or FP64 `input` of shape `[N, F]`).
 * Errors answer `{"error": "..."}` as V2 servers do.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import { silentLogger, type Logger } from '../common/logger.js';
import { ModelTensorNames, ShadowPool, type ShadowModel, type ShadowTensor } from '../shadow/index.js';

/** Options of {@link startDemoModelServer}. */
export interface DemoModelServerOptions {
  /** Model name served. */
  model: string;
  /** The serialized ONNX model (input `input` FP32 `[N, F]`, outputs `probabilities` and `label`). */
  bytes: Uint8Array;
  /** Number of input features (columns of `input`). */
  features: number;
  /** Version reported. @default '1' */
  version?: string;
  /** Interface to listen on. @default '127.0.0.1' */
  host?: string;
  /** Port; 0 picks a free one. @default 0 */
  port?: number;
  /** Largest request body accepted. @default 1048576 */
  maxBodyBytes?: number;
  /** Largest batch (rows) accepted in one request. @default 4096 */
  maxBatchRows?: number;
  /** Worker threads running the model. @default 1 */
  workers?: number;
  /** @default silentLogger */
  logger?: Logger;
}

const defaults = {
  version: '1',
  host: '127.0.0.1',
  port: 0,
  maxBodyBytes: 1024 * 1024,
  maxBatchRows: 4096,
  workers: 1,
  logger: silentLogger,
} satisfies Required<Omit<DemoModelServerOptions, 'model' | 'bytes' | 'features'>>;

/** A running demo model server. */
export interface DemoModelServer {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Execution provider ONNX Runtime chose (`cpu` unless CUDA is installed). */
  executionProvider: string;
  /** Inference calls answered with 200. */
  readonly inferences: number;
  stop(): Promise<void>;
}

const tensorSchema = z.object({
  name: z.string().min(1),
  datatype: z.string().min(1),
  shape: z.array(z.number().int().min(0)).min(1).max(8),
  data: z.array(z.unknown()),
  parameters: z.record(z.string(), z.unknown()).optional(),
});

const inferRequestSchema = z.object({
  id: z.string().optional(),
  parameters: z.record(z.string(), z.unknown()).optional(),
  inputs: z.array(tensorSchema).min(1),
  outputs: z.array(z.object({ name: z.string().min(1) }).passthrough()).optional(),
});

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        reject(new HttpError(413, `request body larger than ${max} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Flattens nested JSON arrays (V2 allows row-major nesting) into numbers; throws naming the tensor. */
function numbers(data: readonly unknown[], name: string): number[] {
  const out: number[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) for (const x of v) walk(x);
    else if (typeof v === 'number' && Number.isFinite(v)) out.push(v);
    else throw new HttpError(400, `input '${name}': elements must be finite numbers`);
  };
  walk(data);
  return out;
}

/**
 * Starts the model server: loads the model into a worker pool, then listens. Rejects with
 * `config_invalid` when the address cannot be bound and `input_invalid` when the model does not load.
 */
export async function startDemoModelServer(options: DemoModelServerOptions): Promise<DemoModelServer> {
  const o = { ...defaults, ...options };
  const pool = new ShadowPool({ workers: o.workers, logger: o.logger });
  let loaded: ShadowModel;
  try {
    loaded = await pool.load(o.bytes, { key: o.model });
  } catch (err) {
    await pool.close();
    throw err;
  }
  let inferences = 0;
  const metadata = {
    name: o.model,
    versions: [o.version],
    platform: 'onnxruntime_onnx',
    inputs: [{ name: ModelTensorNames.input, datatype: 'FP32', shape: [-1, o.features] }],
    outputs: [
      { name: ModelTensorNames.probabilities, datatype: 'FP32', shape: [-1, 2] },
      { name: ModelTensorNames.label, datatype: 'INT64', shape: [-1] },
    ],
  };

  const infer = async (body: Buffer): Promise<object> => {
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      throw new HttpError(400, 'request body is not valid JSON (the demo model server speaks V2 JSON only)');
    }
    const parsed = inferRequestSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new HttpError(400, `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`);
    }
    const req = parsed.data;
    const input = req.inputs.find((t) => t.name === ModelTensorNames.input);
    if (input === undefined) throw new HttpError(400, `missing input tensor '${ModelTensorNames.input}'`);
    if (input.datatype !== 'FP32' && input.datatype !== 'FP64') {
      throw new HttpError(400, `input '${input.name}': expected datatype FP32, got ${input.datatype}`);
    }
    const [rows, cols] = input.shape;
    if (input.shape.length !== 2 || cols !== o.features || rows === undefined || rows < 1 || rows > o.maxBatchRows) {
      throw new HttpError(
        400,
        `input '${input.name}': expected shape [N, ${o.features}] with 1 ≤ N ≤ ${o.maxBatchRows}, got [${input.shape.join(', ')}]`,
      );
    }
    const values = numbers(input.data, input.name);
    if (values.length !== rows * o.features) {
      throw new HttpError(
        400,
        `input '${input.name}': shape [${input.shape.join(', ')}] needs ${rows * o.features} elements, got ${values.length}`,
      );
    }
    const tensor: ShadowTensor = {
      name: input.name,
      datatype: 'FP32',
      shape: [rows, o.features],
      data: Float32Array.from(values),
    };
    const result = await pool.run(loaded, [tensor]);
    inferences++;
    const wanted = req.outputs?.map((x) => x.name);
    const outputs = result.outputs
      .filter((t) => wanted === undefined || wanted.includes(t.name))
      .map((t) => ({
        name: t.name,
        datatype: t.datatype,
        shape: t.shape,
        data: Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v)),
      }));
    return { model_name: o.model, model_version: o.version, ...(req.id !== undefined ? { id: req.id } : {}), outputs };
  };

  const modelPath = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/ready|\/infer)?$/;
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method === 'GET' && (path === '/v2/health/live' || path === '/v2/health/ready')) return send(res, 200, {});
    if (req.method === 'GET' && path === '/v2') {
      return send(res, 200, { name: 'modelwatch-demo', version: '1', extensions: [] });
    }
    const m = modelPath.exec(path);
    if (m === null) throw new HttpError(404, `no route ${req.method ?? ''} ${path}`);
    const name = decodeURIComponent(m[1] ?? '');
    const version = m[2] === undefined ? undefined : decodeURIComponent(m[2]);
    if (name !== o.model || (version !== undefined && version !== o.version)) {
      throw new HttpError(
        404,
        `model '${name}'${version !== undefined ? ` version '${version}'` : ''} is not served here`,
      );
    }
    const action = m[3];
    if (action === undefined && req.method === 'GET') return send(res, 200, metadata);
    if (action === '/ready' && req.method === 'GET') return send(res, 200, {});
    if (action === '/infer' && req.method === 'POST') {
      const type = req.headers['content-type'] ?? 'application/json';
      if (!/^application\/json\b/i.test(type) || req.headers['inference-header-content-length'] !== undefined) {
        throw new HttpError(415, 'the demo model server accepts JSON bodies only (no binary tensor extension)');
      }
      return send(res, 200, await infer(await readBody(req, o.maxBodyBytes)));
    }
    throw new HttpError(405, `method ${req.method ?? ''} not allowed on ${path}`);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) o.logger.error('demo model server error', { error: errorMessage(err) });
      if (!res.headersSent) send(res, status, { error: errorMessage(err) });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 30_000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port, o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await pool.close();
    throw new ModelwatchError(
      ErrorCodes.configInvalid,
      `demo model server: cannot listen on ${o.host}:${o.port}: ${errorMessage(err)}`,
      {
        cause: err,
      },
    );
  }
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    executionProvider: loaded.executionProvider,
    get inferences() {
      return inferences;
    },
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await pool.close();
    },
  };
}
