import { ErrorCodes, ModelwatchError } from '../common/errors.js';

/**
 * A capture as a record: the shape every bus carries (Kafka record key, value and string headers).
 * Structurally the same as the bus's `BusMessage`, defined here so the capture format depends on no
 * transport.
 */
export interface CaptureRecord {
  /** The request id, so a producer retry lands on the same partition. */
  key: string | null;
  value: Buffer;
  headers: Record<string, string>;
}

/** Where a capture came from. */
export const CaptureSources = ['rest', 'grpc', 'kserve', 'seldon'] as const;
/** One of {@link CaptureSources} (other producers may use their own names). */
export type CaptureSource = (typeof CaptureSources)[number] | (string & {});

/** One captured body, possibly truncated at the capture cap. */
export interface CapturedBody {
  /** The captured bytes (at most the cap), still content-encoded as on the wire. */
  body: Buffer;
  /** Full size on the wire in bytes (may exceed `body.length`). */
  size: number;
  truncated: boolean;
  contentType: string;
  contentEncoding: string;
  /** Triton binary extension: `Inference-Header-Content-Length`, when present. */
  headerLength?: number | undefined;
}

/** One inference call as the sidecar (or another producer) captured it. */
export interface CapturedCall {
  /** Unique per record (idempotence downstream). */
  eventId: string;
  /** Correlates request, response and labels: incoming `x-request-id`/`ce-id`, else minted. */
  requestId: string;
  source: CaptureSource;
  model: string;
  version: string;
  /** Request path (REST) or RPC name (gRPC). */
  route: string;
  method: string;
  /** HTTP status, or the HTTP mapping of a gRPC status. */
  status: number;
  /** Request start, epoch ms. */
  startedAt: number;
  latencyMs: number;
  request: CapturedBody;
  response: CapturedBody;
  /** Allow-listed headers (lower-case names). */
  headers: Record<string, string>;
  /** Transport-level error (upstream unreachable, reset), '' when none. */
  error: string;
}

/** Content type recorded for captured protobuf messages (the message bytes, without gRPC framing). */
export const PROTOBUF_CONTENT_TYPE = 'application/x-protobuf';

/** The media type of a capture envelope (docs/record-format.md). */
export const CAPTURE_CONTENT_TYPE = 'application/vnd.modelwatch.capture.v1';
/** CloudEvents `type` of a capture. */
export const CAPTURE_EVENT_TYPE = 'io.modelwatch.inference.v1';

function bodyHeaders(prefix: 'req' | 'res', b: CapturedBody): Record<string, string> {
  const h: Record<string, string> = {
    [`ce_${prefix}size`]: String(b.size),
    [`ce_${prefix}truncated`]: b.truncated ? 'true' : 'false',
    [`ce_${prefix}contenttype`]: b.contentType,
    [`ce_${prefix}encoding`]: b.contentEncoding,
  };
  if (b.headerLength !== undefined) h[`ce_${prefix}headerlength`] = String(b.headerLength);
  return h;
}

/**
 * Encodes a call as a Kafka record in CloudEvents binary mode (Kafka protocol binding: attributes as
 * `ce_*` headers). The value is `uint32BE(len(request)) ‖ request ‖ response`.
 */
export function encodeCapture(call: CapturedCall): CaptureRecord {
  const headers: Record<string, string> = {
    ce_specversion: '1.0',
    ce_id: call.eventId,
    ce_source: `/modelwatch/${call.source}`,
    ce_type: CAPTURE_EVENT_TYPE,
    ce_time: new Date(call.startedAt).toISOString(),
    ce_subject: call.model,
    'content-type': CAPTURE_CONTENT_TYPE,
    ce_requestid: call.requestId,
    ce_model: call.model,
    ce_modelversion: call.version,
    ce_capturesource: call.source,
    ce_route: call.route,
    ce_method: call.method,
    ce_status: String(call.status),
    ce_latencyms: String(call.latencyMs),
    ...bodyHeaders('req', call.request),
    ...bodyHeaders('res', call.response),
  };
  if (Object.keys(call.headers).length > 0) headers.ce_httpheaders = JSON.stringify(call.headers);
  if (call.error !== '') headers.ce_error = call.error;
  // One unpooled allocation per record: the value owns its whole ArrayBuffer, so a publisher in another
  // thread can take it by transfer instead of a copy (see KafkaWorkerBus).
  const req = call.request.body;
  const res = call.response.body;
  const value = Buffer.allocUnsafeSlow(4 + req.length + res.length);
  value.writeUInt32BE(req.length, 0);
  req.copy(value, 4);
  res.copy(value, 4 + req.length);
  return { key: call.requestId, value, headers };
}

