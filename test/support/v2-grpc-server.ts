import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { classifierP1 } from './v2-server.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The OIP proto the protocol module ships. */
export const V2_PROTO_PATH = join(here, '..', '..', 'src', 'protocol', 'proto', 'open_inference_grpc.proto');

/**
 * `[P(class 0), P(class 1)]` of one row under the REST test server's classifier (version 1), rounded
 * to FP32 — the same logistic regression, so REST and gRPC captures of the same rows agree.
 */
export function classifierProbabilities(row: readonly number[]): [number, number] {
  const p1 = classifierP1([...row], '1');
  return [Math.fround(1 - p1), Math.fround(p1)];
}

/** Wire shape of tensor contents (proto-loader with `keepCase`, `longs: Number`). */
export interface TensorContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: number[];
  uint_contents?: number[];
  uint64_contents?: number[];
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Buffer[];
}

/** One input or output tensor on the wire. */
export interface WireTensor {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: Record<string, unknown>;
  contents?: TensorContents | null;
}

/** `inference.ModelInferRequest` as plain object. */
export interface WireInferRequest {
  model_name: string;
  model_version?: string;
  id?: string;
  inputs: WireTensor[];
  outputs?: { name: string }[];
  raw_input_contents?: Buffer[];
}

/** `inference.ModelInferResponse` as plain object. */
export interface WireInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  outputs: WireTensor[];
  raw_output_contents: Buffer[];
}

const loaderOptions: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** The `inference.GRPCInferenceService` constructor (a grpc-js client class with `.service`). */
export function v2ServiceConstructor(): grpc.ServiceClientConstructor {
  const def = protoLoader.loadSync(V2_PROTO_PATH, loaderOptions);
  const pkg = grpc.loadPackageDefinition(def).inference as grpc.GrpcObject;
  return pkg.GRPCInferenceService as grpc.ServiceClientConstructor;
}

let root: protobuf.Root | undefined;
/** protobufjs types of the OIP proto (to build and read raw message bytes in tests). */
export function v2Types(): { request: protobuf.Type; response: protobuf.Type } {
  root ??= new protobuf.Root().loadSync(V2_PROTO_PATH, { keepCase: true });
  return {
    request: root.lookupType('inference.ModelInferRequest'),
    response: root.lookupType('inference.ModelInferResponse'),
  };
}

/** Serializes a ModelInferRequest. */
export function encodeInferRequest(req: WireInferRequest): Buffer {
  const t = v2Types().request;
  return Buffer.from(t.encode(t.fromObject(req)).finish());
}

/** Parses a ModelInferResponse into plain values (int64 as numbers, bytes as Buffers). */
export function decodeInferResponse(bytes: Buffer): WireInferResponse {
  const t = v2Types().response;
  return t.toObject(t.decode(bytes), { longs: Number, defaults: true, arrays: true }) as WireInferResponse;
}

function status(code: grpc.status, details: string): Partial<grpc.StatusObject> {
  return { code, details, metadata: new grpc.Metadata() };
}

function f32(values: readonly number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeFloatLE(v, i * 4));
  return b;
}

function serializeBytes(items: readonly Buffer[]): Buffer {
  return Buffer.concat(
    items.flatMap((it) => {
      const len = Buffer.alloc(4);
      len.writeUInt32LE(it.length, 0);
      return [len, it];
    }),
  );
}

function parseBytes(blob: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off + 4 <= blob.length) {
    const n = blob.readUInt32LE(off);
    out.push(blob.subarray(off + 4, off + 4 + n));
    off += 4 + n;
  }
  return out;
}

type InferResult = WireInferResponse | Partial<grpc.StatusObject>;

