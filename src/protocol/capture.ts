import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import { HeaderBlockMessage, flattened, hasNonAscii, headerBlockOf, varintChars } from '../bus/kafka-header-block.js';

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
  /**
   * The headers as the bytes of a Kafka record's header section, one character per byte (see
   * {@link EncodeCaptureOptions.kafkaHeaderBlock}); when set, `headers` is decoded from it on first read.
   */
  kafkaHeaders?: string;
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

/** `ce_source` per capture source, built once per distinct source. */
const sourceUris = new Map<string, string>();

function sourceUri(source: string): string {
  let uri = sourceUris.get(source);
  if (uri === undefined) {
    uri = `/modelwatch/${source}`;
    // Bounded: producers name a handful of sources; an unbounded stream of names is not cached.
    if (sourceUris.size < 64) sourceUris.set(source, uri);
  }
  return uri;
}

/** Status codes as header values, built once. */
const STATUS_TEXT: string[] = Array.from({ length: 600 }, (_, i) => String(i));

function statusText(status: number): string {
  return (Number.isInteger(status) && status >= 0 && status < 600 ? STATUS_TEXT[status] : undefined) ?? String(status);
}

// `ce_time` of the last record: consecutive records mostly start in the same millisecond.
let lastTimeMs = NaN;
let lastTimeText = '';

function isoTime(ms: number): string {
  if (ms !== lastTimeMs) {
    lastTimeText = new Date(ms).toISOString();
    lastTimeMs = ms;
  }
  return lastTimeText;
}

/**
 * Sum of the header name lengths every capture carries (the names of the always-present headers below):
 * the record size is counted while the headers are built rather than by walking them again.
 */
const FIXED_NAME_CHARS = [
  'ce_specversion',
  'ce_id',
  'ce_source',
  'ce_type',
  'ce_time',
  'ce_subject',
  'content-type',
  'ce_requestid',
  'ce_model',
  'ce_modelversion',
  'ce_capturesource',
  'ce_route',
  'ce_method',
  'ce_status',
  'ce_latencyms',
  'ce_reqsize',
  'ce_reqtruncated',
  'ce_reqcontenttype',
  'ce_reqencoding',
  'ce_ressize',
  'ce_restruncated',
  'ce_rescontenttype',
  'ce_resencoding',
].reduce((n, k) => n + k.length, 0);

/**
 * The captured bodies as chunk lists, for {@link encodeCaptureSized}: when given, they replace
 * `call.request.body` and `call.response.body` (each body is the concatenation of its chunks), so a
 * producer that received a body in pieces hands them over without joining them first.
 */
export type CaptureBodyParts =
  | { request: readonly Buffer[]; response: readonly Buffer[] }
  /**
   * The record's value already laid out (`uint32BE(len(request)) ‖ request ‖ response`), used as is:
   * a producer that read the request straight into the record's buffer copies nothing more.
   */
  | { value: Buffer };

/** A capture encoded as a record, with its size as {@link messageBytes} of the bus counts it. */
export interface EncodedCapture {
  message: CaptureRecord;
  /** `value.length + key.length + Σ (header name length + header value length)`. */
  bytes: number;
}

/** Options of {@link encodeCaptureSized}. */
export interface EncodeCaptureOptions {
  /**
   * Build the headers as a Kafka header block (`kafkaHeaders`) instead of an object: what a publisher
   * in another thread takes (one string per record crosses the thread boundary, and the Produce encoder
   * writes it as is). `headers` stays readable: decoded from the block on first read. The bytes on the
   * topic are the same either way. @default false
   */
  kafkaHeaderBlock?: boolean;
  /** Allocates the record's value when the encoder builds it (a bus's record buffers). @default Buffer.allocUnsafe */
  allocate?: ((bytes: number) => Buffer) | undefined;
}

