// Kafka header blocks (src/bus/kafka-header-block.ts): the header section of a Kafka record (v2) as one
// string of bytes. Checked against kafkajs's own encoding of the same headers (its `Encoder` writes the
// header count and each header exactly so inside a record), and decoded back.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { decodeHeaderBlock, headerBlockOf, HeaderBlockMessage, varintChars } from '../src/bus/kafka-header-block.js';

const require = createRequire(import.meta.url);
type KEncoder = {
  writeVarInt(n: number): KEncoder;
  writeVarIntString(s: string): KEncoder;
  buffer: Buffer;
};
const Encoder = require('kafkajs/src/protocol/encoder.js') as new () => KEncoder;

/** kafkajs's bytes for a record's headers: count, then name and value as varint-length strings. */
function kafkajsHeaders(h: Record<string, string>): Buffer {
  const e = new Encoder();
  e.writeVarInt(Object.keys(h).length);
  for (const [k, v] of Object.entries(h)) e.writeVarIntString(k).writeVarIntString(v);
  return e.buffer;
}

const cases: Record<string, string>[] = [
  {},
  { a: '' },
  { ce_id: 'abc', 'content-type': 'application/json' },
  { 'ü-name': 'wert-ä', emoji: '🙂 ok', cjk: '模型' },
  { long: 'x'.repeat(63), longer: 'y'.repeat(64), big: 'z'.repeat(8_191), bigger: 'w'.repeat(8_192) },
  Object.fromEntries(Array.from({ length: 70 }, (_, i) => [`h${i}`, String(i)])),
];

describe('Kafka header blocks', () => {
  it('are the bytes kafkajs writes for the same headers, and decode back to them in order', () => {
    for (const h of cases) {
      const block = headerBlockOf(h);
      expect(Buffer.from(block, 'latin1').equals(kafkajsHeaders(h))).toBe(true);
      const back = decodeHeaderBlock(block);
      expect(back).toEqual(h);
      expect(Object.keys(back)).toEqual(Object.keys(h));
    }
  });

  it('write lengths as zigzag varints, past the lookup table too', () => {
    expect(Buffer.from(varintChars(0), 'latin1')).toEqual(Buffer.from([0]));
    expect(Buffer.from(varintChars(63), 'latin1')).toEqual(Buffer.from([126]));
    expect(Buffer.from(varintChars(64), 'latin1')).toEqual(Buffer.from([0x80, 0x01]));
    const e = new Encoder();
    e.writeVarInt(100_000);
    expect(Buffer.from(varintChars(100_000), 'latin1').equals(e.buffer)).toBe(true);
  });

  it('refuse malformed blocks with a RangeError', () => {
    const good = headerBlockOf({ a: 'b' });
    expect(() => decodeHeaderBlock(good.slice(0, -1))).toThrow(RangeError);
    expect(() => decodeHeaderBlock(good + 'x')).toThrow(/after the last header/);
    expect(() => decodeHeaderBlock('\x80')).toThrow(/varint/);
    expect(() => decodeHeaderBlock(varintChars(0).replace('\x00', '\x01'))).toThrow(/negative/);
  });

  it('back a message whose headers are decoded once, on first read', () => {
    const h = { ce_id: 'e-1', 'x-ü': 'ä' };
    const m = new HeaderBlockMessage('k', Buffer.from('v'), headerBlockOf(h));
    expect(m.headers).toEqual(h);
    expect(m.headers).toBe(m.headers);
  });
});
