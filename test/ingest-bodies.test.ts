// Ingest's insert bodies stay byte for byte what they were: varied captured records (1 row and many rows;
// FP32, FP16 and BYTES in the binary extension, INT64, BOOL and BYTES in JSON; gzip; gRPC; a mapped schema;
// missing outputs; truncated captures; body and envelope quarantine; capture times in several RFC 3339
// spellings) run through the decode loop of the current sources must give the bodies kept in
// test/fixtures/ingest/insert-bodies.json, which test/fixtures/ingest/make-insert-bodies.ts made with the
// build of commit d08e3bf (before the decode loop's CPU work of issue 12).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeCapture, encodeCapture } from '../src/protocol/capture.js';
import { decodeCall } from '../src/protocol/index.js';
import { buildCallRecords, envelopeQuarantine } from '../src/ingest/records.js';
import { payloadRowOf } from '../src/ingest/payloads.js';
import { payloadLine, predictionLine, quarantineLine, requestLine } from '../src/ingest/encode.js';
import {
  caseMessages,
  loopBodies,
  type InsertBodies,
  type LoopModules,
  type StoredMessage,
} from './support/ingest-bodies.js';
import { mulberry32 } from './support/seeded-prng.js';

const fixture = JSON.parse(
  readFileSync(join(import.meta.dirname, 'fixtures', 'ingest', 'insert-bodies.json'), 'utf8'),
) as { messages: StoredMessage[]; bodies: InsertBodies };

const current: LoopModules = {
  decodeCapture,
  decodeCall: (call, schema) => decodeCall(call, schema),
  buildCallRecords,
  envelopeQuarantine,
  payloadRowOf,
  predictionLine,
  requestLine,
  payloadLine,
  quarantineLine,
};

describe('ingest insert bodies (byte-identical to the kept build)', () => {
  it('the kept records are still what the case builders and encodeCapture make', () => {
    expect(caseMessages((call) => encodeCapture(call))).toEqual(fixture.messages);
  });

  it('gives the same four insert bodies, line for line', () => {
    const bodies = loopBodies(current, fixture.messages);
    for (const k of ['predictions', 'requests', 'payloads', 'quarantine'] as const) {
      expect(bodies[k].split('\n'), k).toEqual(fixture.bodies[k].split('\n'));
      expect(Buffer.from(bodies[k]).equals(Buffer.from(fixture.bodies[k])), k).toBe(true);
    }
  });

  it('the fixture covers what it says: rows, non-finite outputs, every quarantine kind, every capture time', () => {
    const lines = (k: keyof InsertBodies): string[] => fixture.bodies[k].split('\n').filter((l) => l !== '');
    expect(lines('predictions').length).toBeGreaterThan(30);
    expect(fixture.bodies.predictions).toContain('"nan"');
    expect(fixture.bodies.payloads).toContain('"base64"');
    const q = lines('quarantine').map((l) => (JSON.parse(l) as string[])[7]);
    expect(q.filter((r) => r?.startsWith('body:')).length).toBe(3);
    expect(q.filter((r) => r?.startsWith('envelope:')).length).toBe(7);
    const times = lines('requests').map((l) => (JSON.parse(l) as unknown[])[2]);
    expect(times).toContain(Date.parse('2026-03-04T05:06:59.999+02:00'));
    expect(times).toContain(Date.parse('2026-03-04T05:06:07.5Z'));
    expect(times).toContain(Date.UTC(2026, 11, 31, 23, 59, 59, 999));
    expect(times).toContain(Date.UTC(2026, 2, 3));
  });

  it("decodes a capture's time and http headers in every spelling as before", () => {
    const byName = new Map(fixture.messages.map((m) => [m.name, m]));
    const decoded = (name: string) => {
      const m = byName.get(name);
      if (m === undefined) throw new Error(`no case ${name}`);
      return decodeCapture({ key: m.key, value: Buffer.from(m.value, 'base64'), headers: { ...m.headers } });
    };
    expect(decoded('ce_httpheaders {"a":1,"b":"x","c":null,"d":{"e":true}}').headers).toEqual({
      a: '1',
      b: 'x',
      c: 'null',
      d: '[object Object]',
    });
    expect(decoded('ce_httpheaders ["a","b"]').headers).toEqual({});
    expect(() => decoded('ce_httpheaders {"a":')).toThrow(/ce_httpheaders is not a JSON object/);
    expect(decoded('captured http headers').headers).toEqual({
      'content-type': 'application/json',
      'user-agent': 'ü-agent/1 "q"',
      traceparent: '00-ab-cd-01',
    });
    const times: [string, number][] = [
      ['2026-12-31T23:59:59.999Z', Date.UTC(2026, 11, 31, 23, 59, 59, 999)],
      ['2027-01-01T00:00:00.000Z', Date.UTC(2027, 0, 1)],
      ['2028-02-29T12:34:56.789Z', Date.UTC(2028, 1, 29, 12, 34, 56, 789)],
      ['2026-01-01T24:00:00.000Z', Date.UTC(2026, 0, 2)],
      ['2026-03-04T05:06:59.999+02:00', Date.UTC(2026, 2, 4, 3, 6, 59, 999)],
      ['2026-03-04T05:06:07.5Z', Date.UTC(2026, 2, 4, 5, 6, 7, 500)],
    ];
    for (const [text, ms] of times) expect(decoded(`ce_time ${text}`).startedAt, text).toBe(ms);
    expect(() => decoded('ce_time 2026-03-04T05:06:60.000Z')).toThrow(/ce_time/);
    expect(() => decoded('ce_time 2026-01-01T24:00:30.000Z')).toThrow(/ce_time/);
    expect(() => decoded('ce_time 2026-03-04T05:06:1x.000Z')).toThrow(/ce_time/);
  });

  it('reads any YYYY-MM-DDTHH:MM:SS.mmmZ-shaped ce_time exactly as Date.parse does (valid or not)', () => {
    const first = fixture.messages[0] as StoredMessage;
    const value = Buffer.from(first.value, 'base64');
    const rnd = mulberry32(12);
    const pick = (options: string): string => options[Math.floor(rnd() * options.length)] as string;
    const two = (hi: string): string => pick(hi) + pick('0123456789');
    const edge = (values: readonly string[], hi: string): string =>
      rnd() < 0.5 ? (values[Math.floor(rnd() * values.length)] as string) : two(hi);
    let valid = 0;
    for (let i = 0; i < 4000; i++) {
      // Runs of the same minute (what the cache keeps), fields at and past their ranges, now and then a letter.
      const minute =
        `${pick('12')}${pick('09')}${two('0123')}-${edge(['00', '01', '02', '12', '13'], '01')}-` +
        `${edge(['00', '01', '28', '29', '30', '31', '32'], '0123')}T${edge(['00', '23', '24', '25'], '012')}:` +
        `${edge(['00', '59', '60'], '0123456')}:`;
      for (let k = 0; k < 3; k++) {
        const text = `${minute}${edge(['00', '59', '60'], '0123456')}.${edge(['000', '999'], '09')}${pick('ZZZZx')}`;
        const expected = Date.parse(text);
        const decode = () => decodeCapture({ key: first.key, value, headers: { ...first.headers, ce_time: text } });
        if (Number.isNaN(expected)) {
          expect(decode, text).toThrow(/ce_time/);
        } else {
          expect(decode().startedAt, text).toBe(expected);
          valid++;
        }
      }
    }
    expect(valid).toBeGreaterThan(1000);
  });
});
