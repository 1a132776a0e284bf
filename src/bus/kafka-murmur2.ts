// Murmur2 for kafkajs's default partitioner in 32-bit integer arithmetic. kafkajs's `murmur2` (the
// Java client's, so that a key lands on the partition other producers pick) computes every step on
// 64-bit `Long` objects, several allocations per 4 bytes of key: in a profile of the publisher worker
// at 1 KB captures (36-character request ids as keys) it was ~13% of the worker's CPU. Only the low
// 32 bits of each step reach the result, so `Math.imul` and 32-bit shifts give the same value. Installed
// like kafka-crc32c.ts: into Node's CommonJS module cache under the path of kafkajs's module before
// kafkajs's partitioner loads it (kafka.ts imports this module ahead of kafkajs). Any failure leaves
// kafkajs's own function in place. `MODELWATCH_KAFKA_MURMUR2=kafkajs` keeps it on purpose.
import { createRequire } from 'node:module';

/** Set to `kafkajs` to keep kafkajs's own murmur2. */
export const KAFKA_MURMUR2_ENV = 'MODELWATCH_KAFKA_MURMUR2';

const M = 0x5bd1e995;
const SEED = 0x9747b28c;

/**
 * Kafka's murmur2 of `key` (a Buffer, or a value turned into a UTF-8 string as kafkajs does) as a signed
 * 32-bit integer: the same value as kafkajs's `producer/partitioners/default/murmur2.js` and the Java
 * client's `Utils.murmur2`.
 */
export function murmur2(key: unknown): number {
  const data = Buffer.isBuffer(key) ? key : Buffer.from(String(key));
  const length = data.length;
  let h = (SEED ^ length) | 0;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = (data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16);
    k |= (data[i + 3] as number) << 24;
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = length & 3;
  if (rest === 3) h ^= (data[whole + 2] as number) << 16;
  if (rest >= 2) h ^= (data[whole + 1] as number) << 8;
  if (rest >= 1) h = Math.imul(h ^ (data[whole] as number), M);
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** Whether kafkajs's default partitioner hashes with {@link murmur2}, and why not when it does not. */
export interface KafkaMurmur2Status {
  installed: boolean;
  reason?: string;
}

let original: ((key: unknown) => number) | undefined;

function install(): KafkaMurmur2Status {
  if (process.env[KAFKA_MURMUR2_ENV] === 'kafkajs') return { installed: false, reason: `${KAFKA_MURMUR2_ENV}=kafkajs` };
  try {
    const require = createRequire(import.meta.url);
    const kreq = createRequire(require.resolve('kafkajs'));
    const file = kreq.resolve('./src/producer/partitioners/default/murmur2.js');
    const partitioner = kreq.resolve('./src/producer/partitioners/default/index.js');
    if (require.cache[partitioner] !== undefined) {
      return { installed: false, reason: 'kafkajs loaded its default partitioner first' };
    }
    const own = require(file) as unknown;
    if (typeof own !== 'function') return { installed: false, reason: 'kafkajs murmur2 not as expected' };
    const mod = require.cache[file];
    if (mod === undefined) return { installed: false, reason: 'kafkajs murmur2 not in the module cache' };
    original = own as (key: unknown) => number;
    // Self-check against kafkajs's own function before taking its place.
    for (const k of ['', 'a', 'ab', 'abc', 'abcd', '0190f2a0-0000-7000-8000-000000000001', 'é✓']) {
      if (original(k) !== murmur2(k)) return { installed: false, reason: `murmur2 self-check failed for ${k}` };
    }
    mod.exports = murmur2;
    return { installed: true };
  } catch (err) {
    return { installed: false, reason: `kafkajs murmur2 not replaced: ${String(err)}` };
  }
}

const status = install();

/** Whether kafkajs's default partitioner uses {@link murmur2} in this thread. */
export function kafkaMurmur2Status(): KafkaMurmur2Status {
  return { ...status };
}

/** kafkajs's own murmur2 as it was before the replacement (undefined when it was not loaded here). */
export function kafkajsMurmur2(): ((key: unknown) => number) | undefined {
  return original;
}