/** Name prefix of a header in a Kafka header block: the name's varint length, then the name. */
function named(name: string): string {
  return varintChars(name.length) + name;
}
const B_SPECVERSION = named('ce_specversion') + varintChars(3) + '1.0';
const B_ID = named('ce_id');
const B_SOURCE = named('ce_source');
const B_TYPE = named('ce_type') + varintChars(CAPTURE_EVENT_TYPE.length) + CAPTURE_EVENT_TYPE;
const B_TIME = named('ce_time');
const B_SUBJECT = named('ce_subject');
const B_CONTENT_TYPE = named('content-type') + varintChars(CAPTURE_CONTENT_TYPE.length) + CAPTURE_CONTENT_TYPE;
const B_REQUESTID = named('ce_requestid');
const B_MODEL = named('ce_model');
const B_MODELVERSION = named('ce_modelversion');
const B_CAPTURESOURCE = named('ce_capturesource');
const B_ROUTE = named('ce_route');
const B_METHOD = named('ce_method');
const B_STATUS = named('ce_status');
const B_LATENCYMS = named('ce_latencyms');
const B_REQSIZE = named('ce_reqsize');
const B_REQTRUNCATED = named('ce_reqtruncated');
const B_REQCONTENTTYPE = named('ce_reqcontenttype');
const B_REQENCODING = named('ce_reqencoding');
const B_RESSIZE = named('ce_ressize');
const B_RESTRUNCATED = named('ce_restruncated');
const B_RESCONTENTTYPE = named('ce_rescontenttype');
const B_RESENCODING = named('ce_resencoding');
const B_REQHEADERLENGTH = named('ce_reqheaderlength');
const B_RESHEADERLENGTH = named('ce_resheaderlength');
const B_HTTPHEADERS = named('ce_httpheaders');
const B_ERROR = named('ce_error');

/** A header value in a block (ASCII only): its varint length, then itself. */
function v(s: string): string {
  return varintChars(s.length) + s;
}

/**
 * Encodes a call as a Kafka record in CloudEvents binary mode (Kafka protocol binding: attributes as
 * `ce_*` headers). The value is `uint32BE(len(request)) ‖ request ‖ response`.
 */
export function encodeCapture(call: CapturedCall): CaptureRecord {
  return encodeCaptureSized(call).message;
}

/**
 * {@link encodeCapture}, also returning the record's size (counted once, while it is built). The headers
 * are one object literal with literal names; values that repeat (source URI, status, time of the same
 * millisecond) are built once. The value is one buffer: from Node's shared pool when small (under 4 KiB),
 * else its own allocation of exactly its size, which a publisher in another thread can take by transfer
 * instead of a copy (see KafkaWorkerBus).
 */
