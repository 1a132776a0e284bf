import { createHash, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { getConnInfo } from '@hono/node-server/conninfo';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { encodeCapture, type CapturedBody, type CapturedCall } from '../protocol/capture.js';
import { ErrorCodes, ModelwatchError, errorMessage, type ErrorCode } from '../common/errors.js';
import { newId } from '../common/ids.js';
import { PairBuffer, type Pair } from '../common/index.js';
import type { RuntimeContext } from '../runtime/context.js';
import { counterOn, summedGaugeOn } from '../common/metrics.js';

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
  /**
   * Cap of each captured body, applied while the event is read (only the first `maxCaptureBytes` are
   * kept in memory); beyond it the capture is marked truncated. @default ctx.config.sidecar.maxCaptureBytes
   */
  maxCaptureBytes?: number;
  /**
   * Bound of the bytes held for events waiting for their other half; beyond it the oldest are
   * published unpaired (`overflow`). The same bound applies to bytes handed to the bus and not yet
   * acknowledged: beyond it new events are refused with 503 (`busy`). @default ctx.config.kserve.maxPendingBytes
   */
  maxPendingBytes?: number;
  /** Shared token events must carry (`Authorization: Bearer` or `x-modelwatch-token`). @default ctx.config.kserve.token */
  token?: string | undefined;
  /** Client IPs or CIDRs allowed to post; empty allows any. @default ctx.config.kserve.allow */
  allow?: string[];
}

/** Why the receiver shed work, counted by `modelwatch_kserve_shed_total{reason}`. */
export const KserveShedReasons = ['overflow', 'busy'] as const;

/** Memory an event holds besides its body (attributes, metadata, bookkeeping), for the byte bound. */
const EVENT_OVERHEAD_BYTES = 512;

/** A {@link BlockList} of `allow` (IPs and CIDRs); throws `config_invalid` naming a bad entry. */
function allowList(allow: string[]): BlockList | undefined {
  if (allow.length === 0) return undefined;
  const list = new BlockList();
  for (const raw of allow) {
    const entry = raw.trim();
    const [addr = '', prefix] = entry.split('/');
    const family = isIP(addr);
    const bits = prefix === undefined ? undefined : Number(prefix);
    const max = family === 6 ? 128 : 32;
    if (family === 0 || (bits !== undefined && !(Number.isInteger(bits) && bits >= 0 && bits <= max))) {
      throw new ModelwatchError(ErrorCodes.configInvalid, `kserve.allow entry ${raw} is not an IP address or CIDR`, {
        field: 'kserve.allow',
      });
    }
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, bits, type);
  }
  return list;
}

/** Whether `address` (as the socket reports it; IPv4-mapped IPv6 included) is on `list`. */
function allowed(list: BlockList, address: string | undefined): boolean {
  if (address === undefined) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return list.check(mapped[1] as string, 'ipv4') || list.check(address, 'ipv6');
  return list.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Reads a request body, keeping only its first `cap` bytes; returns them and the full size. */
async function readCapped(c: Context, cap: number): Promise<{ body: Buffer; size: number }> {
  const stream = c.req.raw.body;
  if (stream === null) return { body: Buffer.alloc(0), size: 0 };
  const chunks: Buffer[] = [];
  let kept = 0;
  let size = 0;
  for await (const chunk of stream) {
    const b = chunk as Uint8Array;
    size += b.length;
    if (kept < cap) {
      const take = Math.min(cap - kept, b.length);
      // Copy what is kept, so the capture does not pin the transport's (possibly larger) buffer.
      chunks.push(Buffer.from(b.subarray(0, take)));
      kept += take;
    }
  }
  return { body: chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, kept), size };
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
  /** Bytes held by events waiting for their other half (bounded by `maxPendingBytes`). */
  readonly pendingBytes: number;
  /** Bytes handed to the bus and not yet acknowledged. */
  readonly publishingBytes: number;
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
  /** The first `maxCaptureBytes` of the data. */
  body: Buffer;
  /** Full size of the data on the wire. */
  size: number;
}

class EventError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 413 | 415 | 503,
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
 *
 * Bounded: bodies are cut to `maxCaptureBytes` as they are read; waiting halves hold at most
 * `maxPendingBytes` (the oldest are published unpaired beyond it, counted as shed `overflow`); while
 * the bus has `maxPendingBytes` unacknowledged, new events get 503 with `Retry-After` (shed `busy`).
 * An accepted (202) event is always published. With `token` or `allow` set, other clients get 401/403.
 */
