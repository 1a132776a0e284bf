// The JSONCompactEachRow bodies ingest inserts (src/ingest/encode.ts) round-trip every column type of the
// ingest tables through real chdb: LowCardinality, DateTime64(3) and DateTime, Map(String, Float64) with
// non-finite values, Map(String, String), Bool, UInt16/UInt32/UInt64, Int64, Float64, and strings with quotes,
// backslashes, control characters and non-ASCII text. Also the encoded insert's own contract: the dedup token
// drops a re-sent body, an empty body is a no-op, and a binary format is refused.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BufferPool,
  ByteSink,
  withoutRanges,
  PayloadColumns,
  PredictionColumns,
  QuarantineColumns,
  RequestColumns,
  INGEST_FORMAT,
  payloadLine,
  predictionLine,
  quarantineLine,
  requestLine,
} from '../src/ingest/encode.js';
import { payloadRowOf } from '../src/ingest/payloads.js';
import { Tables, type ClickHouseStore, type EncodedInsertFormat } from '../src/store/index.js';
import { ShadowTables } from '../src/store/migrations.js';
import type { PredictionRow, QuarantineRow, RequestRow } from '../src/store/rows.js';
import { makeCall } from './support/ingest.js';
import { openTestStore } from './support/store.js';

let store: ClickHouseStore;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
});

afterAll(async () => {
  await cleanup();
});

/** Strings no encoder may mangle. */
const NASTY = [
  `quote " and ' apostrophe`,
  'back\\slash \\n not a newline',
  'tab\there\nnewline\r\u0000nul',
  'ünïcödé ✓ 中文 🎯',
];

const noNums: Record<string, number> = {};
const noCats: Record<string, string> = {};

function body(lines: string[]): Buffer {
  // A tiny first buffer: the body grows several times, lines longer than the buffer among them.
  const sink = new ByteSink({ firstBufferBytes: 8 });
  for (const l of lines) sink.add(l);
  return sink.body();
}

