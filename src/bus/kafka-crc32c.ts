// Native CRC32C for kafkajs's record batches. kafkajs checksums every produced batch with a
// table-driven CRC32C written in JavaScript (`kafkajs/src/protocol/recordBatch/crc32C`), one byte at a
// time: at 64 KB records that loop is a large share of the producer's CPU. kafkajs offers no hook for
// it, so this module puts `@node-rs/crc32`'s hardware CRC32C (SSE 4.2 / ARMv8 CRC instructions) into
// Node's CommonJS module cache under the path of kafkajs's checksum module *before* kafkajs loads it:
// kafkajs's `require('../crc32C')` then returns the native function. It is imported for its effect by
// kafka.ts ahead of kafkajs. Any failure (package missing, no prebuilt binary for the platform, a wrong
// self-check, kafkajs already loaded, a kafkajs layout without that file) leaves kafkajs's own
// implementation in place and records why. It also makes kafkajs's encoder grow its buffers without
// zero-filling them (see patchEncoder below). `MODELWATCH_KAFKA_CRC32C=js` leaves kafkajs as it is.
import { createRequire, Module } from 'node:module';

/** Which CRC32C kafkajs uses in this thread, and why when it is not the native one. */
export interface KafkaCrc32cStatus {
  implementation: 'native' | 'javascript';
  /** Why the native checksum is not in use (`implementation` 'javascript'). */
  reason?: string;
}

/** CRC32C of the ASCII digits "123456789" (the standard check value of the Castagnoli polynomial). */
const CHECK_VALUE = 0xe3069283;

type Crc32cFn = (input: Buffer, initialState?: number) => number;

/** Set to `js` to keep kafkajs's own JavaScript CRC32C (comparisons, or a platform where the native one misbehaves). */
export const KAFKA_CRC32C_ENV = 'MODELWATCH_KAFKA_CRC32C';

function install(): KafkaCrc32cStatus {
  if (process.env[KAFKA_CRC32C_ENV] === 'js') {
    return { implementation: 'javascript', reason: `${KAFKA_CRC32C_ENV}=js` };
  }
  const require = createRequire(import.meta.url);
  let file: string;
  try {
    file = createRequire(require.resolve('kafkajs')).resolve('./src/protocol/recordBatch/crc32C/index.js');
  } catch (err) {
    return { implementation: 'javascript', reason: `kafkajs checksum module not found: ${String(err)}` };
  }
  if (require.cache[file] !== undefined) {
    return { implementation: 'javascript', reason: 'kafkajs loaded its checksum module first' };
  }
  let crc32c: Crc32cFn;
  try {
    crc32c = (require('@node-rs/crc32') as { crc32c: Crc32cFn }).crc32c;
    if (typeof crc32c !== 'function') throw new Error('@node-rs/crc32 exports no crc32c function');
    const check = crc32c(Buffer.from('123456789', 'latin1')) >>> 0;
    if (check !== CHECK_VALUE) throw new Error(`self-check gave ${check.toString(16)}`);
  } catch (err) {
    return { implementation: 'javascript', reason: `@node-rs/crc32 unavailable: ${String(err)}` };
  }
  const m = new Module(file);
  m.filename = file;
  m.loaded = true;
  // kafkajs's own module returns the CRC as an unsigned 32-bit number, written with writeUInt32.
  m.exports = (buffer: Buffer): number => crc32c(buffer) >>> 0;
  require.cache[file] = m;
  return { implementation: 'native' };
}

const status: KafkaCrc32cStatus = install();

/**
 * kafkajs's `Encoder` grows its buffer by allocating a zero-filled one of the next power of two and
 * copying what it holds: a 64 KB record passes through several encoders (record, batch body, batch,
 * request), and in a profile of the producer at 64 KB the zero-filling (`Buffer.alloc`) was a fifth of
 * its CPU, more than the garbage collector's share. The bytes past the encoder's offset are never read
 * (its `buffer` is `buf.slice(0, offset)`), so the grown buffer needs no zeroing: this replaces
 * `ensureAvailable` with the same growth on `Buffer.allocUnsafe`. Skipped, like the checksum, when the
 * module or the method is not where expected.
 */
function patchEncoder(): boolean {
  try {
    const require = createRequire(import.meta.url);
    const file = createRequire(require.resolve('kafkajs')).resolve('./src/protocol/encoder.js');
    const Encoder = require(file) as {
      nextPowerOfTwo?: (n: number) => number;
      prototype: { ensureAvailable?: unknown; buf?: Buffer; offset?: number };
    };
    const next = Encoder.nextPowerOfTwo;
    if (typeof next !== 'function' || typeof Encoder.prototype.ensureAvailable !== 'function') return false;
    Encoder.prototype.ensureAvailable = function ensureAvailable(
      this: { buf: Buffer; offset: number },
      length: number,
    ): void {
      if (this.offset + length > this.buf.length) {
        const grown = Buffer.allocUnsafe(next(this.offset + length));
        this.buf.copy(grown, 0, 0, this.offset);
        this.buf = grown;
      }
    };
    return true;
  } catch {
    return false;
  }
}

const encoderPatched = process.env[KAFKA_CRC32C_ENV] === 'js' ? false : patchEncoder();

/** Whether kafkajs's encoder grows its buffers without zero-filling them (see {@link patchEncoder}). */
export function kafkaEncoderPatched(): boolean {
  return encoderPatched;
}

/** Which CRC32C kafkajs's producer uses in this thread (the native one unless it could not load). */
export function kafkaCrc32cStatus(): KafkaCrc32cStatus {
  return { ...status };
}