export function createKserveReceiver(ctx: RuntimeContext, options: KserveReceiverOptions = {}): KserveReceiver {
  const pairTtlMs = options.pairTtlMs ?? defaults.pairTtlMs;
  const maxPending = options.maxPending ?? defaults.maxPending;
  const sweepIntervalMs = options.sweepIntervalMs ?? defaults.sweepIntervalMs;
  const maxBodyBytes = options.maxBodyBytes ?? ctx.config.api.maxBodyBytes;
  const maxCaptureBytes = options.maxCaptureBytes ?? ctx.config.sidecar.maxCaptureBytes;
  const maxPendingBytes = options.maxPendingBytes ?? ctx.config.kserve.maxPendingBytes;
  const token = 'token' in options ? options.token : ctx.config.kserve.token;
  const allow = allowList(options.allow ?? ctx.config.kserve.allow);
  if (!(maxBodyBytes > 0)) throw new RangeError('maxBodyBytes must be > 0');
  if (!(maxCaptureBytes >= 0)) throw new RangeError('maxCaptureBytes must be >= 0');
  if (!(maxPendingBytes > 0)) throw new RangeError('maxPendingBytes must be > 0');
  if (token === '') throw new RangeError('token must not be empty');

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
  const shedTotal = counterOn<'reason'>(ctx.metrics, {
    name: 'modelwatch_kserve_shed_total',
    help: 'KServe work shed to stay inside kserve.maxPendingBytes: overflow (a waiting half published unpaired early), busy (an event refused with 503).',
    labelNames: ['reason'],
    registers,
  });
  for (const r of KserveShedReasons) shedTotal.inc({ reason: r }, 0);
  const allowHeaders = ctx.config.sidecar.captureHeaders.filter((h) => h !== 'authorization' && h !== 'cookie');

  const captured = (e: KserveEvent | undefined): CapturedBody => {
    if (e === undefined) return emptyBody();
    return {
      body: e.body,
      size: e.size,
      truncated: e.size > e.body.length,
      contentType: e.contentType,
      contentEncoding: '',
    };
  };
  const eventBytes = (e: KserveEvent): number => e.body.length + EVENT_OVERHEAD_BYTES;

  const inflight = new Set<Promise<void>>();
  let publishingBytes = 0;
  const publish = (pair: Pair<KserveEvent, KserveEvent>): void => {
    if (pair.orphanReason === 'overflow') shedTotal.inc({ reason: 'overflow' });
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
    const message = encodeCapture(call);
    const held = message.value.length + EVENT_OVERHEAD_BYTES;
    publishingBytes += held;
    const p = ctx.bus
      .publish([message])
      .then(() => {
        callsTotal.inc({ pairing, result: 'sent' });
      })
      .catch((err: unknown) => {
        callsTotal.inc({ pairing, result: 'failed' });
        ctx.logger.warn('kserve capture publish failed', { requestId: call.requestId, error: errorMessage(err) });
      })
      .finally(() => {
        publishingBytes -= held;
        inflight.delete(p);
      });
    inflight.add(p);
  };

  const pairs = new PairBuffer<KserveEvent, KserveEvent>({
    ttlMs: pairTtlMs,
    maxPending,
    maxPendingBytes,
    sizeOf: eventBytes,
    sweepIntervalMs,
    onPair: publish,
  });
  const gauges = [
    summedGaugeOn(
      ctx.metrics,
      { name: 'modelwatch_kserve_pending_events', help: 'KServe logger events waiting for their other half.' },
      () => pairs.size,
    ),
    summedGaugeOn(
      ctx.metrics,
      {
        name: 'modelwatch_kserve_held_bytes',
        help: 'Bytes the KServe receiver holds: events waiting for their other half plus captures not yet acknowledged by the bus.',
      },
      () => pairs.bytes + publishingBytes,
    ),
  ];

  const fail = (c: Context, err: EventError, type: string): Response => {
    eventsTotal.inc({ type, outcome: 'rejected' });
    return c.json({ error: { code: err.code, message: err.message, field: err.field } }, err.status);
  };

  const guard: MiddlewareHandler = async (c, next) => {
    if (allow !== undefined) {
      let address: string | undefined;
      try {
        address = getConnInfo(c).remote.address;
      } catch {
        address = undefined;
      }
      if (!allowed(allow, address)) {
        return fail(
          c,
          new EventError(403, ErrorCodes.unauthorized, 'client address is not in kserve.allow', 'address'),
          'unknown',
        );
      }
    }
    if (token !== undefined) {
      const bearer = /^Bearer\s+(.+)$/i.exec(c.req.header('authorization') ?? '');
      const given = bearer?.[1]?.trim() ?? c.req.header('x-modelwatch-token') ?? '';
      // Fixed-length digests compared in constant time: neither content nor length leaks through timing.
      if (given === '' || !timingSafeEqual(digest(given), digest(token))) {
        c.header('www-authenticate', 'Bearer realm="modelwatch-kserve"');
        return fail(
          c,
          new EventError(401, ErrorCodes.unauthorized, 'missing or invalid kserve token', 'authorization'),
          'unknown',
        );
      }
    }
    await next();
  };

  const app = new Hono();
  app.post(
    '/',
    guard,
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
        if (publishingBytes >= maxPendingBytes) {
          // The bus is not keeping up: refuse rather than hold more. KServe's logger (or any client)
          // may retry; nothing already accepted is dropped.
          shedTotal.inc({ reason: 'busy' });
          c.header('retry-after', '1');
          throw new EventError(503, ErrorCodes.busFull, 'the bus is not keeping up; retry later', 'body');
        }
        const data = await readCapped(c, maxCaptureBytes);
        const event: KserveEvent = {
          id,
          time,
          service: attr(c, 'ce-inferenceservicename') ?? '',
          namespace: attr(c, 'ce-namespace') ?? '',
          component: attr(c, 'ce-component') ?? '',
          endpoint: attr(c, 'ce-endpoint') ?? '',
          contentType,
          metadata: parseMetadata(attr(c, 'ce-metadata')),
          body: data.body,
          size: data.size,
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
    get pendingBytes() {
      return pairs.bytes;
    },
    get publishingBytes() {
      return publishingBytes;
    },
    sweep: () => pairs.sweep(),
    stop() {
      stopped ??= (async () => {
        pairs.close();
        await Promise.all([...inflight]);
        for (const g of gauges) g.release();
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