export function encodeCaptureSized(
  call: CapturedCall,
  bodies?: CaptureBodyParts,
  options?: EncodeCaptureOptions,
): EncodedCapture {
  const rq = call.request;
  const rs = call.response;
  const f: HeaderFields = {
    source: sourceUri(call.source),
    time: isoTime(call.startedAt),
    status: statusText(call.status),
    latency: String(call.latencyMs),
    reqSize: String(rq.size),
    resSize: String(rs.size),
    reqTruncated: rq.truncated ? 'true' : 'false',
    resTruncated: rs.truncated ? 'true' : 'false',
    reqHeaderLength: rq.headerLength !== undefined ? String(rq.headerLength) : undefined,
    resHeaderLength: rs.headerLength !== undefined ? String(rs.headerLength) : undefined,
    httpHeaders: undefined,
  };
  for (const _ in call.headers) {
    f.httpHeaders = JSON.stringify(call.headers);
    break;
  }
  let chars =
    FIXED_NAME_CHARS +
    3 + // '1.0'
    call.eventId.length +
    f.source.length +
    CAPTURE_EVENT_TYPE.length +
    f.time.length +
    call.model.length * 2 +
    CAPTURE_CONTENT_TYPE.length +
    call.requestId.length +
    call.version.length +
    call.source.length +
    call.route.length +
    call.method.length +
    f.status.length +
    f.latency.length +
    f.reqSize.length +
    f.reqTruncated.length +
    rq.contentType.length +
    rq.contentEncoding.length +
    f.resSize.length +
    f.resTruncated.length +
    rs.contentType.length +
    rs.contentEncoding.length;
  if (f.reqHeaderLength !== undefined) chars += 18 + f.reqHeaderLength.length;
  if (f.resHeaderLength !== undefined) chars += 18 + f.resHeaderLength.length;
  if (f.httpHeaders !== undefined) chars += 14 + f.httpHeaders.length;
  if (call.error !== '') chars += 8 + call.error.length;
  let value: Buffer;
  let size: number;
  if (bodies === undefined) {
    const req = rq.body;
    const res = rs.body;
    size = 4 + req.length + res.length;
    value = Buffer.allocUnsafe(size);
    value.writeUInt32BE(req.length, 0);
    req.copy(value, 4);
    res.copy(value, 4 + req.length);
  } else if ('value' in bodies) {
    value = bodies.value;
    size = value.length;
    if (size < 4 || 4 + value.readUInt32BE(0) > size) {
      throw new ModelwatchError(ErrorCodes.internal, 'capture value is shorter than its request length prefix', {
        field: 'value',
      });
    }
  } else {
    // The bodies as the chunks they arrived in: each byte is copied once, into the value.
    let reqLen = 0;
    for (const c of bodies.request) reqLen += c.length;
    let resLen = 0;
    for (const c of bodies.response) resLen += c.length;
    size = 4 + reqLen + resLen;
    value = options?.allocate !== undefined ? options.allocate(size) : Buffer.allocUnsafe(size);
    value.writeUInt32BE(reqLen, 0);
    let at = 4;
    for (const c of bodies.request) at += c.copy(value, at);
    for (const c of bodies.response) at += c.copy(value, at);
  }
  const bytes = size + call.requestId.length + chars;
  if (options?.kafkaHeaderBlock !== true) {
    return { message: { key: call.requestId, value, headers: headerObject(call, f) }, bytes };
  }
  // Flat, not a rope of ~60 pieces: the record may wait in the tee a long time (see `flattened`).
  return { message: new HeaderBlockMessage(call.requestId, value, flattened(headerBlock(call, f))), bytes };
}

/** Header values {@link encodeCaptureSized} derives from the call (built once, for the object or the block). */
interface HeaderFields {
  source: string;
  time: string;
  status: string;
  latency: string;
  reqSize: string;
  resSize: string;
  reqTruncated: string;
  resTruncated: string;
  reqHeaderLength: string | undefined;
  resHeaderLength: string | undefined;
  httpHeaders: string | undefined;
}

/** The record's headers as an object literal with literal names, in the order of the format. */
function headerObject(call: CapturedCall, f: HeaderFields): Record<string, string> {
  const rq = call.request;
  const rs = call.response;
  const headers: Record<string, string> = {
    ce_specversion: '1.0',
    ce_id: call.eventId,
    ce_source: f.source,
    ce_type: CAPTURE_EVENT_TYPE,
    ce_time: f.time,
    ce_subject: call.model,
    'content-type': CAPTURE_CONTENT_TYPE,
    ce_requestid: call.requestId,
    ce_model: call.model,
    ce_modelversion: call.version,
    ce_capturesource: call.source,
    ce_route: call.route,
    ce_method: call.method,
    ce_status: f.status,
    ce_latencyms: f.latency,
    ce_reqsize: f.reqSize,
    ce_reqtruncated: f.reqTruncated,
    ce_reqcontenttype: rq.contentType,
    ce_reqencoding: rq.contentEncoding,
    ce_ressize: f.resSize,
    ce_restruncated: f.resTruncated,
    ce_rescontenttype: rs.contentType,
    ce_resencoding: rs.contentEncoding,
  };
  if (f.reqHeaderLength !== undefined) headers.ce_reqheaderlength = f.reqHeaderLength;
  if (f.resHeaderLength !== undefined) headers.ce_resheaderlength = f.resHeaderLength;
  if (f.httpHeaders !== undefined) headers.ce_httpheaders = f.httpHeaders;
  if (call.error !== '') headers.ce_error = call.error;
  return headers;
}

