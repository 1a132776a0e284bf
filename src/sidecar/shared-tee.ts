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
