import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { Gauge } from 'prom-client';
import { encodeCapture, type CapturedBody, type CapturedCall } from '../protocol/capture.js';
import { ErrorCodes, errorMessage, type ErrorCode } from '../common/errors.js';
import { newId } from '../common/ids.js';
import { PairBuffer, type Pair } from '../common/index.js';
import type { RuntimeContext } from '../runtime/context.js';
import { counterOn } from '../common/metrics.js';

/** CloudEvents `type` of a KServe InferenceLogger request event. */
export const KSERVE_REQUEST_TYPE = 'org.kubeflow.serving.inference.request';
/** CloudEvents `type` of a KServe InferenceLogger response event. */
export const KSERVE_RESPONSE_TYPE = 'org.kubeflow.serving.inference.response';

/** Options of {@link createKserveReceiver}. Unset values come from `ctx.config`. */
export interface KserveReceiverOptions {
  /** How long a request waits for its response (and a response for its request), ms. @default 30000 */
  pairTtlMs?: number;
  /** Most unpaired events held; beyond it the oldest is emitted unpaired. @default 10000 */
  maxPending?: number;
  /** How often unpaired events are checked against the TTL, ms. @default 1000 */
  sweepIntervalMs?: number;
  /** Largest event body accepted (413 beyond it). @default ctx.config.api.maxBodyBytes */
  maxBodyBytes?: number;
  /** Cap of each captured body; beyond it the capture is marked truncated. @default ctx.config.sidecar.maxCaptureBytes */
  maxCaptureBytes?: number;
}

const defaults = {
  pairTtlMs: 30_000,
  maxPending: 10_000,
  sweepIntervalMs: 1_000,
} satisfies Partial<Required<KserveReceiverOptions>>;

/** A mounted-ready receiver of KServe InferenceLogger CloudEvents. */
export interface KserveReceiver {
  /** Hono sub-app answering `POST /` (the API mounts it at `/ingest/kserve`). */
  app: Hono;
  /** Events waiting for their other half. */
  readonly pending: number;
  /** Emits every half whose TTL has passed now (the timer does this every `sweepIntervalMs`). */
  sweep(): void;
  /** Stops pairing, emits everything still waiting, and waits for the bus to accept it. */
  stop(): Promise<void>;
}

/** One logged event: the CloudEvents attributes modelwatch uses and the data bytes. */
interface KserveEvent {
  id: string;
  time: number;
  service: string;
  namespace: string;
  component: string;
  endpoint: string;
  contentType: string;
  metadata: Record<string, string>;
  body: Buffer;
}

