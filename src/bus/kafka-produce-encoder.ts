// One-copy Produce requests for kafkajs. kafkajs encodes a Produce request through a chain of growing
// `Encoder`s: every header of every record gets its own encoder (a zero-filled 512-byte buffer, plus a
// `Buffer.from` per varint), every record another, and each value is then copied again into the batch
// body, the batch, the partition, the topic, the request and the framed request: about eight copies of
// each value, and ~25 small encoders per capture record (the sidecar's records carry ~24 headers). This
// module writes the same bytes in two passes instead (sizes first, then each byte once into one buffer
// of exactly the frame's size) for the Produce requests kafkajs sends (v3 to v7 all use kafkajs's v3
// body), and leaves every other request, and any Produce request it does not cover (compression, message
// timestamps, header values that are not strings or Buffers), to kafkajs's own code.
//
// How it hooks in: like kafka-crc32c.ts, through Node's CommonJS module cache before kafkajs loads. The
// Produce v3 request module (which v4–v7 build on) is wrapped to remember its arguments on the request
// it returns, and the request framer (`protocol/request.js`, which the connection calls with the request
// and its correlation id) encodes such a request in one piece. It must be imported after kafka-crc32c.ts
// (loading kafkajs's record batch module pulls in its checksum) and before kafkajs, which kafka.ts does.
// `MODELWATCH_KAFKA_PRODUCE_ENCODER=kafkajs` leaves kafkajs as it is.
import { createRequire } from 'node:module';

/** Set to `kafkajs` to keep kafkajs's own Produce request encoding. */
export const KAFKA_PRODUCE_ENCODER_ENV = 'MODELWATCH_KAFKA_PRODUCE_ENCODER';

/** Whether kafkajs's Produce requests are encoded here, and why not when they are not. */
export interface KafkaProduceEncoderStatus {
  installed: boolean;
  /** Why kafkajs's own encoding is in use (`installed` false). */
  reason?: string;
}

/**
 * On a message handed to kafkajs: its headers as a Kafka header block (src/bus/kafka-header-block.ts),
 * written as is in place of `headers` (which the message then leaves out). Only when this module is
 * installed: kafkajs's own encoding would see no headers.
 */
export const HEADER_BLOCK = Symbol.for('modelwatch.kafkaHeaderBlock');

/** One message as kafkajs's producer hands it to the Produce request. */
export interface ProduceMessage {
  key?: Buffer | string | null;
  value?: Buffer | string | null;
  headers?: Record<string, Buffer | string | (Buffer | string)[] | undefined>;
  /** See {@link HEADER_BLOCK}. */
  [HEADER_BLOCK]?: string;
  timestamp?: number | string | null;
  partition?: number;
}

/** The arguments of kafkajs's Produce v3 request (`protocol/requests/produce/v3/request.js`). */
export interface ProduceRequestArgs {
  acks: number;
  timeout: number;
  transactionalId?: string | null;
  producerId?: unknown;
  producerEpoch?: number;
  compression?: number;
  topicData: {
    topic: string;
    partitions: { partition: number; firstSequence?: number; messages: ProduceMessage[] }[];
  }[];
}

/** What kafkajs's request framer is called with. */
interface FramerArgs {
  correlationId: number;
  clientId: string | null;
  request: ProduceRequest;
}

/** kafkajs's Produce request object, as tagged here. */
interface ProduceRequest {
  apiKey: number;
  apiVersion: number;
  encode: () => Promise<unknown>;
  [PLAN]?: ProduceRequestArgs;
  [FRAME]?: Buffer;
}

/** What kafkajs's Produce protocol factory returns for one request. */
interface ProducePair {
  request: ProduceRequest;
  response: { decode: (payload: Buffer) => Promise<unknown>; parse: (data: unknown) => Promise<unknown> };
}

/** `protocol/requests/produce/index.js`: the factory of a Produce request and its response per version. */
interface ProduceProtocol {
  protocol: (a: { version: number }) => (args: ProduceRequestArgs) => ProducePair;
}

/**
 * Called with each frame this module encoded once the broker's response to it arrived (see
 * {@link onProduceFrameAnswered}); none by default.
 */
let frameAnswered: ((frame: Buffer) => void) | undefined;

