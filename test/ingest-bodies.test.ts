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
    expect(q.filter((r) => r?.startsWith('envelope:')).length).toBe(5);
    const times = lines('requests').map((l) => (JSON.parse(l) as unknown[])[2]);
    expect(times).toContain(Date.parse('2026-03-04T05:06:59.999+02:00'));
    expect(times).toContain(Date.parse('2026-03-04T05:06:07.5Z'));
    expect(times).toContain(Date.UTC(2026, 11, 31, 23, 59, 59, 999));
    expect(times).toContain(Date.UTC(2026, 2, 3));
  });
});
