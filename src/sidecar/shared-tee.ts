import type { RuntimeContext } from '../runtime/context.js';
import { Tee, type TeeOptions } from './tee.js';
import { teePublisher, type TeePublisher } from './tee-publisher.js';

/** A reference to the process's shared {@link Tee}; `release` closes it when the last holder lets go. */
export interface TeeLease {
  tee: Tee;
  /** Drops this reference; the last one flushes and closes the tee within `deadlineMs`. */
  release(deadlineMs: number): Promise<void>;
}

interface Entry {
  tee: Tee;
  publisher: TeePublisher;
  refs: number;
}

/** Publishes the tee keeps unsettled at once on a Kafka bus. */
export const KAFKA_IN_FLIGHT_BATCHES = 2;

/**
 * How long the tee holds a partial batch after the last publish on a Kafka bus: half of the default
 * 20 ms flush interval (a tick comes one interval after the tick that published, give or take jitter).
 */
export const KAFKA_LINGER_MS = 10;

/**
 * How long after a record is offered the tee hands it to the in-process bus at the latest: well inside the
 * young generation's collection interval (tens of ms under load), so few records are promoted on the way,
 * and a few records per publish at 1,000 req/s rather than one.
 */
export const IN_PROCESS_HAND_OFF_MS = 5;

const shared = new WeakMap<RuntimeContext, Entry>();

/**
 * Gives the one tee of a runtime context, creating and starting it on first use. The REST sidecar
 * and the gRPC proxy both capture through it, so one byte bound, one buffer and one set of
 * `modelwatch_tee_*` counters cover every capture (`captured = sent + dropped + buffered`).
 * `options` apply only when this call creates the tee.
 */
export function acquireTee(ctx: RuntimeContext, options: Omit<TeeOptions, 'registry' | 'logger'> = {}): TeeLease {
  let entry = shared.get(ctx);
  if (entry === undefined) {
    // With Kafka, publishing runs in a worker thread (config.sidecar.publishInWorker).
    const publisher = teePublisher(ctx);
    const tee = new Tee(publisher.bus, {
      maxBufferBytes: ctx.config.sidecar.maxTeeBufferBytes,
      retryBackoffMs: ctx.config.sidecar.teeRetryBackoffMs,
      maxRetryBackoffMs: ctx.config.sidecar.teeMaxRetryBackoffMs,
      // Kafka acknowledges each batch after a round trip: with two in flight, a batch is being sent
      // while the previous one waits for its ack. (More did not raise throughput where the producer
      // was CPU-bound, and each costs its batch's memory in the producer.)
      maxInFlightBatches: publisher.bus.kind === 'kafka' ? KAFKA_IN_FLIGHT_BATCHES : 1,
      // Each Kafka publish costs a Produce request (and with the worker a hand-off between threads)
      // whatever its size: records that come while one waits for its ack go out with the next tick,
      // not a few at a time as soon as it settles. The in-process bus takes a batch at no cost, and
      // holding records longer there only gets them promoted on this thread.
      ...(publisher.bus.kind === 'kafka' ? { lingerMs: KAFKA_LINGER_MS } : {}),
      // Handing a batch to the in-process bus or to the publisher worker costs this thread next to
      // nothing, and records held back under load stay here long enough to be promoted (major
      // collections on the request thread): only a producer on this thread is held back.
      ...(publisher.inWorker || publisher.bus.kind === 'inprocess' ? { maxLoopUtilization: 1 } : {}),
      // The publisher worker takes each record's headers as one string (a Kafka header block) rather
      // than an object rebuilt on its side (structured clone: ~20 µs per record there).
      ...(publisher.inWorker ? { kafkaHeaderBlock: true } : {}),
      // The in-process bus takes a batch at no cost: large records go over within a few milliseconds rather
      // than waiting here for the flusher's tick, long enough to be promoted with their values'
      // `ArrayBuffer`s (at 64 KB bodies, the request thread's major collections). Small ones keep the tick.
      ...(publisher.bus.kind === 'inprocess' ? { handOffMs: IN_PROCESS_HAND_OFF_MS } : {}),
      ...options,
      registry: ctx.metrics,
      logger: ctx.logger,
    });
    tee.start();
    entry = { tee, publisher, refs: 0 };
    shared.set(ctx, entry);
  }
  const held = entry;
  held.refs++;
  let released = false;
  return {
    tee: held.tee,
    release: async (deadlineMs) => {
      if (released) return;
      released = true;
      held.refs--;
      if (held.refs > 0) return;
      shared.delete(ctx);
      await held.tee.close(deadlineMs);
      await held.publisher.close();
    },
  };
}