/**
 * Has `release` called with every Produce frame this module encoded, once the broker's response to
 * that frame arrived: the frame was then written whole to the socket, and nothing reads it again
 * (a retry encodes a new one). Frames of requests that failed or timed out are never passed (one may
 * still sit in a socket's write queue). The frame owns its `ArrayBuffer` when it is 4 KiB or more;
 * smaller ones share Node's pool and must be left alone by `release`. The publisher worker frees them
 * at once this way (`releaseArrayBuffers`) instead of at its next major collection.
 */
export function onProduceFrameAnswered(release: ((frame: Buffer) => void) | undefined): void {
  frameAnswered = release;
}

interface LongLike {
  getHighBits(): number;
  getLowBits(): number;
}
interface LongClass {
  fromValue(v: unknown): LongLike;
}
type Crc = (b: Buffer) => number;

const PLAN = Symbol.for('modelwatch.kafkaProduceRequest');
/** The frame this module encoded for a request (set by the framer, read when its response arrives). */
const FRAME = Symbol.for('modelwatch.kafkaProduceFrame');
const ACTIVE = Symbol.for('modelwatch.kafkaProduceEncoder');

const INT32_MAX = 0x7fffffff;

/** Bytes of a zigzag varint of a 32-bit value, as kafkajs writes it (`Encoder.writeVarInt`). */
function sizeOfVarInt(value: number): number {
  let v = ((value << 1) ^ (value >> 31)) >>> 0;
  let n = 1;
  while ((v & 0xffffff80) !== 0) {
    n++;
    v >>>= 7;
  }
  return n;
}