describe('ingest encoding (JSONCompactEachRow) through chdb', () => {
  it('round-trips prediction rows: maps with non-finite floats, strings, LowCardinality, DateTime64, UInt32', async () => {
    const ts = Date.UTC(2026, 2, 3, 4, 5, 6, 789);
    const rows: PredictionRow[] = NASTY.map((s, i) => ({
      model: `enc-${s}`,
      version: `v-${s}`,
      ts: ts + i,
      event_id: `ev-${s}`,
      request_id: `req-${s}`,
      row: i === 0 ? 4_294_967_295 : i,
      features_num: {
        [`k ${s}`]: 1.25,
        nan: NaN,
        pinf: Infinity,
        ninf: -Infinity,
        tiny: 5e-324,
        big: 1.7976931348623157e308,
      },
      features_cat: { [`c ${s}`]: s, empty: '' },
      outputs_num: i === 1 ? noNums : { p: -0.5 },
      outputs_cat: i === 2 ? noCats : { label: s },
    }));
    await store.insertEncoded(Tables.predictions, body(rows.map(predictionLine)), {
      format: INGEST_FORMAT,
      columns: PredictionColumns,
    });
    const got = await store.query<{
      model: string;
      version: string;
      ts_ms: number;
      event_id: string;
      request_id: string;
      row: number;
      keys: string[];
      fin: number[];
      nan: number;
      pinf: number;
      ninf: number;
      features_cat: Record<string, string>;
      outputs_num: Record<string, number>;
      outputs_cat: Record<string, string>;
    }>(
      `SELECT model, version, toUnixTimestamp64Milli(ts) AS ts_ms, event_id, request_id, row,
              arraySort(mapKeys(features_num)) AS keys,
              [features_num['tiny'], features_num['big']] AS fin,
              isNaN(features_num['nan']) AS nan, features_num['pinf'] = inf AS pinf, features_num['ninf'] = -inf AS ninf,
              features_cat, outputs_num, outputs_cat
       FROM ${Tables.predictions} WHERE startsWith(model, 'enc-') ORDER BY ts`,
    );
    expect(got).toHaveLength(rows.length);
    got.forEach((g, i) => {
      const r = rows[i] as PredictionRow;
      expect(g).toEqual({
        model: r.model,
        version: r.version,
        ts_ms: r.ts,
        event_id: r.event_id,
        request_id: r.request_id,
        row: r.row,
        keys: Object.keys(r.features_num).sort(),
        fin: [5e-324, 1.7976931348623157e308],
        nan: 1,
        pinf: 1,
        ninf: 1,
        features_cat: r.features_cat,
        outputs_num: r.outputs_num,
        outputs_cat: r.outputs_cat,
      });
      expect(g.keys).toContain(`k ${NASTY[i]}`);
    });
  });

  it('round-trips request rows: Bool, UInt16, UInt64, Float64 (non-finite latency stored as 0), error text', async () => {
    const ts = Date.UTC(2026, 2, 3, 0, 0, 0, 1);
    const rows: RequestRow[] = NASTY.map((s, i) => ({
      model: 'enc-req',
      version: s,
      ts: ts + i,
      event_id: `rq-${i}`,
      request_id: s,
      source: i % 2 === 0 ? 'rest' : 'grpc',
      route: `/v2/models/${s}/infer?x=1`,
      status: i === 0 ? 65_535 : 200 + i,
      latency_ms: i === 1 ? NaN : 12.345 + i,
      request_bytes: Number.MAX_SAFE_INTEGER - i,
      response_bytes: i,
      request_truncated: i % 2 === 0,
      response_truncated: i % 2 === 1,
      rows: 4_294_967_295 - i,
      error: s,
    }));
    await store.insertEncoded(Tables.requests, body(rows.map(requestLine)), {
      format: INGEST_FORMAT,
      columns: RequestColumns,
    });
    const got = await store.query<Record<string, unknown>>(
      `SELECT model, version, toUnixTimestamp64Milli(ts) AS ts, event_id, request_id, source, route, status, latency_ms,
              request_bytes, response_bytes, request_truncated, response_truncated, rows, error
       FROM ${Tables.requests} WHERE model = 'enc-req' ORDER BY ts`,
    );
    expect(got).toEqual(rows.map((r) => ({ ...r, latency_ms: Number.isFinite(r.latency_ms) ? r.latency_ms : 0 })));
  });

  it('round-trips payload rows (text and base64 bodies, Int64, DateTime expiry) and quarantine rows', async () => {
    // Captured now: `expires_at` is a TTL, and rows already past it may be dropped on insert.
    const call = makeCall(7, 2, { startedAt: Date.now() });
    const text = payloadRowOf(call, 'enc-pay', '1', { days: 3 });
    const binary = payloadRowOf(
      {
        ...call,
        eventId: 'bin-7',
        request: { ...call.request, body: Buffer.from([0, 255, 1, 254]), headerLength: 3, size: 4 },
      },
      'enc-pay',
      '1',
      { days: 3 },
    );
    expect(text && binary).toBeTruthy();
    const payloads = [text, binary].flatMap((p) => (p ? [p] : []));
    await store.insertEncoded(ShadowTables.payloads, body(payloads.map(payloadLine)), {
      format: INGEST_FORMAT,
      columns: PayloadColumns,
    });
    const got = await store.query<Record<string, unknown>>(
      `SELECT model, version, toUnixTimestamp64Milli(ts) AS ts, event_id, request_id, source, content_type, content_encoding,
              header_length, size, truncated, storage, body, toUnixTimestamp(expires_at) AS expires_at
       FROM ${ShadowTables.payloads} WHERE model = 'enc-pay' ORDER BY storage DESC`,
    );
    expect(got).toEqual(payloads);
    // Integers as written: epoch ms into DateTime64(3), epoch seconds (rounded up) into DateTime.
    expect(got[0]?.ts).toBe(call.startedAt);
    expect(got[0]?.expires_at).toBe(Math.ceil((call.startedAt + 3 * 86_400_000) / 1000));
    expect(Buffer.from(String(got[1]?.body), 'base64')).toEqual(Buffer.from([0, 255, 1, 254]));

    const q: QuarantineRow[] = NASTY.map((s, i) => ({
      event_id: `q-${i}`,
      request_id: s,
      model: 'enc-q',
      source: 'rest',
      origin: `topic/0/${i}`,
      code: 'decode_invalid',
      field: s,
      reason: `body: ${s}`,
      payload: Buffer.from(s).toString('base64'),
    }));
    await store.insertEncoded(Tables.quarantine, body(q.map(quarantineLine)), {
      format: INGEST_FORMAT,
      columns: QuarantineColumns,
    });
    const gotQ = await store.query<QuarantineRow>(
      `SELECT event_id, request_id, model, source, origin, code, field, reason, payload
       FROM ${Tables.quarantine} WHERE model = 'enc-q' ORDER BY event_id`,
    );
    expect(gotQ).toEqual(q);
  });

  it('drops a re-sent body with the same dedup token, keeps one with another token, and ignores an empty body', async () => {
    const line = predictionLine({
      model: 'enc-dedup',
      version: '',
      ts: Date.UTC(2026, 0, 1),
      event_id: 'd',
      request_id: 'd',
      row: 0,
      features_num: { x: 1 },
      features_cat: {},
      outputs_num: {},
      outputs_cat: {},
    });
    const opts = { format: INGEST_FORMAT, columns: PredictionColumns };
    await store.insertEncoded(Tables.predictions, body([line]), { ...opts, dedupToken: 'enc-0-0' });
    await store.insertEncoded(Tables.predictions, body([line]), { ...opts, dedupToken: 'enc-0-0' });
    await store.insertEncoded(Tables.predictions, Buffer.alloc(0), { ...opts, dedupToken: 'enc-1-1' });
    // A token left from the statements above must not stick: a plain insert afterwards is stored.
    await store.insertEncoded(Tables.predictions, body([line]), opts);
    const [n] = await store.query<{ n: number }>(
      `SELECT count() AS n FROM ${Tables.predictions} WHERE model = 'enc-dedup'`,
    );
    expect(n?.n).toBe(2);
  });

  it('refuses a binary format with a store error', async () => {
    await expect(
      store.insertEncoded(Tables.predictions, Buffer.from([1, 2, 3]), {
        format: 'RowBinary' as EncodedInsertFormat,
      }),
    ).rejects.toMatchObject({ code: expect.stringMatching(/^store_/) as string });
  });
});