function inferClassifier(req: WireInferRequest): InferResult {
  const input = req.inputs[0];
  if (req.inputs.length !== 1 || input === undefined || input.datatype !== 'FP32') {
    return status(grpc.status.INVALID_ARGUMENT, 'classifier expects one FP32 input');
  }
  const [rows, cols] = input.shape;
  if (input.shape.length !== 2 || cols !== 4 || rows === undefined || rows < 1) {
    return status(grpc.status.INVALID_ARGUMENT, `classifier input shape must be [N,4], got [${input.shape.join(',')}]`);
  }
  const raw = req.raw_input_contents ?? [];
  let values: number[];
  if (raw.length > 0) {
    const blob = raw[0]!;
    if (blob.length !== rows * 4 * 4)
      return status(grpc.status.INVALID_ARGUMENT, 'raw_input_contents[0] has the wrong size');
    values = Array.from({ length: rows * 4 }, (_, i) => blob.readFloatLE(i * 4));
  } else {
    values = input.contents?.fp32_contents ?? [];
    if (values.length !== rows * 4) return status(grpc.status.INVALID_ARGUMENT, 'fp32_contents has the wrong length');
  }
  const probs: number[] = [];
  for (let r = 0; r < rows; r++) probs.push(...classifierProbabilities(values.slice(r * 4, r * 4 + 4)));
  const out: WireTensor = { name: 'probabilities', datatype: 'FP32', shape: [rows, 2] };
  const res: WireInferResponse = {
    model_name: 'classifier',
    model_version: '1',
    id: req.id ?? '',
    outputs: [out],
    raw_output_contents: [],
  };
  if (raw.length > 0) res.raw_output_contents = [f32(probs)];
  else out.contents = { fp32_contents: probs };
  return res;
}

function inferBytes(req: WireInferRequest): InferResult {
  const input = req.inputs[0];
  if (req.inputs.length !== 1 || input === undefined || input.datatype !== 'BYTES') {
    return status(grpc.status.INVALID_ARGUMENT, 'strings model expects one BYTES input');
  }
  const raw = req.raw_input_contents ?? [];
  const items = raw.length > 0 ? parseBytes(raw[0]!) : (input.contents?.bytes_contents ?? []);
  const upper = items.map((b) => Buffer.from(b.toString('utf8').toUpperCase(), 'utf8'));
  const lengths = items.map((b) => b.length);
  const res: WireInferResponse = {
    model_name: 'strings',
    model_version: '',
    id: req.id ?? '',
    outputs: [
      { name: 'upper', datatype: 'BYTES', shape: [items.length] },
      { name: 'length', datatype: 'INT32', shape: [items.length] },
    ],
    raw_output_contents: [],
  };
  if (raw.length > 0) {
    const len = Buffer.alloc(lengths.length * 4);
    lengths.forEach((n, i) => len.writeInt32LE(n, i * 4));
    res.raw_output_contents = [serializeBytes(upper), len];
  } else {
    res.outputs[0]!.contents = { bytes_contents: upper };
    res.outputs[1]!.contents = { int_contents: lengths };
  }
  return res;
}

const MODELS: Record<string, { versions: string[]; platform: string; inputs: object[]; outputs: object[] }> = {
  classifier: {
    versions: ['1'],
    platform: 'test_logreg',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
    outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, 2] }],
  },
  strings: {
    versions: [],
    platform: 'test_bytes',
    inputs: [{ name: 'text', datatype: 'BYTES', shape: [-1] }],
    outputs: [
      { name: 'upper', datatype: 'BYTES', shape: [-1] },
      { name: 'length', datatype: 'INT32', shape: [-1] },
    ],
  },
};

/** A running test V2 gRPC server. */
export interface V2GrpcServer {
  /** `127.0.0.1:PORT`. */
  address: string;
  /** `ModelInfer` calls answered so far. */
  readonly inferCalls: number;
  /** Delayed calls found cancelled (client gone, deadline passed) when their answer was due. */
  readonly cancelled: number;
  stop(): Promise<void>;
}

/**
 * Starts a real grpc-js server implementing `inference.GRPCInferenceService` on 127.0.0.1 (port 0):
 * model `classifier` (FP32 `input` [N,4] → FP32 `probabilities` [N,2], the logistic regression above)
 * and model `strings` (BYTES `text` [N] → BYTES `upper`, INT32 `length`). Typed `contents` in → typed
 * out; `raw_input_contents` in → `raw_output_contents` out. Unknown models answer NOT_FOUND, bad
 * inputs INVALID_ARGUMENT. Request metadata `x-echo` is echoed as initial metadata `x-echo` and
 * trailer `x-echo-trailer`, so tests can check metadata travels both ways; `x-fail-with: CODE`
 * forces that status, `x-delay-ms: N` delays the answer.
 */
