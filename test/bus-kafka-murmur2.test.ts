// kafkajs's default partitioner hashes keys with murmur2; src/bus/kafka-murmur2.ts replaces kafkajs's
// 64-bit Long arithmetic with 32-bit integer arithmetic. The partition a key lands on must not change:
// compared here with kafkajs's own function on random keys of every length, and through kafkajs's
// default partitioner, which must pick the partition the Java client's formula gives.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
// As in src/bus/kafka.ts: before kafkajs.
import { kafkaMurmur2Status, kafkajsMurmur2, murmur2 } from '../src/bus/kafka-murmur2.js';

const require = createRequire(import.meta.url);

describe('kafkajs murmur2 in 32-bit arithmetic', () => {
  it('is installed in place of kafkajs’s own', () => {
    expect(kafkaMurmur2Status()).toEqual({ installed: true });
    expect(require('kafkajs/src/producer/partitioners/default/murmur2.js')).toBe(murmur2);
  });

  it('gives kafkajs’s value for every key length, for Buffers, strings (UTF-8) and other values', () => {
    const own = kafkajsMurmur2();
    expect(own).toBeDefined();
    const keys: unknown[] = [];
    for (let len = 0; len < 200; len++) for (let r = 0; r < 20; r++) keys.push(randomBytes(len));
    keys.push(
      Buffer.alloc(64, 0xff),
      Buffer.alloc(7, 0x80),
      'é✓模型',
      '0190f2a0-0000-7000-8000-000000000001',
      12_345,
      '',
    );
    for (let i = 0; i < 500; i++) keys.push(`req-${i}-${randomBytes(8).toString('hex')}`);
    let differ = 0;
    for (const k of keys) if (murmur2(k) !== own!(k)) differ++;
    expect(differ).toBe(0);
  });

  it('puts keys on the partitions kafkajs’s default partitioner picked before', () => {
    const { Partitioners } = require('kafkajs') as {
      Partitioners: { DefaultPartitioner: () => (a: unknown) => number };
    };
    const partition = Partitioners.DefaultPartitioner();
    const partitionMetadata = Array.from({ length: 12 }, (_, i) => ({ partitionId: i, leader: 1 }));
    const own = kafkajsMurmur2()!;
    for (let i = 0; i < 2_000; i++) {
      const key = `0190f2a0-0000-7000-8000-${String(i).padStart(12, '0')}`;
      const want = (own(key) & 0x7fffffff) % 12;
      expect(partition({ topic: 't', partitionMetadata, message: { key, value: 'v' } })).toBe(want);
    }
  });
});
