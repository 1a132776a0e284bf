import { KafkaBus } from '../bus/kafka.js';
import { KafkaWorkerBus } from '../bus/kafka-worker.js';
import type { Bus } from '../bus/types.js';
import { errorMessage } from '../common/errors.js';
import type { RuntimeContext } from '../runtime/context.js';

/** The bus a tee publishes on, and how to let go of it. */
export interface TeePublisher {
  bus: Bus;
  /** Whether publishing runs in a worker thread. */
  inWorker: boolean;
  /** Closes what this publisher owns (the worker); never `ctx.bus`. */
  close(): Promise<void>;
}

/**
 * Chooses the tee's bus. With `config.sidecar.publishInWorker` (default true) and a {@link KafkaBus}
 * as `ctx.bus`, a {@link KafkaWorkerBus} with the same settings: kafkajs record encoding and CRC32C
 * run in a worker thread, not on the event loop that proxies requests. Otherwise `ctx.bus` itself.
 */
export function teePublisher(ctx: RuntimeContext): TeePublisher {
  if (!ctx.config.sidecar.publishInWorker || !(ctx.bus instanceof KafkaBus)) {
    return { bus: ctx.bus, inWorker: false, close: () => Promise.resolve() };
  }
  const bus = new KafkaWorkerBus({ ...ctx.bus.settings(), logger: ctx.logger });
  return {
    bus,
    inWorker: true,
    close: async () => {
      try {
        await bus.close();
      } catch (err) {
        ctx.logger.warn('tee publisher worker close failed', { error: errorMessage(err) });
      }
    },
  };
}