describe('ByteSink and withoutRanges', () => {
  it('writes lines as UTF-8 into a growing buffer, with positions that delimit each line', () => {
    const lines = ['a', 'é€😀'.repeat(5), '', 'x'.repeat(100), '"\\\n"', 'z'];
    const sink = new ByteSink({ firstBufferBytes: 4 });
    const at: number[] = [];
    for (const l of lines) {
      at.push(sink.length);
      sink.add(l);
    }
    at.push(sink.length);
    const out = sink.body();
    expect(out.toString('utf8')).toBe(lines.map((l) => `${l}\n`).join(''));
    expect(out.length).toBe(at.at(-1));
    lines.forEach((l, i) => expect(out.subarray(at[i], at[i + 1]).toString('utf8')).toBe(`${l}\n`));
    // Emptied by release(): reusable, and an empty sink gives an empty body.
    sink.release();
    expect(sink.length).toBe(0);
    expect(sink.body().length).toBe(0);
    sink.add('again');
    expect(sink.body().toString()).toBe('again\n');
  });

  it('reuses pooled buffers: a released body serves the next sink, old bytes never leak into a new body', () => {
    const pool = new BufferPool(2, 1024);
    const first = new ByteSink({ pool, firstBufferBytes: 16 });
    for (let i = 0; i < 20; i++) first.add(`line-${i}-${'y'.repeat(i)}`);
    const firstBody = first.body();
    const firstBuffer = firstBody.buffer;
    expect(pool.bytes).toBeLessThanOrEqual(1024); // buffers outgrown on the way were kept (at most 2)
    first.release();
    const second = new ByteSink({ pool, firstBufferBytes: 16 });
    // The largest kept buffer (the first sink's last one) is taken again.
    second.add('short');
    expect(second.body().buffer).toBe(firstBuffer);
    expect(second.body().toString()).toBe('short\n');
    expect(second.length).toBe(6);
  });

  it('keeps at most maxBuffers buffers of at most maxBytes, preferring the larger ones', () => {
    const pool = new BufferPool(2, 100);
    pool.give(Buffer.alloc(10));
    pool.give(Buffer.alloc(50));
    pool.give(Buffer.alloc(30)); // replaces the 10-byte buffer
    pool.give(Buffer.alloc(200)); // over maxBytes: dropped
    pool.give(Buffer.alloc(5)); // smaller than both kept: dropped
    expect(pool.bytes).toBe(80);
    expect(pool.take(40).length).toBe(50);
    expect(pool.take(40).length).toBe(40); // the 30-byte one is too small: a new buffer
    expect(pool.bytes).toBe(30);
    expect(() => new BufferPool(-1)).toThrow(RangeError);
    expect(() => new BufferPool(1.5)).toThrow(RangeError);
  });

  it('leaves out byte ranges (empty, adjacent, at both ends) and returns the body itself when none', () => {
    const b = Buffer.from('0123456789');
    expect(withoutRanges(b, [])).toBe(b);
    expect(
      withoutRanges(b, [
        [0, 2],
        [2, 3],
        [5, 5],
        [8, 10],
      ]).toString(),
    ).toBe('34567');
    expect(withoutRanges(b, [[4, 6]]).toString()).toBe('01236789');
    expect(withoutRanges(b, [[0, 10]]).length).toBe(0);
  });
});
