import { boundHeapGrowth } from '../common/heap-growth.js';
import { newId } from '../common/ids.js';
import type { RunningRole, RuntimeContext } from '../runtime/context.js';
import { createIngestMetrics } from './metrics.js';
import { IngestPipeline, type DecodeFn } from './pipeline.js';

/** Options of {@link startIngest}; batching and retry numbers come from `ctx.config.ingest`. */
export interface IngestOptions {
  /** @default ctx.bus.topic */
  topic?: string;
  /** @default the bus's configured group (`kafka.groupId`) */
  groupId?: string;
  /** @default decodeCall */
  decode?: DecodeFn;
}

/** The running ingest role. */
export interface IngestRole extends RunningRole {
  /** Resolves once the consumer has partitions (Kafka: after the group join). */
  ready: Promise<void>;
  pipeline: IngestPipeline;
}

/**
 * Starts the ingest role: consumes `ctx.bus`, decodes, dedupes and stores, committing only behind
 * stored data. `stop()` stops intake, lets the in-flight batch finish storing and commit, then leaves
 * the group (the bus and store are closed by their owner).
 */
export async function startIngest(ctx: RuntimeContext, options: IngestOptions = {}): Promise<IngestRole> {
  const { config, logger } = ctx;
  // Process-wide: bounds the garbage a backlog leaves in the old generation between full collections.
  const heapGrowth = boundHeapGrowth(config.ingest.heapGrowingPercent);
  const pipeline = new IngestPipeline(ctx.store, createIngestMetrics(ctx.metrics), {
    maxBatchRows: config.ingest.maxBatchRows,
    maxBatchBytes: config.ingest.maxBatchBytes,
    retryInitialMs: config.ingest.retryInitialMs,
    retryMaxMs: config.ingest.retryMaxMs,
    models: config.models,
    payloads: { days: config.retention.payloadDays },
    ...(options.decode ? { decode: options.decode } : {}),
    // In-process offsets restart at 0 each run: scope dedup tokens to this run so they never collide.
    tokenPrefix: ctx.bus.kind === 'inprocess' ? `inprocess-${newId()}:` : '',
    logger,
  });
  let markReady!: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  const topic = options.topic ?? ctx.bus.topic;
  const consumer = await ctx.bus.consume({
    topic,
    ...(options.groupId !== undefined ? { groupId: options.groupId } : {}),
    handler: pipeline.handleBatch,
    ...(config.ingest.overlapBatches ? { take: pipeline.takeBatch } : {}),
    onReady: () => markReady(),
  });
  logger.info('ingest started', { bus: ctx.bus.kind, topic, heapGrowth });
  let stopping: Promise<void> | undefined;
  return {
    name: 'ingest',
    urls: [],
    ready,
    pipeline,
    stop: () => {
      stopping ??= consumer.stop().then(() => logger.info('ingest stopped', { topic }));
      return stopping;
    },
  };
}