/**
 * The Kafka header block of the headers {@link headerObject} gives, in their order, without building the
 * object: one string concatenation when every free-text value is ASCII, else through `headerBlockOf`
 * (UTF-8 lengths).
 */
function headerBlock(call: CapturedCall, f: HeaderFields): string {
  const rq = call.request;
  const rs = call.response;
  if (
    hasNonAscii(
      call.eventId +
        call.model +
        call.requestId +
        call.version +
        call.source +
        call.route +
        call.method +
        rq.contentType +
        rq.contentEncoding +
        rs.contentType +
        rs.contentEncoding +
        (f.httpHeaders ?? '') +
        call.error,
    )
  ) {
    return headerBlockOf(headerObject(call, f));
  }
  let n = 23;
  let s =
    B_SPECVERSION +
    B_ID +
    v(call.eventId) +
    B_SOURCE +
    v(f.source) +
    B_TYPE +
    B_TIME +
    v(f.time) +
    B_SUBJECT +
    v(call.model) +
    B_CONTENT_TYPE +
    B_REQUESTID +
    v(call.requestId) +
    B_MODEL +
    v(call.model) +
    B_MODELVERSION +
    v(call.version) +
    B_CAPTURESOURCE +
    v(call.source) +
    B_ROUTE +
    v(call.route) +
    B_METHOD +
    v(call.method) +
    B_STATUS +
    v(f.status) +
    B_LATENCYMS +
    v(f.latency) +
    B_REQSIZE +
    v(f.reqSize) +
    B_REQTRUNCATED +
    v(f.reqTruncated) +
    B_REQCONTENTTYPE +
    v(rq.contentType) +
    B_REQENCODING +
    v(rq.contentEncoding) +
    B_RESSIZE +
    v(f.resSize) +
    B_RESTRUNCATED +
    v(f.resTruncated) +
    B_RESCONTENTTYPE +
    v(rs.contentType) +
    B_RESENCODING +
    v(rs.contentEncoding);
  if (f.reqHeaderLength !== undefined) {
    s += B_REQHEADERLENGTH + v(f.reqHeaderLength);
    n++;
  }
  if (f.resHeaderLength !== undefined) {
    s += B_RESHEADERLENGTH + v(f.resHeaderLength);
    n++;
  }
  if (f.httpHeaders !== undefined) {
    s += B_HTTPHEADERS + v(f.httpHeaders);
    n++;
  }
  if (call.error !== '') {
    s += B_ERROR + v(call.error);
    n++;
  }
  return varintChars(n) + s;
}

function need(h: Record<string, string>, name: string): string {
  const v = h[name];
  if (v === undefined) {
    throw new ModelwatchError(ErrorCodes.decodeInvalid, `capture header ${name} is missing`, { field: name });
  }
  return v;
}

function num(h: Record<string, string>, name: string): number {
  return checkedNum(need(h, name), name);
}

function checkedNum(raw: string, name: string): number {
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0) {
    throw new ModelwatchError(ErrorCodes.decodeInvalid, `capture header ${name} is not a non-negative number`, {
      field: name,
    });
  }
  return v;
}

/** The header names of one side of a capture, as literals (a key built per call is looked up slowly). */
interface BodyHeaderNames {
  headerLength: string;
  size: string;
  truncated: string;
  contentType: string;
  encoding: string;
}
const REQ_HEADERS: BodyHeaderNames = {
  headerLength: 'ce_reqheaderlength',
  size: 'ce_reqsize',
  truncated: 'ce_reqtruncated',
  contentType: 'ce_reqcontenttype',
  encoding: 'ce_reqencoding',
};
const RES_HEADERS: BodyHeaderNames = {
  headerLength: 'ce_resheaderlength',
  size: 'ce_ressize',
  truncated: 'ce_restruncated',
  contentType: 'ce_rescontenttype',
  encoding: 'ce_resencoding',
};

