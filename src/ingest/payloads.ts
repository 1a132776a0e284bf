/**
 * Faithful inputs for the shadow runner: the captured request body of each inference call, stored as
 * received (bytes, content type, content encoding, Triton binary header length) in `mw_payloads`, with a
 * per-row expiry of `retention.payloadDays`. Replay decodes these bytes with the same V2 decoder as ingest.
 */
import { isUtf8 } from 'node:buffer';
import type { CapturedCall } from '../protocol/capture.js';
import { ShadowTables } from '../store/migrations.js';
import type { InsertOptions, SqlPort } from '../store/port.js';

/** How `mw_payloads.body` holds the bytes. */
export type PayloadStorage = 'text' | 'base64';

/** One row of `mw_payloads` as inserted (times as integers: no date text is built per call). */
export interface PayloadRow {
  model: string;
  version: string;
  /** Capture time, epoch ms (what `DateTime64(3)` reads from an integer). */
  ts: number;
  event_id: string;
  request_id: string;
  source: string;
  content_type: string;
  content_encoding: string;
  /** Triton `Inference-Header-Content-Length`, -1 when absent. */
  header_length: number;
  size: number;
  truncated: boolean;
  storage: PayloadStorage;
  body: string;
  /** Expiry, epoch seconds (what `DateTime` reads from an integer). */
  expires_at: number;
}

/** Options of {@link payloadRowOf} and {@link PayloadRecorder}. */
export interface PayloadOptions {
  /** Days a payload is kept (`retention.payloadDays`). @default 7 */
  days?: number;
  /** Models whose payloads are not stored (`models.<m>.payloads: false`). @default none */
  disabled?: ReadonlySet<string>;
}

const DAY_MS = 86_400_000;

/**
 * Bytes as `mw_payloads.body` keeps them: valid UTF-8 (JSON bodies) verbatim — it round-trips exactly
 * through JSONEachRow and compresses well under ZSTD — anything else as base64.
 */
export function encodePayloadBody(body: Buffer): { storage: PayloadStorage; body: string } {
  if (isUtf8(body)) return { storage: 'text', body: body.toString('utf8') };
  return { storage: 'base64', body: body.toString('base64') };
}

/** The bytes of a stored body. */
export function decodePayloadBody(storage: string, body: string): Buffer {
  return storage === 'base64' ? Buffer.from(body, 'base64') : Buffer.from(body, 'utf8');
}

/**
 * The payload row of a call, or undefined when its model's switch is off. A truncated capture is kept as
 * a marker row with an empty body (replay counts it and falls back to the stored features).
 */
export function payloadRowOf(
  call: CapturedCall,
  model: string,
  version: string,
  options: PayloadOptions = {},
): PayloadRow | undefined {
  if (options.disabled?.has(model) === true) return undefined;
  const req = call.request;
  // A truncated capture is a marker with an empty body; else valid UTF-8 verbatim, anything else as base64
  // (what encodePayloadBody gives, without its intermediate object).
  const text = req.truncated || isUtf8(req.body);
  const body = req.truncated ? '' : text ? req.body.toString('utf8') : req.body.toString('base64');
  // DateTime has second precision: round the expiry up so a payload never expires early.
  const expires = Math.ceil((call.startedAt + (options.days ?? 7) * DAY_MS) / 1000);
  return {
    model,
    version,
    ts: Math.floor(call.startedAt),
    event_id: call.eventId,
    request_id: call.requestId,
    source: call.source,
    content_type: req.contentType,
    content_encoding: req.contentEncoding,
    header_length: req.headerLength ?? -1,
    size: req.size,
    truncated: req.truncated,
    storage: text ? 'text' : 'base64',
    body,
    expires_at: expires,
  };
}

/** Inserts payload rows (the ingest pipeline calls it with the rows of the calls it stores). */
export async function insertPayloads(
  store: SqlPort,
  rows: readonly PayloadRow[],
  options: InsertOptions = {},
): Promise<void> {
  if (rows.length === 0) return;
  await store.insert(ShadowTables.payloads, rows, options);
}

/** The models whose `payloads` switch is off in a `models` config section. */
export function payloadsDisabled(models: Readonly<Record<string, object>>): Set<string> {
  return new Set(
    Object.entries(models).flatMap(([name, m]) => ((m as { payloads?: unknown }).payloads === false ? [name] : [])),
  );
}