export async function startV2GrpcServer(): Promise<V2GrpcServer> {
  const Service = v2ServiceConstructor();
  // Triton's receive limit, so messages above grpc-js's 4 MiB default reach the model.
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  let inferCalls = 0;
  let cancelled = 0;

  const respond = <T>(
    call: grpc.ServerUnaryCall<unknown, T>,
    callback: grpc.sendUnaryData<T>,
    result: () => T | Partial<grpc.StatusObject>,
    isStatus: (r: T | Partial<grpc.StatusObject>) => r is Partial<grpc.StatusObject>,
  ): void => {
    const echo = call.metadata.get('x-echo')[0];
    const trailer = new grpc.Metadata();
    if (echo !== undefined) {
      const md = new grpc.Metadata();
      md.set('x-echo', String(echo));
      call.sendMetadata(md);
      trailer.set('x-echo-trailer', String(echo));
    }
    const forced = call.metadata.get('x-fail-with')[0];
    if (forced !== undefined) {
      callback({ code: Number(forced), details: `forced failure ${String(forced)}`, metadata: trailer });
      return;
    }
    const answer = (): void => {
      if (call.cancelled) {
        cancelled++;
        return;
      }
      const r = result();
      if (isStatus(r)) callback({ ...r, metadata: trailer });
      else callback(null, r, trailer);
    };
    const delay = Number(call.metadata.get('x-delay-ms')[0] ?? 0);
    if (delay > 0) setTimeout(answer, delay);
    else answer();
  };
  const isStatusObject = (r: unknown): r is Partial<grpc.StatusObject> =>
    typeof r === 'object' && r !== null && 'code' in r;

  const unknownModel = (name: string): Partial<grpc.StatusObject> =>
    status(grpc.status.NOT_FOUND, `Request for unknown model: '${name}' is not found`);

  server.addService(Service.service, {
    ServerLive: (call: grpc.ServerUnaryCall<unknown, object>, cb: grpc.sendUnaryData<object>) =>
      respond(call, cb, () => ({ live: true }), isStatusObject),
    ServerReady: (call: grpc.ServerUnaryCall<unknown, object>, cb: grpc.sendUnaryData<object>) =>
      respond(call, cb, () => ({ ready: true }), isStatusObject),
    ServerMetadata: (call: grpc.ServerUnaryCall<unknown, object>, cb: grpc.sendUnaryData<object>) =>
      respond(
        call,
        cb,
        () => ({ name: 'v2-test-grpc', version: '1.0.0', extensions: ['model_repository'] }),
        isStatusObject,
      ),
    ModelReady: (call: grpc.ServerUnaryCall<{ name: string }, object>, cb: grpc.sendUnaryData<object>) =>
      respond(
        call,
        cb,
        () => (MODELS[call.request.name] ? { ready: true } : unknownModel(call.request.name)),
        isStatusObject,
      ),
    ModelMetadata: (call: grpc.ServerUnaryCall<{ name: string }, object>, cb: grpc.sendUnaryData<object>) =>
      respond(
        call,
        cb,
        () => {
          const m = MODELS[call.request.name];
          return m ? { name: call.request.name, ...m } : unknownModel(call.request.name);
        },
        isStatusObject,
      ),
    ModelInfer: (call: grpc.ServerUnaryCall<WireInferRequest, object>, cb: grpc.sendUnaryData<object>) => {
      inferCalls++;
      respond(
        call,
        cb,
        () => {
          const req = call.request;
          if (req.model_name === 'classifier') return inferClassifier(req);
          if (req.model_name === 'strings') return inferBytes(req);
          return unknownModel(req.model_name);
        },
        isStatusObject,
      );
    },
  });

  // Triton's bidirectional ModelStreamInfer (not in the OIP proto): each request gets one
  // ModelStreamInferResponse { string error_message = 1; ModelInferResponse infer_response = 2; }.
  const identity = (b: Buffer): Buffer => b;
  server.register(
    '/inference.GRPCInferenceService/ModelStreamInfer',
    (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      const { request, response } = v2Types();
      call.on('data', (bytes: Buffer) => {
        const req = request.toObject(request.decode(bytes), {
          longs: Number,
          defaults: true,
          arrays: true,
        }) as WireInferRequest;
        const r =
          req.model_name === 'classifier'
            ? inferClassifier(req)
            : req.model_name === 'strings'
              ? inferBytes(req)
              : unknownModel(req.model_name);
        const w = protobuf.Writer.create();
        if (isStatusObject(r)) w.uint32((1 << 3) | 2).string(r.details ?? '');
        else w.uint32((2 << 3) | 2).bytes(response.encode(response.fromObject(r)).finish());
        call.write(Buffer.from(w.finish()));
      });
      call.on('end', () => call.end());
    },
    identity,
    identity,
    'bidi',
  );

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    );
  });
  return {
    address: `127.0.0.1:${port}`,
    get inferCalls() {
      return inferCalls;
    },
    get cancelled() {
      return cancelled;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
      }),
  };
}
