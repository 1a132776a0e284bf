import type { CapturedCall } from '../protocol/capture.js';
import type { ConsumedMessage } from '../bus/types.js';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import type { PredictionRow, QuarantineRow, RequestRow } from '../store/rows.js';
import type { DecodedCall } from '../protocol/decode-call.js';

/** Largest payload kept in a quarantine row, before base64. */
export const QUARANTINE_PAYLOAD_BYTES = 64 * 1024;
/** Largest upstream error body copied into `mw_requests.error`. */
const ERROR_TEXT_BYTES = 1024;

/** Why a record was quarantined: its bus envelope or its V2 body could not be decoded. */
export const QuarantineReasons = ['envelope', 'body'] as const;
/** One of {@link QuarantineReasons}. */
export type QuarantineReason = (typeof QuarantineReasons)[number];

/** The rows one call produces. */
export interface CallRecords {
  request: RequestRow;
  predictions: PredictionRow[];
  /** Set when the body of a call that should have decoded (2xx, complete capture) did not. */
  quarantine?: QuarantineRow | undefined;
}

function codeOf(err: unknown): { code: string; field: string } {
  if (err instanceof ModelwatchError) return { code: err.code, field: err.field ?? '' };
  return { code: ErrorCodes.internal, field: '' };
}

function payloadOf(value: Buffer): string {
  return value.subarray(0, QUARANTINE_PAYLOAD_BYTES).toString('base64');
}

/** The quarantine row of a record whose bus envelope could not be decoded. */
export function envelopeQuarantine(message: ConsumedMessage, origin: string, err: unknown): QuarantineRow {
  const h = message.headers;
  return {
    event_id: h.ce_id ?? '',
    request_id: h.ce_requestid ?? message.key ?? '',
    model: h.ce_model ?? h.ce_subject ?? '',
    source: h.ce_capturesource ?? '',
    origin,
    ...codeOf(err),
    reason: `envelope: ${errorMessage(err)}`,
    payload: payloadOf(message.value),
  };
}

function failedCallText(call: CapturedCall): string {
  if (call.error !== '') return call.error;
  if (call.status >= 400) return call.response.body.subarray(0, ERROR_TEXT_BYTES).toString('utf8');
  return '';
}

/**
 * True for a call the model answered with a 2xx status; only these become prediction rows (and only their
 * bodies decode into rows at all). A 2xx call whose client went away mid-response keeps its status and its
 * error text, and still counts when its bodies decode completely.
 */
export function isSuccessfulCall(call: Pick<CapturedCall, 'status'>): boolean {
  return call.status >= 200 && call.status < 300;
}

/**
 * Turns a decoded envelope into its request row, prediction rows and, when the body did not decode,
 * a quarantine row. `decode` is `decodeCall` bound to the model's schema. A failed call (non-2xx status,
 * including transport errors) yields its request row only, with the status and the error text: whatever its bodies
 * hold, it is not a prediction, so it never feeds drift or performance and never makes a model exist.
 */
export function buildCallRecords(
  call: CapturedCall,
  origin: string,
  value: Buffer,
  decode: (call: CapturedCall) => DecodedCall,
): CallRecords {
  let decoded: DecodedCall | undefined;
  let decodeError: unknown;
  try {
    decoded = decode(call);
  } catch (err) {
    decodeError = err;
  }
  const model = call.model !== '' ? call.model : (decoded?.model ?? '');
  const version = call.version !== '' ? call.version : (decoded?.version ?? '');
  const predictions: PredictionRow[] = (isSuccessfulCall(call) ? (decoded?.rows ?? []) : []).map((r, row) => ({
    model,
    version,
    ts: call.startedAt,
    event_id: call.eventId,
    request_id: call.requestId,
    row,
    features_num: r.features_num,
    features_cat: r.features_cat,
    outputs_num: r.outputs_num,
    outputs_cat: r.outputs_cat,
  }));
  let error = failedCallText(call);
  let quarantine: QuarantineRow | undefined;
  if (decodeError !== undefined) {
    const text = `${codeOf(decodeError).code}: ${errorMessage(decodeError)}`;
    if (error === '') error = text;
    // A failed call (transport error, non-2xx) or a capture cut at the cap is expected not to decode;
    // only a complete 2xx call that does not decode is a bad record worth keeping for inspection.
    const expected = call.error !== '' || !isSuccessfulCall(call) || call.request.truncated || call.response.truncated;
    if (!expected) {
      quarantine = {
        event_id: call.eventId,
        request_id: call.requestId,
        model,
        source: call.source,
        origin,
        ...codeOf(decodeError),
        reason: `body: ${errorMessage(decodeError)}`,
        payload: payloadOf(value),
      };
    }
  }
  return {
    request: {
      model,
      version,
      ts: call.startedAt,
      event_id: call.eventId,
      request_id: call.requestId,
      source: call.source,
      route: call.route,
      status: call.status,
      latency_ms: call.latencyMs,
      request_bytes: call.request.size,
      response_bytes: call.response.size,
      request_truncated: call.request.truncated,
      response_truncated: call.response.truncated,
      rows: predictions.length,
      error,
    },
    predictions,
    quarantine,
  };
}
