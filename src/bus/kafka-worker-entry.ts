// Worker-thread entry of KafkaWorkerBus: runs a KafkaBus producer and answers each posted batch with
// the broker's ack or the error. Started by kafka-worker.ts; not imported anywhere else.
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { ModelwatchError, errorMessage } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { KafkaBus } from './kafka.js';
// After kafka.js, which loads it in its place (before kafkajs).
import { onProduceFrameAnswered } from './kafka-produce-encoder.js';
import { releaseArrayBuffers, type FromWorker, type KafkaWorkerData, type ToWorker } from './kafka-worker.js';
import { HeaderBlockMessage } from './kafka-header-block.js';
import type { BusMessage } from './types.js';

const port = parentPort;
if (!port) throw new Error('kafka-worker-entry must run in a worker thread');

function send(m: FromWorker): void {
  port?.postMessage(m);
}

/** Forwards warnings and errors to the main thread's logger (fields made cloneable). */
function forward(level: 'warn' | 'error') {
  return (message: string, fields: Record<string, unknown> = {}): void => {
    let safe: Record<string, unknown>;
    try {
      safe = structuredClone(fields);
    } catch {
      safe = Object.fromEntries(
        Object.entries(fields).map(([k, v]) => [
          k,
          v instanceof Error ? v.message : typeof v === 'object' || typeof v === 'function' ? '[unserializable]' : v,
        ]),
      );
    }
    send({ type: 'log', level, message, fields: safe });
  };
}

const logger: Logger = { debug() {}, info() {}, warn: forward('warn'), error: forward('error') };
const data = workerData as KafkaWorkerData;
if (data.nice !== 0) {
  // pid 0 is the calling thread on Linux: only this worker yields the core to the request thread.
  try {
    setPriority(0, Math.max(-20, Math.min(19, getPriority(0) + data.nice)));
  } catch (err) {
    logger.warn('kafka publisher worker could not set its priority', { nice: data.nice, error: errorMessage(err) });
  }
}
const bus = new KafkaBus({ ...data.options, logger });

// Values the broker acknowledged and Produce frames (up to 1 MiB each) it answered are freed explicitly
// rather than at this isolate's next major collection. Frames under 4 KiB share Node's pool: left alone.
// Buffers nothing reads any more (acknowledged values, answered frames), freed together once they hold
// RELEASE_BYTES: each release costs a MessageChannel (~20–40 µs), which at 1 KB records would be paid
// for a few tens of KB; at 64 KB a batch's values alone pass the mark, so they go at once as before.
const RELEASE_BYTES = 1024 * 1024;
let releasable: ArrayBuffer[] = [];
let releasableBytes = 0;
function toRelease(buffers: ArrayBuffer[]): void {
  for (const ab of buffers) {
    releasable.push(ab);
    releasableBytes += ab.byteLength;
  }
  if (releasableBytes < RELEASE_BYTES) return;
  const all = releasable;
  releasable = [];
  releasableBytes = 0;
  releaseArrayBuffers(all);
}
onProduceFrameAnswered((frame) => {
  const ab = frame.buffer;
  if (ab instanceof ArrayBuffer && frame.byteOffset === 0 && frame.byteLength === ab.byteLength) toRelease([ab]);
});

port.on('message', (m: ToWorker) => {
  if (m.type === 'close') {
    void bus.close().finally(() => {
      send({ type: 'closed' });
      port.close();
    });
    return;
  }
  const messages: BusMessage[] = new Array<BusMessage>(m.keys.length);
  let inRing = false;
  for (let i = 0; i < m.keys.length; i++) {
    const s = m.spans;
    const at = s[3 * i] as number;
    // -1: a slot of the record ring, read in place (the main thread frees it after `released`).
    if (at < 0) inRing = true;
    const memory = at < 0 ? data.ring : m.buffers[at];
    if (memory === undefined) throw new Error('kafka publisher worker: a value points into a ring it was not given');
    messages[i] = new HeaderBlockMessage(
      m.keys[i] ?? null,
      Buffer.from(memory, s[3 * i + 1], s[3 * i + 2]),
      m.blocks[i] as string,
    );
  }
  const { result, done } = bus.publishTracked(messages, m.topic);
  // After a failure the producer may still be retrying, reading the values: their slots are given back
  // only once it is done with them.
  if (inRing) void done.then(() => send({ type: 'released', id: m.id }));
  result.then(
    () => {
      send({ type: 'ack', id: m.id });
      // Nothing reads the values after the ack (see releaseArrayBuffers); not after a failure: the
      // producer may still be retrying them.
      toRelease(m.buffers);
    },
    (err: unknown) => {
      send({
        type: 'nack',
        id: m.id,
        message: errorMessage(err),
        code: err instanceof ModelwatchError ? err.code : 'bus_unavailable',
        // KafkaBus classified the producer's error (kafkaErrorRetryable); the main thread needs the answer.
        retryable: err instanceof ModelwatchError ? err.retryable : false,
      });
    },
  );
});
