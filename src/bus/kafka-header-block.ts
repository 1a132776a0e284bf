// Kafka record headers as one string: the exact bytes Kafka's record format v2 gives a record's header
// section (zigzag varint count, then per header a varint byte length and the UTF-8 bytes of its name, a
// varint byte length and the UTF-8 bytes of its value), one character per byte (latin1). A record's
// headers travel to the publisher worker in this form: one string per record crosses the thread boundary
// (a structured clone of a 24-property object cost the worker ~20 µs per record to rebuild), and the
// Produce encoder writes it with one `latin1Write`. No dependencies: the capture encoder builds it too.

/** Bytes of the zigzag varint of `n` (32-bit), as characters 0–255. */
function varintOf(n: number): string {
  let v = ((n << 1) ^ (n >> 31)) >>> 0;
  let s = '';
  while ((v & 0xffffff80) !== 0) {
    s += String.fromCharCode((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  return s + String.fromCharCode(v);
}

const VARINTS: string[] = Array.from({ length: 4096 }, (_, i) => varintOf(i));

/** The zigzag varint of a length or count `n` ≥ 0, one character per byte. */
export function varintChars(n: number): string {
  return n < 4096 ? (VARINTS[n] as string) : varintOf(n);
}

/** Whether every character of `s` is ASCII (then its UTF-8 bytes are its characters). */
const NON_ASCII = /[^\x00-\x7f]/;

/** Whether `s` has a character outside ASCII. */
export function hasNonAscii(s: string): boolean {
  return NON_ASCII.test(s);
}

/** `s` as its UTF-8 bytes, one character per byte. */
function utf8Chars(s: string): string {
  return hasNonAscii(s) ? Buffer.from(s, 'utf8').toString('latin1') : s;
}

/**
 * The header block of `headers` (in `Object.keys` order, as kafkajs and the Produce encoder write them):
 * byte for byte what a record with these string headers carries.
 */
export function headerBlockOf(headers: Record<string, string>): string {
  let s = '';
  let n = 0;
  for (const k of Object.keys(headers)) {
    const name = utf8Chars(k);
    const value = utf8Chars(headers[k] as string);
    s += varintChars(name.length) + name + varintChars(value.length) + value;
    n++;
  }
  return varintChars(n) + s;
}

/**
 * `s`, stored flat. V8 keeps a string built by `+` as a rope: a tree of cons-string nodes (about 32 bytes
 * each) over every piece it was built from, until something reads its characters. A capture's header
 * block is built from ~60 pieces, so as a rope it held ~3.2 KB of heap against ~1.4 KB flat (measured,
 * 1 KB bodies), for as long as the record waits in the tee: while the brokers are down, that is every
 * record in the tee's buffer, past young-generation collections. Reading a character flattens a rope in
 * place, once (it would be flattened anyway when sent to the publisher worker); the pieces then die
 * young. The character read is returned into the result's path so the read cannot be optimised away.
 */
export function flattened(s: string): string {
  return s.length === 0 || s.charCodeAt(s.length - 1) >= 0 ? s : s.slice(0);
}

/** Reads one zigzag varint at `at`; returns the value and the position after it. */
function readVarint(block: string, at: number): [number, number] {
  let v = 0;
  let shift = 0;
  for (;;) {
    if (at >= block.length || shift > 28) throw new RangeError('Kafka header block: truncated or bad varint');
    const b = block.charCodeAt(at++);
    v |= (b & 0x7f) << shift;
    if ((b & 0x80) === 0) break;
    shift += 7;
  }
  v >>>= 0;
  return [(v >>> 1) ^ -(v & 1), at];
}

/** Decodes a header block back into string headers (UTF-8); throws `RangeError` on a malformed block. */
export function decodeHeaderBlock(block: string): Record<string, string> {
  const out: Record<string, string> = {};
  let [count, at] = readVarint(block, 0);
  if (count < 0) throw new RangeError('Kafka header block: negative count');
  const take = (): string => {
    const [len, next] = readVarint(block, at);
    if (len < 0 || next + len > block.length) throw new RangeError('Kafka header block: length runs past its end');
    at = next + len;
    const raw = block.slice(next, at);
    return hasNonAscii(raw) ? Buffer.from(raw, 'latin1').toString('utf8') : raw;
  };
  while (count-- > 0) {
    const k = take();
    out[k] = take();
  }
  if (at !== block.length) throw new RangeError('Kafka header block: bytes after the last header');
  return out;
}

/**
 * A bus message whose headers are held as a header block (`kafkaHeaders`); `headers` is decoded from it
 * on first read, so a consumer that wants the object still gets it.
 */
export class HeaderBlockMessage {
  private decoded: Record<string, string> | undefined;
  constructor(
    readonly key: string | null,
    readonly value: Buffer,
    readonly kafkaHeaders: string,
  ) {}

  /** The headers, decoded from the block on first read. */
  get headers(): Record<string, string> {
    return (this.decoded ??= decodeHeaderBlock(this.kafkaHeaders));
  }
}
