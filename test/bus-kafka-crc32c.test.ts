// The native CRC32C that src/bus/kafka-crc32c.ts puts in place of kafkajs's JavaScript one: the record
// batches kafkajs encodes must carry the same checksum kafkajs's own implementation computes (a broker
// rejects a batch whose CRC is wrong; kafkajs's decoder does not check it, so a round trip through a
// kafkajs consumer would not notice).
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
// First, as in src/bus/kafka.ts: before anything loads kafkajs.
import { kafkaCrc32cStatus, kafkaEncoderPatched } from '../src/bus/kafka-crc32c.js';

const require = createRequire(import.meta.url);
type Crc = (b: Buffer) => number;
/** kafkajs's checksum module as kafkajs's record batch encoder sees it (the native one once installed). */
const inUse = require('kafkajs/src/protocol/recordBatch/crc32C/index.js') as Crc;
/** kafkajs's own table-driven JavaScript CRC32C (signed result), the reference. */
const kafkajsJs = require('kafkajs/src/protocol/recordBatch/crc32C/crc32C.js') as Crc;
const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as {
  RecordBatch: (o: { records: unknown[] }) => Promise<{ buffer: Buffer }>;
};
const Decoder = require('kafkajs/src/protocol/decoder.js') as new (b: Buffer) => unknown;
const decodeBatch = require('kafkajs/src/protocol/recordBatch/v0/decoder.js') as (d: unknown) => Promise<{
  records: { key: Buffer; value: Buffer; headers: Record<string, Buffer> }[];
}>;
const Record = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (o: {
  offsetDelta: number;
  key: Buffer;
  value: Buffer;
  headers: Record<string, string>;
}) => unknown;

describe('kafkajs CRC32C', () => {
  it('is the native implementation when @node-rs/crc32 loads', () => {
    expect(kafkaCrc32cStatus()).toEqual({ implementation: 'native' });
    expect(inUse).not.toBe(kafkajsJs);
  });

  it('gives the published CRC32C check values (RFC 3720 B.4)', () => {
    expect(inUse(Buffer.from('123456789', 'latin1'))).toBe(0xe3069283);
    expect(inUse(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(inUse(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(inUse(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e);
    expect(inUse(Buffer.alloc(0))).toBe(0);
  });

  it('agrees with kafkajs’s JavaScript CRC32C on random buffers of every size class', () => {
    for (const n of [1, 3, 7, 8, 15, 16, 63, 64, 1000, 4096, 65_526, 200_001]) {
      const b = randomBytes(n);
      expect(inUse(b)).toBe(kafkajsJs(b) >>> 0);
      // A subarray at an odd offset (the encoder hands over views of larger buffers).
      const v = b.subarray(1);
      expect(inUse(v)).toBe(kafkajsJs(v) >>> 0);
    }
  });

  it('grows kafkajs’s encoder buffers without zero-filling, and batches still decode to their records', async () => {
    expect(kafkaEncoderPatched()).toBe(true);
    // Dirty the allocator's memory so that unzeroed growth would show if any byte past the offset leaked.
    for (let i = 0; i < 64; i++) Buffer.allocUnsafe(256 * 1024).fill(0xa5);
    const values = [1, 4_000, 65_526, 70_000, 300_000].map((n) => randomBytes(n));
    const records = values.map((value, i) =>
      Record({ offsetDelta: i, key: Buffer.from(`key-${i}`), value, headers: { ce_id: `ev-${i}` } }),
    );
    const { buffer } = await RecordBatch({ records });
    const decoded = await decodeBatch(new Decoder(buffer));
    expect(decoded.records.map((r) => r.key.toString())).toEqual(values.map((_, i) => `key-${i}`));
    decoded.records.forEach((r, i) => {
      expect(Buffer.compare(r.value, values[i] as Buffer)).toBe(0);
      expect(r.headers.ce_id?.toString()).toBe(`ev-${i}`);
    });
    expect(buffer.readUInt32BE(17)).toBe(kafkajsJs(buffer.subarray(21)) >>> 0);
  });

  it('is what kafkajs writes into a record batch, over the batch body', async () => {
    const records = [0, 1, 2].map((i) =>
      Record({
        offsetDelta: i,
        key: Buffer.from(`k${i}`),
        value: randomBytes(65_000 + i),
        headers: { ce_id: `e${i}` },
      }),
    );
    const { buffer } = await RecordBatch({ records });
    // FirstOffset int64, Length int32, PartitionLeaderEpoch int32, Magic int8, CRC uint32, then the body.
    expect(buffer.readInt8(16)).toBe(2);
    expect(buffer.readUInt32BE(17)).toBe(kafkajsJs(buffer.subarray(21)) >>> 0);
  });
});