function writeVarInt(buf: Buffer, at: number, value: number): number {
  let v = ((value << 1) ^ (value >> 31)) >>> 0;
  while ((v & 0xffffff80) !== 0) {
    buf[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[at++] = v & 0x7f;
  return at;
}

/** Byte length of a nullable key, value or header value (-1 for null), as kafkajs's `writeVarIntBytes` sees it. */
function bytesLength(v: Buffer | string | null | undefined): number {
  if (v === null || v === undefined) return -1;
  return Buffer.isBuffer(v) ? v.length : Buffer.byteLength(v, 'utf8');
}

function writeBytes(buf: Buffer, at: number, v: Buffer | string | null | undefined, len: number): number {
  at = writeVarInt(buf, at, len);
  if (len <= 0 || v === null || v === undefined) return at;
  if (Buffer.isBuffer(v)) return at + v.copy(buf, at);
  return at + buf.write(v, at, len, 'utf8');
}

/** The header list of one record, flattened as kafkajs does (`Object.keys`, array values expanded). */
function headerList(h: ProduceMessage['headers']): [string, Buffer | string][] {
  const out: [string, Buffer | string][] = [];
  if (h === undefined) return out;
  for (const k of Object.keys(h)) {
    const v = h[k] as Buffer | string | (Buffer | string)[];
    if (Array.isArray(v)) for (const one of v) out.push([k, one]);
    else out.push([k, v]);
  }
  return out;
}

function keyOrValueOk(v: unknown): boolean {
  return v === null || v === undefined || typeof v === 'string' || Buffer.isBuffer(v);
}

function headersOk(h: unknown): boolean {
  if (h === undefined) return true;
  if (typeof h !== 'object' || h === null) return false;
  for (const v of Object.values(h)) {
    if (Array.isArray(v)) {
      for (const one of v) if (typeof one !== 'string' && !Buffer.isBuffer(one)) return false;
    } else if (typeof v !== 'string' && !Buffer.isBuffer(v)) return false;
  }
  return true;
}

/**
 * Whether {@link encodeProduceFrame} writes this request exactly as kafkajs would: no compression, no
 * message timestamps (kafkajs then stamps every record of a partition with one `Date.now()`), keys and
 * values that are Buffers, strings or null, header values that are strings or Buffers (kafkajs itself
 * fails on others: its size count calls `Buffer.byteLength`), integer sequences.
 */
export function produceFastPathApplies(args: ProduceRequestArgs): boolean {
  if (args.compression !== undefined && args.compression !== 0) return false;
  if (!Array.isArray(args.topicData)) return false;
  for (const t of args.topicData) {
    if (typeof t.topic !== 'string' || !Array.isArray(t.partitions)) return false;
    for (const p of t.partitions) {
      if (!Number.isInteger(p.partition) || !Array.isArray(p.messages)) return false;
      if (p.firstSequence !== undefined && !Number.isInteger(p.firstSequence)) return false;
      for (const m of p.messages) {
        if (m.timestamp !== undefined && m.timestamp !== null) return false;
        if (!keyOrValueOk(m.key) || !keyOrValueOk(m.value) || !headersOk(m.headers)) return false;
        const block = m[HEADER_BLOCK];
        if (block !== undefined && (typeof block !== 'string' || block.length === 0)) return false;
      }
    }
  }
  return true;
}

interface RecordPlan {
  key: Buffer | string | null | undefined;
  keyLen: number;
  value: Buffer | string | null | undefined;
  valueLen: number;
  headers: [string, Buffer | string][];
  headerLens: number[];
  /** The header section as given ({@link HEADER_BLOCK}), written in place of `headers`. */
  block: string | undefined;
  /** Bytes after the record's length varint. */
  body: number;
}

/**
 * Encodes a whole framed Produce request (size, request header, then kafkajs's v3 body with one record
 * batch per partition, magic 2, uncompressed) into one buffer of exactly its size, byte for byte what
 * kafkajs's `protocol/request.js` over its Produce v3 request writes for the same arguments at the same
 * `Date.now()`. Call only when {@link produceFastPathApplies}; `Long` is kafkajs's (`utils/long`), `crc32c`
 * the checksum kafkajs's record batch uses.
 */
export function encodeProduceFrame(
  frame: { apiKey: number; apiVersion: number; correlationId: number; clientId: string | null },
  args: ProduceRequestArgs,
  Long: LongClass,
  crc32c: Crc,
): Buffer {
  const transactionalId = args.transactionalId ?? null;
  const producerId = Long.fromValue(args.producerId === undefined ? -1 : args.producerId);
  const producerEpoch = args.producerEpoch ?? 0;
  const attributes = transactionalId ? 16 : 0;
  const clientLen = frame.clientId === null || frame.clientId === undefined ? -1 : Buffer.byteLength(frame.clientId);
  const txLen = transactionalId === null ? -1 : Buffer.byteLength(transactionalId);

  // Pass 1: sizes.
  const plans: RecordPlan[][][] = [];
  let size = 2 + 2 + 4 + 2 + Math.max(0, clientLen); // apiKey, apiVersion, correlationId, clientId
  size += 2 + Math.max(0, txLen) + 2 + 4 + 4; // transactional_id, acks, timeout, topic count
  for (const t of args.topicData) {
    size += 2 + Buffer.byteLength(t.topic) + 4;
    const tp: RecordPlan[][] = [];
    for (const p of t.partitions) {
      // partition, record set size, then the batch: first offset, length, leader epoch, magic, crc,
      // attributes, last offset delta, first and max timestamp, producer id, epoch, first sequence, count.
      size += 4 + 4 + 8 + 4 + 4 + 1 + 4 + 2 + 4 + 8 + 8 + 8 + 2 + 4 + 4;
      const pp: RecordPlan[] = [];
      for (let i = 0; i < p.messages.length; i++) {
        const m = p.messages[i] as ProduceMessage;
        const block = m[HEADER_BLOCK];
        const headers = block === undefined ? headerList(m.headers) : [];
        const keyLen = bytesLength(m.key);
        const valueLen = bytesLength(m.value);
        const headerLens: number[] = new Array<number>(headers.length * 2);
        let body = 1 + 1 + sizeOfVarInt(i); // attributes, timestamp delta 0, offset delta
        body += sizeOfVarInt(keyLen) + Math.max(0, keyLen) + sizeOfVarInt(valueLen) + Math.max(0, valueLen);
        body += block === undefined ? sizeOfVarInt(headers.length) : block.length;
        for (let h = 0; h < headers.length; h++) {
          const [hk, hv] = headers[h] as [string, Buffer | string];
          const kl = Buffer.byteLength(hk, 'utf8');
          const vl = bytesLength(hv);
          headerLens[2 * h] = kl;
          headerLens[2 * h + 1] = vl;
          body += sizeOfVarInt(kl) + kl + sizeOfVarInt(vl) + vl;
        }
        size += sizeOfVarInt(body) + body;
        pp.push({ key: m.key, keyLen, value: m.value, valueLen, headers, headerLens, block, body });
      }
      tp.push(pp);
    }
    plans.push(tp);
  }
  if (size > INT32_MAX) throw new RangeError(`Produce request of ${size} bytes is too large`);

  // Pass 2: every byte once.
  const buf = Buffer.allocUnsafe(4 + size);
  let at = buf.writeInt32BE(size, 0);
  at = buf.writeInt16BE(frame.apiKey, at);
  at = buf.writeInt16BE(frame.apiVersion, at);
  at = buf.writeInt32BE(frame.correlationId, at);
  at = buf.writeInt16BE(clientLen, at);
  if (clientLen > 0) at += buf.write(frame.clientId as string, at, clientLen, 'utf8');
  at = buf.writeInt16BE(txLen, at);
  if (txLen > 0) at += buf.write(transactionalId as string, at, txLen, 'utf8');
  at = buf.writeInt16BE(args.acks, at);
  at = buf.writeInt32BE(args.timeout, at);
  at = buf.writeInt32BE(args.topicData.length, at);
  args.topicData.forEach((t, ti) => {
    const topicLen = Buffer.byteLength(t.topic);
    at = buf.writeInt16BE(topicLen, at);
    at += buf.write(t.topic, at, topicLen, 'utf8');
    at = buf.writeInt32BE(t.partitions.length, at);
    t.partitions.forEach((p, pi) => {
      const records = (plans[ti] as RecordPlan[][])[pi] as RecordPlan[];
      const now = Long.fromValue(Date.now());
      at = buf.writeInt32BE(p.partition, at);
      const setSizeAt = at;
      at += 4;
      const setStart = at;
      at = buf.writeInt32BE(0, at); // first offset (int64 0)
      at = buf.writeInt32BE(0, at);
      const lengthAt = at;
      at += 4;
      const batchStart = at;
      at = buf.writeInt32BE(0, at); // partition leader epoch
      at = buf.writeInt8(2, at); // magic
      const crcAt = at;
      at += 4;
      const bodyStart = at;
      at = buf.writeInt16BE(attributes, at);
      at = buf.writeInt32BE(records.length - 1, at);
      at = buf.writeInt32BE(now.getHighBits(), at);
      at = buf.writeInt32BE(now.getLowBits(), at);
      at = buf.writeInt32BE(now.getHighBits(), at);
      at = buf.writeInt32BE(now.getLowBits(), at);
      at = buf.writeInt32BE(producerId.getHighBits(), at);
      at = buf.writeInt32BE(producerId.getLowBits(), at);
      at = buf.writeInt16BE(producerEpoch, at);
      at = buf.writeInt32BE(p.firstSequence ?? 0, at);
      at = buf.writeInt32BE(records.length, at);
      for (let i = 0; i < records.length; i++) {
        const r = records[i] as RecordPlan;
        at = writeVarInt(buf, at, r.body);
        buf[at++] = 0; // attributes
        buf[at++] = 0; // timestamp delta (varlong 0)
        at = writeVarInt(buf, at, i);
        at = writeBytes(buf, at, r.key, r.keyLen);
        at = writeBytes(buf, at, r.value, r.valueLen);
        if (r.block !== undefined) {
          at += buf.write(r.block, at, 'latin1');
          continue;
        }
        at = writeVarInt(buf, at, r.headers.length);
        for (let h = 0; h < r.headers.length; h++) {
          const [hk, hv] = r.headers[h] as [string, Buffer | string];
          at = writeBytes(buf, at, hk, r.headerLens[2 * h] as number);
          at = writeBytes(buf, at, hv, r.headerLens[2 * h + 1] as number);
        }
      }
      buf.writeUInt32BE(crc32c(buf.subarray(bodyStart, at)) >>> 0, crcAt);
      buf.writeInt32BE(at - batchStart, lengthAt);
      buf.writeInt32BE(at - setStart, setSizeAt);
    });
  });
  if (at !== buf.length) throw new Error(`Produce request encoder wrote ${at} of ${buf.length} bytes`);
  return buf;
}

/** kafkajs's own framer and Produce v3 request (before the wrapping), for comparisons. */
export interface KafkajsProduceOriginals {
  createRequest: (a: FramerArgs) => Promise<{ buffer: Buffer }>;
  produceV3: (a: ProduceRequestArgs) => FramerArgs['request'];
  Long: LongClass;
  crc32c: Crc;
}

let originals: KafkajsProduceOriginals | undefined;

function install(): KafkaProduceEncoderStatus {
  if (process.env[KAFKA_PRODUCE_ENCODER_ENV] === 'kafkajs') {
    return { installed: false, reason: `${KAFKA_PRODUCE_ENCODER_ENV}=kafkajs` };
  }
  try {
    const require = createRequire(import.meta.url);
    const kreq = createRequire(require.resolve('kafkajs'));
    const framerFile = kreq.resolve('./src/protocol/request.js');
    const v3File = kreq.resolve('./src/protocol/requests/produce/v3/request.js');
    const connectionFile = kreq.resolve('./src/network/connection.js');
    if (require.cache[connectionFile] !== undefined) {
      return { installed: false, reason: 'kafkajs loaded its connection module first' };
    }
    if ((require(framerFile) as { [ACTIVE]?: boolean })[ACTIVE] === true) return { installed: true };
    for (const v of ['v4', 'v5', 'v6', 'v7']) {
      if (require.cache[kreq.resolve(`./src/protocol/requests/produce/${v}/request.js`)] !== undefined) {
        return { installed: false, reason: `kafkajs loaded its Produce ${v} request first` };
      }
    }
    const createRequest = require(framerFile) as KafkajsProduceOriginals['createRequest'];
    const produceV3 = require(v3File) as KafkajsProduceOriginals['produceV3'];
    const Long = kreq('./src/utils/long.js') as LongClass;
    const crc32c = kreq('./src/protocol/recordBatch/crc32C/index.js') as Crc;
    const framerModule = require.cache[framerFile];
    const v3Module = require.cache[v3File];
    if (typeof createRequest !== 'function' || typeof produceV3 !== 'function' || !framerModule || !v3Module) {
      return { installed: false, reason: 'kafkajs layout not as expected' };
    }
    originals = { createRequest, produceV3, Long, crc32c };
    const produceIndexFile = kreq.resolve('./src/protocol/requests/produce/index.js');
    const produceIndex = require(produceIndexFile) as ProduceProtocol;
    const wrappedV3 = (args: ProduceRequestArgs): FramerArgs['request'] => {
      const request = produceV3(args);
      if (produceFastPathApplies(args)) request[PLAN] = args;
      return request;
    };
    const framer = (a: FramerArgs): Promise<{ buffer: Buffer }> => {
      const plan = a.request[PLAN];
      if (plan === undefined) return createRequest(a);
      const { apiKey, apiVersion } = a.request;
      const buffer = encodeProduceFrame(
        { apiKey, apiVersion, correlationId: a.correlationId, clientId: a.clientId },
        plan,
        Long,
        crc32c,
      );
      a.request[FRAME] = buffer;
      return Promise.resolve({ buffer });
    };
    // Each Produce request gets its own response decoder, so the frame can be handed over when (and
    // only when) the broker answered that very request: kafkajs decodes a response only after it came.
    const protocol = produceIndex.protocol;
    produceIndex.protocol = (v) => {
      const make = protocol(v);
      return (args) => {
        const pair = make(args);
        const request = pair.request;
        if (request[PLAN] === undefined) return pair;
        const { response } = pair;
        return {
          request,
          response: {
            ...response,
            decode: async (payload: Buffer) => {
              const out = await response.decode(payload);
              const frame = request[FRAME];
              request[FRAME] = undefined;
              if (frame !== undefined) frameAnswered?.(frame);
              return out;
            },
          },
        };
      };
    };
    Object.defineProperty(framer, ACTIVE, { value: true });
    v3Module.exports = wrappedV3;
    framerModule.exports = framer;
    return { installed: true };
  } catch (err) {
    return { installed: false, reason: `kafkajs Produce encoder not installed: ${String(err)}` };
  }
}

const status: KafkaProduceEncoderStatus = install();

/** Whether kafkajs's Produce requests are encoded by {@link encodeProduceFrame} in this thread. */
export function kafkaProduceEncoderStatus(): KafkaProduceEncoderStatus {
  return { ...status };
}

/** kafkajs's own framer and Produce v3 request as they were before the wrapping (undefined when not installed). */
export function kafkajsProduceOriginals(): KafkajsProduceOriginals | undefined {
  return originals;
}
