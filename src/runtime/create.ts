import { Registry } from 'prom-client';
import { InProcessBus, type InProcessBusOptions } from '../bus/in-process.js';
import type { Bus } from '../bus/types.js';
import { createLogger, type Logger } from '../common/logger.js';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import type { Config } from '../config/schema.js';
import type { Store } from '../store/store.js';
import type { RuntimeContext } from './context.js';
import { registerDefaultMetrics } from './metrics.js';

/** Options of {@link createRuntime}. */
export interface CreateRuntimeOptions {
  /** Logger to use instead of one built from `config.logLevel`. @default createLogger(config.logLevel) */
  logger?: Logger;
  /** Registry to use instead of a fresh one. @default new Registry() */
  metrics?: Registry;
  /** Whether to register prom-client's default process metrics on the registry. @default true */
  defaultMetrics?: boolean;
  /** An already opened store (tests share one chdb engine per process). @default openStore(config) */
  store?: Store;
  /**
   * Whether the roles of this process use the store. When false (the sidecar alone), the store is
   * neither opened nor migrated and `ctx.store` throws `internal` on any use. @default true
   */
  withStore?: boolean;
  /**
   * A bus to use instead of one built from the config (the proxy thread of `modelwatch up` publishes through
   * a bridge to the main thread's bus). The runtime does not close a bus it was given. @default the config's
   */
  bus?: Bus;
}

/**
 * The `ctx.store` of a runtime built without a store: any property read throws, so a role that
 * unexpectedly needs storage fails loudly at its first use instead of opening (or migrating) one.
 */
function absentStore(): Store {
  return new Proxy({} as Store, {
    get(_target, property) {
      // Promise resolution probes `then`; answering undefined keeps `await ctx.store` harmless.
      if (property === 'then') return undefined;
      throw new ModelwatchError(
        ErrorCodes.internal,
        `this process runs roles that do not use the store (store.${String(property)} was used)`,
      );
    },
  });
}

/** A {@link RuntimeContext} that owns its store and bus. */
export interface Runtime extends RuntimeContext {
  /** Closes the bus, then the store. Roles must have been stopped before. Idempotent. */
  close(): Promise<void>;
}

/**
 * The in-process bus of a config (no Kafka brokers): it hands ingest batches as large as one store write
 * (`ingest.maxBatchRows` messages), lingering up to `ingest.flushIntervalMs` (`ingest.steadyLingerMs`, at most
 * a quarter of `detect.intervalMs`, while captures keep arriving) for `ingest.lingerRecords`
 * messages, or for fewer once they hold a quarter of a store write's (or of the bus's) bytes, so that a few
 * calls of thousands of rows each (a full write already) do not wait out the linger time.
 */
export function inProcessBusOptions(config: Config): InProcessBusOptions {
  return {
    topic: config.kafka.topic,
    maxBufferedBytes: config.bus.maxBufferedBytes,
    maxBatchMessages: config.ingest.maxBatchRows,
    lingerMessages: Math.min(config.ingest.lingerRecords, config.ingest.maxBatchRows),
    lingerMs: config.ingest.flushIntervalMs,
    // Every detection interval must see the calls captured in it: a short `detect.intervalMs` (the demo's
    // 2-5 s) caps the steady linger, or intervals with traffic would look empty (no_data).
    steadyLingerMs: Math.min(config.ingest.steadyLingerMs, Math.floor(config.detect.intervalMs / 4)),
    lingerBytes: Math.floor(Math.min(config.ingest.maxBatchBytes, config.bus.maxBufferedBytes) / 4),
  };
}

// The store client and kafkajs are imported only by processes that use them: `modelwatch sidecar` on the
// in-process bus loads neither, and the sidecar's memory beside each inference pod is what that saves.
async function createBus(config: Config, logger: Logger): Promise<Bus> {
  if (config.kafka.brokers.length === 0) {
    return new InProcessBus({ ...inProcessBusOptions(config), logger });
  }
  const k = config.kafka;
  const { KafkaBus } = await import('../bus/kafka.js');
  return new KafkaBus({
    brokers: k.brokers,
    topic: k.topic,
    clientId: k.clientId,
    groupId: k.groupId,
    idempotent: k.idempotent,
    ssl: k.ssl,
    sasl: k.sasl,
    // Ingest stores each fetched batch before committing, so the broker's fetch wait is what bounds
    // batching in time: tie it to the configured flush interval.
    fetchMaxWaitMs: config.ingest.flushIntervalMs,
    logger,
  });
}

/**
 * Builds the process's runtime: logger, a fresh Prometheus registry (never the global one), the store
 * (migrations applied; skipped with `withStore: false`) and the bus (in-process when `kafka.brokers`
 * is empty, else Kafka).
 */
export async function createRuntime(config: Config, options: CreateRuntimeOptions = {}): Promise<Runtime> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const metrics = options.metrics ?? new Registry();
  if (options.defaultMetrics ?? true) registerDefaultMetrics(metrics);
  const withStore = options.withStore ?? true;
  const ownsStore = options.store === undefined && withStore;
  const store =
    options.store ?? (withStore ? await (await import('../store/open.js')).openStore(config) : absentStore());
  const ownsBus = options.bus === undefined;
  let bus: Bus;
  try {
    bus = options.bus ?? (await createBus(config, logger));
  } catch (err) {
    if (ownsStore) await store.close().catch(() => undefined);
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    config,
    store,
    bus,
    logger,
    metrics,
    close: () => {
      closing ??= (async () => {
        if (ownsBus) {
          try {
            await bus.close();
          } catch (err) {
            logger.warn('bus close failed', { error: errorMessage(err) });
          }
        }
        if (ownsStore) {
          try {
            await store.close();
          } catch (err) {
            logger.warn('store close failed', { error: errorMessage(err) });
          }
        }
      })();
      return closing;
    },
  };
}
