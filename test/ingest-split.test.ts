// Exactly-once when a large bus batch is written as several chunks (the first half is written while the
// second is decoded): the same batch delivered again (same offsets), and the same calls published again at
// other offsets (producer retry), are each stored once; a write that fails half-way (predictions stored, the
// rest refused) is completed by the retry without duplicating the predictions.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCapture, type ConsumedBatch, type ConsumedMessage } from '../src/bus/index.js';
import { createIngestMetrics, IngestPipeline } from '../src/ingest/index.js';
import { Tables, type ClickHouseStore } from '../src/store/index.js';
import {
  checkStored,
  counterValue,
  FlakyStore,
  makeCall,
  newRegistry,
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

/** 6,000 one-row calls: more than twice the smallest half, so the batch is written as two chunks. */
const CALLS = 6_000;

function batchOf(from: number, to: number, firstOffset: number): ConsumedBatch {
  const messages: ConsumedMessage[] = [];
  for (let i = from; i < to; i++) {
    messages.push({ ...encodeCapture(makeCall(i, 1)), offset: String(firstOffset + i - from), timestamp: 0 });
  }
  return {
    topic: 'split',
    partition: 0,
    messages,
    heartbeat: () => Promise.resolve(),
    isRunning: () => true,
  };
}

describe('ingest of a batch written in several chunks', () => {
  it('stores a re-delivered batch and a producer retry at other offsets once', async () => {
    const registry = newRegistry();
    const flaky = new FlakyStore(store, 0);
    const pipeline = new IngestPipeline(flaky, createIngestMetrics(registry), { retryInitialMs: 10, retryMaxMs: 20 });
    let inserts = 0;
    flaky.onInserted = (table) => {
      inserts++;
      // The first chunk's predictions are stored; its payload insert is then refused once.
      if (inserts === 1 && table === Tables.predictions) flaky.failInserts = 1;
    };
    const batch = batchOf(0, CALLS, 0);
    await pipeline.handleBatch(batch);
    expect(flaky.failures).toBe(1);
    // More than one write: the batch was split (each write inserts predictions, payloads, quarantine, requests).
    expect(inserts).toBeGreaterThan(4);
    // Redelivery: the very same batch (same offsets).
    await pipeline.handleBatch(batchOf(0, CALLS, 0));
    // Producer retry: the second half of the calls again, at new offsets.
    await pipeline.handleBatch(batchOf(CALLS / 2, CALLS, CALLS));

    const expected: Expected = new Map(Array.from({ length: CALLS }, (_, i) => [`ev-${i}`, 1]));
    expect(await checkStored(store, expected)).toEqual({ lost: [], duplicated: [], unexpected: [] });
    // Every call of the redelivery and of the retry was recognised as stored.
    expect(await counterValue(registry, 'modelwatch_ingest_duplicates_dropped_total')).toBeGreaterThanOrEqual(
      CALLS + CALLS / 2,
    );
  }, 240_000);
});