function need(h: Record<string, string>, name: string): string {
  const v = h[name];
  if (v === undefined) {
    throw new ModelwatchError(ErrorCodes.decodeInvalid, `capture header ${name} is missing`, { field: name });
  }
  return v;
}

function num(h: Record<string, string>, name: string, opts: { optional?: boolean } = {}): number {
  const raw = h[name];
  if (raw === undefined && opts.optional === true) return NaN;
  const v = Number(need(h, name));
  if (!Number.isFinite(v) || v < 0) {
    throw new ModelwatchError(ErrorCodes.decodeInvalid, `capture header ${name} is not a non-negative number`, {
      field: name,
    });
  }
  return v;
}

function readBody(h: Record<string, string>, prefix: 'req' | 'res', body: Buffer): CapturedBody {
  const headerLength = num(h, `ce_${prefix}headerlength`, { optional: true });
  return {
    body,
    size: num(h, `ce_${prefix}size`),
    truncated: h[`ce_${prefix}truncated`] === 'true',
    contentType: h[`ce_${prefix}contenttype`] ?? '',
    contentEncoding: h[`ce_${prefix}encoding`] ?? '',
    headerLength: Number.isNaN(headerLength) ? undefined : headerLength,
  };
}

/** Decodes a capture envelope; throws `decode_invalid` naming the bad header or field. */
export function decodeCapture(message: CaptureRecord): CapturedCall {
  const h = message.headers;
  const type = need(h, 'ce_type');
  if (type !== CAPTURE_EVENT_TYPE) {
    throw new ModelwatchError(ErrorCodes.decodeInvalid, `ce_type ${type} is not ${CAPTURE_EVENT_TYPE}`, {
      field: 'ce_type',
    });
  }
  const v = message.value;
  if (v.length < 4) {
    throw new ModelwatchError(ErrorCodes.decodeInvalid, 'capture value shorter than its 4-byte length prefix', {
      field: 'value',
    });
  }
  const reqLen = v.readUInt32BE(0);
  if (4 + reqLen > v.length) {
    throw new ModelwatchError(ErrorCodes.decodeInvalid, `capture request length ${reqLen} runs past the value end`, {
      field: 'value',
    });
  }
  let headers: Record<string, string> = {};
  if (h.ce_httpheaders !== undefined) {
    try {
      const parsed: unknown = JSON.parse(h.ce_httpheaders);
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
        headers = Object.fromEntries(Object.entries(parsed).map(([k, val]) => [k, String(val)]));
      }
    } catch {
      throw new ModelwatchError(ErrorCodes.decodeInvalid, 'ce_httpheaders is not a JSON object', {
        field: 'ce_httpheaders',
      });
    }
  }
  const startedAt = Date.parse(need(h, 'ce_time'));
  if (Number.isNaN(startedAt)) {
    throw new ModelwatchError(ErrorCodes.decodeInvalid, 'ce_time is not an RFC 3339 time', { field: 'ce_time' });
  }
  return {
    eventId: need(h, 'ce_id'),
    requestId: h.ce_requestid ?? need(h, 'ce_id'),
    source: h.ce_capturesource ?? 'rest',
    model: h.ce_model ?? h.ce_subject ?? '',
    version: h.ce_modelversion ?? '',
    route: h.ce_route ?? '',
    method: h.ce_method ?? 'POST',
    status: num(h, 'ce_status'),
    startedAt,
    latencyMs: num(h, 'ce_latencyms'),
    request: readBody(h, 'req', v.subarray(4, 4 + reqLen)),
    response: readBody(h, 'res', v.subarray(4 + reqLen)),
    headers,
    error: h.ce_error ?? '',
  };
}
