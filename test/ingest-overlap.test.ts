// Ingest on the in-process bus decodes the next bus batch while the previous one's last chunk is written
// (`take`), and stays exactly-once: a call published again right after the batch boundary (a producer retry)
// is found by the event-id lookup of the next batch's first write, which starts only after the previous
// batch's last write is stored; an insert refused on the way is retried without duplicating anything.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  encodeCapture,
  InProcessBus,
  type BusConsumer,
  type ConsumedBatch,
  type ConsumeOptions,
} from '../src/bus/index.js';
import { silentLogger } from '../src/common/index.js';
import { createIngestMetrics, IngestPipeline, startIngest, type DecodeFn } from '../src/ingest/index.js';
import { decodeCall } from '../src/protocol/index.js';
import { Tables, type ClickHouseStore } from '../src/store/index.js';
import {
  checkStored,
  counterValue,
  FlakyStore,
  makeCall,
  newRegistry,
  testConfig,
  type Expected,
  openStoreKeepingDuplicates,
} from './support/ingest.js';

let store: ClickHouseStore;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ store, cleanup } = await openStoreKeepingDuplicates());
});

afterAll(async () => {
  await cleanup();
});

/** Calls per bus batch: above the smallest half, so each batch is written as two chunks. */
const BATCH = 3_000;
const BATCHES = 3;
/** Calls in a batch's first chunk: a batch is cut once it holds 2,500 rows (the smallest half) past its middle. */
const FIRST_CHUNK = 2_500;

describe('ingest overlapping bus batches', () => {
  it('decodes the next batch while the last chunk of one is written, storing every call once', async () => {
    const registry = newRegistry();
    const flaky = new FlakyStore(store, 0);
    let decoded = 0;
    const decode: DecodeFn = (call, schema) => {
      decoded++;
      return decodeCall(call, schema);
    };
    const pipeline = new IngestPipeline(flaky, createIngestMetrics(registry), {
      retryInitialMs: 10,
      retryMaxMs: 20,
      decode,
    });
    const bus = new InProcessBus({ topic: 'overlap', maxBatchMessages: BATCH, maxBufferedBytes: 256 * 1024 * 1024 });
    // Calls 0 … BATCH × BATCHES − 1, with the last call of each batch published again as the first message of
    // the next batch (the tee's retry of a batch whose ack was lost).
    const ids: number[] = [];
    for (let b = 0; b < BATCHES; b++) {
      const first = b * (BATCH - 1);
      if (b > 0) ids.push(first - 1);
      for (let i = first; ids.length < (b + 1) * BATCH; i++) ids.push(i);
    }
    await bus.publish(ids.map((i) => encodeCapture(makeCall(i, 1))));
    const distinct = new Set(ids);

    const events: string[] = [];
    let takes = 0;
    let refused = false;
    // The request rows of each batch's last write (the rows that mark its calls stored) wait until the next
    // batch's first chunk is decoded and due to be written: were writes not ordered, that chunk's event-id
    // lookup would run now and miss the call published again across the boundary.
    flaky.beforeInsert = async (table) => {
      if (table !== Tables.requests || takes < 2 || takes > BATCHES) return;
      const firstChunkDecoded = (takes - 1) * BATCH + FIRST_CHUNK;
      for (let i = 0; i < 500 && decoded < firstChunkDecoded; i++) await new Promise((r) => setTimeout(r, 2));
    };
    flaky.onInserted = (table) => {
      // One insert refused once the second batch is being decoded: the write in flight retries it.
      if (!refused && takes === 2 && table === Tables.predictions) {
        refused = true;
        flaky.failInserts = 1;
      }
    };
    let drained!: () => void;
    const done = new Promise<void>((resolve) => (drained = resolve));
    const consumer = await bus.consume({
      topic: 'overlap',
      handler: pipeline.handleBatch,
      take: async (b: ConsumedBatch) => {
        const k = ++takes;
        events.push(`take ${k}`);
        const taken = await pipeline.takeBatch(b);
        void taken.stored.then(() => {
          events.push(`stored ${k}`);
          if (b.backlog === 0) drained();
        });
        return taken;
      },
    });
    await done;
    await consumer.stop();

    // Each batch after the first was handed over before the one before it was stored.
    for (let k = 2; k <= BATCHES; k++) {
      expect(events.indexOf(`take ${k}`)).toBeGreaterThan(-1);
      expect(events.indexOf(`take ${k}`)).toBeLessThan(events.indexOf(`stored ${k - 1}`));
    }
    expect(flaky.failures).toBe(1);
    expect(bus.bufferedBytes).toBe(0);
    const expected: Expected = new Map([...distinct].map((i) => [`ev-${i}`, 1]));
    expect(await checkStored(store, expected)).toEqual({ lost: [], duplicated: [], unexpected: [] });
    // The calls published twice across a boundary were recognised as stored (the retried write counts the
    // calls its first attempt stored, too).
    expect(await counterValue(registry, 'modelwatch_ingest_duplicates_dropped_total')).toBeGreaterThanOrEqual(
      BATCHES - 1,
    );
  }, 240_000);

  it('is what startIngest asks of the bus with ingest.overlapBatches, and only then', async () => {
    /** An in-process bus that notes whether each consumer came with a `take`. */
    class NotingBus extends InProcessBus {
      readonly takes: boolean[] = [];
      override consume(options: ConsumeOptions): Promise<BusConsumer> {
        this.takes.push(options.take !== undefined);
        return super.consume(options);
      }
    }
    const bus = new NotingBus({ topic: 'overlap-config' });
    for (const overlapBatches of [true, false]) {
      const config = testConfig({ ingest: { overlapBatches } });
      const role = await startIngest({ config, store, bus, logger: silentLogger, metrics: newRegistry() });
      await role.ready;
      await role.stop();
    }
    expect(bus.takes).toEqual([true, false]);
  });
});