class EventError extends Error {
  constructor(
    readonly status: 400 | 413 | 415,
    readonly code: ErrorCode,
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

/** CloudEvents HTTP binding §3.1.3.2: attribute values are percent-encoded on the wire. */
function attr(c: Context, name: string): string | undefined {
  const v = c.req.header(name);
  if (v === undefined) return undefined;
  if (v.indexOf('%') === -1) return v;
  try {
    return decodeURIComponent(v);
  } catch {
    throw new EventError(400, ErrorCodes.badRequest, `header ${name} is not valid percent-encoding`, name);
  }
}

/** `ce-metadata` is KServe's JSON `map[string][]string` of allow-listed request headers. */
function parseMetadata(raw: string | undefined): Record<string, string> {
  if (raw === undefined || raw === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new EventError(400, ErrorCodes.badRequest, 'ce-metadata is not JSON', 'ce-metadata');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new EventError(400, ErrorCodes.badRequest, 'ce-metadata is not a JSON object', 'ce-metadata');
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed)) {
    out[k.toLowerCase()] = Array.isArray(v) ? v.map(String).join(', ') : String(v);
  }
  return out;
}

function emptyBody(): CapturedBody {
  return { body: Buffer.alloc(0), size: 0, truncated: false, contentType: '', contentEncoding: '' };
}

/**
 * Creates the receiver of KServe InferenceLogger CloudEvents (HTTP binary mode: `ce-*` headers, the
 * raw V2 body as data). Request and response events share `ce-id` and are paired in a bounded buffer
 * with a TTL; either may arrive first. Each pair becomes one `CapturedCall` with `source: 'kserve'`,
 * published on `ctx.bus` (ingest decodes the bodies like REST captures). A request whose response
 * never comes is still published after the TTL, with status 0 and error `response missing` (KServe
 * logs no response for non-200 answers); a response without request is published with error
 * `request missing`. Bad events get a 4xx JSON error naming the problem; accepted ones 202.
 */
export function createKserveReceiver(ctx: RuntimeContext, options: KserveReceiverOptions = {}): KserveReceiver {
  const pairTtlMs = options.pairTtlMs ?? defaults.pairTtlMs;
  const maxPending = options.maxPending ?? defaults.maxPending;
  const sweepIntervalMs = options.sweepIntervalMs ?? defaults.sweepIntervalMs;
  const maxBodyBytes = options.maxBodyBytes ?? ctx.config.api.maxBodyBytes;
  const maxCaptureBytes = options.maxCaptureBytes ?? ctx.config.sidecar.maxCaptureBytes;
  if (!(maxBodyBytes > 0)) throw new RangeError('maxBodyBytes must be > 0');
  if (!(maxCaptureBytes >= 0)) throw new RangeError('maxCaptureBytes must be >= 0');

  const registers = [ctx.metrics];
  const eventsTotal = counterOn<'type' | 'outcome'>(ctx.metrics, {
    name: 'modelwatch_kserve_events_total',
    help: 'KServe logger CloudEvents received, by type (request, response) and outcome (accepted, rejected).',
    labelNames: ['type', 'outcome'],
    registers,
  });
  const callsTotal = counterOn<'pairing' | 'result'>(ctx.metrics, {
    name: 'modelwatch_kserve_calls_total',
    help: 'Calls published from KServe events, by pairing (paired, or the orphan reason) and publish result.',
    labelNames: ['pairing', 'result'],
    registers,
  });
  const allowHeaders = ctx.config.sidecar.captureHeaders.filter((h) => h !== 'authorization' && h !== 'cookie');

  const captured = (e: KserveEvent | undefined): CapturedBody => {
    if (e === undefined) return emptyBody();
    const truncated = e.body.length > maxCaptureBytes;
    return {
      body: truncated ? e.body.subarray(0, maxCaptureBytes) : e.body,
      size: e.body.length,
      truncated,
      contentType: e.contentType,
      contentEncoding: '',
    };
  };

  const inflight = new Set<Promise<void>>();
  const publish = (pair: Pair<KserveEvent, KserveEvent>): void => {
    const req = pair.request;
    const res = pair.response;
    const first = (req ?? res)!;
    const headers: Record<string, string> = {};
    for (const h of allowHeaders) {
      const v = first.metadata[h];
      if (v !== undefined) headers[h] = v;
    }
    const pairing = pair.orphanReason === '' ? 'paired' : pair.orphanReason;
    const call: CapturedCall = {
      eventId: newId(),
      requestId: pair.key,
      source: 'kserve',
      model: first.service,
      version: '',
      route: `kserve:${first.namespace}/${first.service}/${first.component}${first.endpoint === '' ? '' : `/${first.endpoint}`}`,
      method: 'POST',
      // KServe's logger sends a response event only for 200 answers.
      status: res === undefined ? 0 : 200,
      startedAt: req?.time ?? res!.time,
      latencyMs: req !== undefined && res !== undefined ? Math.max(0, res.time - req.time) : 0,
      request: captured(req),
      response: captured(res),
      headers,
      error: req === undefined ? 'request missing' : res === undefined ? 'response missing' : '',
    };
    const p = ctx.bus
      .publish([encodeCapture(call)])
      .then(() => {
        callsTotal.inc({ pairing, result: 'sent' });
      })
      .catch((err: unknown) => {
        callsTotal.inc({ pairing, result: 'failed' });
        ctx.logger.warn('kserve capture publish failed', { requestId: call.requestId, error: errorMessage(err) });
      })
      .finally(() => inflight.delete(p));
    inflight.add(p);
  };

  const pairs = new PairBuffer<KserveEvent, KserveEvent>({
    ttlMs: pairTtlMs,
    maxPending,
    sweepIntervalMs,
    onPair: publish,
  });
  // One gauge per registry, reading the first receiver built on it (one receiver per process is the norm).
  if (ctx.metrics.getSingleMetric('modelwatch_kserve_pending_events') === undefined) {
    new Gauge({
      name: 'modelwatch_kserve_pending_events',
      help: 'KServe logger events waiting for their other half.',
      registers,
      collect() {
        this.set(pairs.size);
      },
    });
  }

  const fail = (c: Context, err: EventError, type: string): Response => {
    eventsTotal.inc({ type, outcome: 'rejected' });
    return c.json({ error: { code: err.code, message: err.message, field: err.field } }, err.status);
  };

  const app = new Hono();
  app.post(
    '/',
    bodyLimit({
      maxSize: maxBodyBytes,
      onError: (c) =>
        fail(
          c,
          new EventError(413, ErrorCodes.payloadTooLarge, `event body exceeds ${maxBodyBytes} bytes`, 'body'),
          'unknown',
        ),
    }),
    async (c) => {
      let type = 'unknown';
      try {
        const contentType = c.req.header('content-type') ?? '';
        if (contentType.toLowerCase().startsWith('application/cloudevents')) {
          throw new EventError(
            415,
            ErrorCodes.badRequest,
            'structured-mode CloudEvents are not accepted; send binary mode (ce-* headers) as the KServe logger does',
            'content-type',
          );
        }
        const rawType = attr(c, 'ce-type');
        if (rawType === undefined || rawType === '') {
          throw new EventError(400, ErrorCodes.badRequest, 'header ce-type is missing', 'ce-type');
        }
        if (rawType !== KSERVE_REQUEST_TYPE && rawType !== KSERVE_RESPONSE_TYPE) {
          throw new EventError(
            400,
            ErrorCodes.badRequest,
            `ce-type ${rawType} is neither ${KSERVE_REQUEST_TYPE} nor ${KSERVE_RESPONSE_TYPE}`,
            'ce-type',
          );
        }
        type = rawType === KSERVE_REQUEST_TYPE ? 'request' : 'response';
        const id = attr(c, 'ce-id');
        if (id === undefined || id === '')
          throw new EventError(400, ErrorCodes.badRequest, 'header ce-id is missing', 'ce-id');
        const specversion = attr(c, 'ce-specversion');
        if (specversion !== undefined && specversion !== '1.0') {
          throw new EventError(
            400,
            ErrorCodes.badRequest,
            `ce-specversion ${specversion} is not 1.0`,
            'ce-specversion',
          );
        }
        const rawTime = attr(c, 'ce-time');
        let time = Date.now();
        if (rawTime !== undefined && rawTime !== '') {
          time = Date.parse(rawTime);
          if (Number.isNaN(time)) {
            throw new EventError(400, ErrorCodes.badRequest, `ce-time ${rawTime} is not an RFC 3339 time`, 'ce-time');
          }
        }
        const event: KserveEvent = {
          id,
          time,
          service: attr(c, 'ce-inferenceservicename') ?? '',
          namespace: attr(c, 'ce-namespace') ?? '',
          component: attr(c, 'ce-component') ?? '',
          endpoint: attr(c, 'ce-endpoint') ?? '',
          contentType,
          metadata: parseMetadata(attr(c, 'ce-metadata')),
          body: Buffer.from(await c.req.arrayBuffer()),
        };
        if (type === 'request') pairs.request(id, event);
        else pairs.response(id, event);
        eventsTotal.inc({ type, outcome: 'accepted' });
        return c.json({ accepted: true, id }, 202);
      } catch (err) {
        if (err instanceof EventError) return fail(c, err, type);
        throw err;
      }
    },
  );

  let stopped: Promise<void> | undefined;
  return {
    app,
    get pending() {
      return pairs.size;
    },
    sweep: () => pairs.sweep(),
    stop() {
      stopped ??= (async () => {
        pairs.close();
        await Promise.all([...inflight]);
      })();
      return stopped;
    },
  };
}

const mounted = new WeakMap<RuntimeContext, KserveReceiver>();

/**
 * API route mounter: serves the receiver at `POST /ingest/kserve` (point KServe's `logger.url`
 * there). The receiver is created once per context; {@link kserveReceiverOf} gives it back so the
 * process can `stop()` it (flushing unpaired events) on shutdown.
 */
export function kserveRoutes(app: Hono, ctx: RuntimeContext): void {
  let receiver = mounted.get(ctx);
  if (receiver === undefined) {
    receiver = createKserveReceiver(ctx);
    mounted.set(ctx, receiver);
  }
  app.route('/ingest/kserve', receiver.app);
}

/** The receiver {@link kserveRoutes} mounted for `ctx`, if any. */
export function kserveReceiverOf(ctx: RuntimeContext): KserveReceiver | undefined {
  return mounted.get(ctx);
}
