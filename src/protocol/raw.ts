import { isUtf8 } from 'node:buffer';
import { DATATYPE_ITEM_SIZE, type V2Datatype } from './datatypes.js';
import { invalid } from './tensor.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE 754 half precision (binary16) bits to a number; subnormals, ±Inf and NaN included. */
export function fp16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits (the upper half of an IEEE binary32) to a number. */
export function bf16ToNumber(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0] ?? NaN;
}

/** Decodes one BYTES element: UTF-8 text when valid, else `b64:` + base64 (never a lossy string). */
export function bytesToString(b: Uint8Array): string {
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return isUtf8(buf) ? buf.toString('utf8') : `b64:${buf.toString('base64')}`;
}

/**
 * Decodes `count` elements of `datatype` from a raw little-endian, row-major blob (Triton binary
 * extension and gRPC `raw_*_contents` share this layout). The blob must hold exactly those elements.
 * BYTES elements are a uint32LE length followed by that many bytes. 64-bit integers become the
 * nearest double (precision is lost beyond 2^53).
 */
export function decodeRaw(
  datatype: V2Datatype,
  blob: Buffer,
  count: number,
  field: string,
): ArrayLike<number> | string[] {
  if (datatype === 'BYTES') return decodeRawBytes(blob, count, field);
  const size = DATATYPE_ITEM_SIZE[datatype];
  if (blob.length !== count * size) {
    throw invalid(
      field,
      `${blob.length} bytes do not hold ${count} ${datatype} elements (${count * size} bytes expected)`,
    );
  }
  const out = new Float64Array(count);
  switch (datatype) {
    case 'BOOL':
      for (let i = 0; i < count; i++) {
        const v = blob[i] ?? 0;
        if (v > 1) throw invalid(field, `BOOL element ${i} is byte ${v}, not 0 or 1`);
        out[i] = v;
      }
      break;
    case 'UINT8':
      for (let i = 0; i < count; i++) out[i] = blob[i] ?? 0;
      break;
    case 'INT8':
      for (let i = 0; i < count; i++) out[i] = blob.readInt8(i);
      break;
    case 'UINT16':
      for (let i = 0; i < count; i++) out[i] = blob.readUInt16LE(i * 2);
      break;
    case 'INT16':
      for (let i = 0; i < count; i++) out[i] = blob.readInt16LE(i * 2);
      break;
    case 'UINT32':
      for (let i = 0; i < count; i++) out[i] = blob.readUInt32LE(i * 4);
      break;
    case 'INT32':
      for (let i = 0; i < count; i++) out[i] = blob.readInt32LE(i * 4);
      break;
    case 'UINT64':
      // hi·2^32 is exact and the single addition rounds once: the nearest double.
      for (let i = 0; i < count; i++) out[i] = blob.readUInt32LE(i * 8 + 4) * 4294967296 + blob.readUInt32LE(i * 8);
      break;
    case 'INT64':
      for (let i = 0; i < count; i++) out[i] = blob.readInt32LE(i * 8 + 4) * 4294967296 + blob.readUInt32LE(i * 8);
      break;
    case 'FP16':
      for (let i = 0; i < count; i++) out[i] = fp16ToNumber(blob.readUInt16LE(i * 2));
      break;
    case 'BF16':
      for (let i = 0; i < count; i++) out[i] = bf16ToNumber(blob.readUInt16LE(i * 2));
      break;
    case 'FP32':
      for (let i = 0; i < count; i++) out[i] = blob.readFloatLE(i * 4);
      break;
    case 'FP64':
      for (let i = 0; i < count; i++) out[i] = blob.readDoubleLE(i * 8);
      break;
  }
  return out;
}

function decodeRawBytes(blob: Buffer, count: number, field: string): string[] {
  // Each element needs at least its 4-byte prefix: refuse before allocating for an absurd count.
  if (count * 4 > blob.length) {
    throw invalid(field, `${blob.length} bytes cannot hold ${count} length-prefixed BYTES elements`);
  }
  const out = new Array<string>(count);
  let off = 0;
  for (let i = 0; i < count; i++) {
    if (off + 4 > blob.length) throw invalid(field, `BYTES element ${i}: length prefix runs past the end of the data`);
    const len = blob.readUInt32LE(off);
    off += 4;
    if (off + len > blob.length) {
      throw invalid(
        field,
        `BYTES element ${i}: length ${len} runs past the end of the data (${blob.length - off} bytes left)`,
      );
    }
    out[i] = bytesToString(blob.subarray(off, off + len));
    off += len;
  }
  if (off !== blob.length) throw invalid(field, `${blob.length - off} bytes left over after ${count} BYTES elements`);
  return out;
}