function readBody(h: Record<string, string>, names: BodyHeaderNames, body: Buffer): CapturedBody {
  const rawHeaderLength = h[names.headerLength];
  return {
    body,
    size: num(h, names.size),
    truncated: h[names.truncated] === 'true',
    contentType: h[names.contentType] ?? '',
    contentEncoding: h[names.encoding] ?? '',
    headerLength: rawHeaderLength === undefined ? undefined : checkedNum(rawHeaderLength, names.headerLength),
  };
}

/** `ce_time`'s text up to its minute (`YYYY-MM-DDTHH:MM:`) last parsed, and that minute as epoch ms. */
let lastMinuteText = '';
let lastMinuteMs = NaN;

function digit(s: string, i: number): number {
  const d = s.charCodeAt(i) - 48;
  return d >= 0 && d <= 9 ? d : NaN;
}

/**
 * `Date.parse(text)`, with the common case made cheap: consecutive captures share their minute, so a
 * `YYYY-MM-DDTHH:MM:SS.mmmZ` text (what {@link encodeCapture} writes) whose minute was the last one parsed
 * is that minute plus its seconds and milliseconds (exactly what `Date.parse` gives for seconds 00–59).
 */
function parseCaptureTime(text: string): number {
  if (
    text.length === 24 &&
    text.charCodeAt(4) === 45 /* - */ &&
    text.charCodeAt(7) === 45 /* - */ &&
    text.charCodeAt(10) === 84 /* T */ &&
    text.charCodeAt(13) === 58 /* : */ &&
    text.charCodeAt(16) === 58 /* : */ &&
    text.charCodeAt(19) === 46 /* . */ &&
    text.charCodeAt(23) === 90 /* Z */
  ) {
    const sec = digit(text, 17) * 10 + digit(text, 18);
    const milli = digit(text, 20) * 100 + digit(text, 21) * 10 + digit(text, 22);
    // Hour 24 is a time only as 24:00:00.000 (the next midnight): leave it to Date.parse.
    const hour24 = text.charCodeAt(11) === 50 /* 2 */ && text.charCodeAt(12) === 52; /* 4 */
    if (sec < 60 && milli >= 0 && !hour24) {
      const minute = text.slice(0, 17);
      if (minute !== lastMinuteText) {
        lastMinuteMs = Date.parse(`${minute}00.000Z`);
        lastMinuteText = minute;
      }
      if (!Number.isNaN(lastMinuteMs)) return lastMinuteMs + sec * 1000 + milli;
    }
  }
  return Date.parse(text);
}

/**
 * The parsed `ce_httpheaders` object with every value as a string: the object itself when its values are all
 * strings already (what {@link encodeCapture} writes; no copy), else a copy with `String(value)`.
 */
function stringValues(parsed: object): Record<string, string> {
  const obj = parsed as Record<string, unknown>;
  for (const k in obj) {
    if (typeof obj[k] !== 'string') {
      return Object.fromEntries(Object.entries(obj).map(([key, val]) => [key, String(val)]));
    }
  }
  return obj as Record<string, string>;
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
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) headers = stringValues(parsed);
    } catch {
      throw new ModelwatchError(ErrorCodes.decodeInvalid, 'ce_httpheaders is not a JSON object', {
        field: 'ce_httpheaders',
      });
    }
  }
  const startedAt = parseCaptureTime(need(h, 'ce_time'));
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
    request: readBody(h, REQ_HEADERS, v.subarray(4, 4 + reqLen)),
    response: readBody(h, RES_HEADERS, v.subarray(4 + reqLen)),
    headers,
    error: h.ce_error ?? '',
  };
}
