import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { encodeCapture, InProcessBus, KafkaBus, type Bus, type BusMessage } from '../src/bus/index.js';
import { silentLogger } from '../src/common/index.js';
import { startIngest } from '../src/ingest/index.js';
import type { RuntimeContext } from '../src/runtime/context.js';
import { Tables, type ClickHouseStore } from '../src/store/index.js';
import {
  checkStored,
  counterValue,
  makeCall,
  newRegistry,
  poisonBody,
  poisonEnvelope,
  quarantined,
  testConfig,
  waitFor,
  type Expected,
} from './support/ingest.js';
import { startKafkaMock, type KafkaMock } from './support/kafka-mock.js';
import { openTestStore } from './support/store.js';
import { selectRows } from './support/store.js';

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let mock: KafkaMock;

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  mock = await startKafkaMock({ brokers: 1, topics: { 'e2e.inference': 2 } });
});

afterAll(async () => {
  await mock.stop();
  await cleanup();
});

beforeEach(async () => {
  for (const t of [Tables.predictions, Tables.requests, Tables.quarantine, Tables.labels]) {
    await store.command(`TRUNCATE TABLE ${t}`);
    // ReplacingMergeTree would collapse duplicates on merge and hide them from the checker.
    await store.command(`SYSTEM STOP MERGES ${t}`);
  }
});

const N = 20;

/** The scenario both buses run: N good records, an exact duplicate, a poison envelope and a poison body. */
function firstWave(): BusMessage[] {
  const msgs = Array.from({ length: N }, (_, i) => encodeCapture(makeCall(i)));
  // Exact duplicate: the very same record delivered twice.
  msgs.splice(4, 0, encodeCapture(makeCall(3)));
  msgs.push(poisonEnvelope(900), poisonBody(901));
  return msgs;
}

function expected(): Expected {
  const e: Expected = new Map(Array.from({ length: N }, (_, i) => [`ev-${i}`, 2]));
  // The poison body still gets its request row (rows = 0, error set), no predictions.
  e.set('ev-901', 0);
  return e;
}

async function runScenario(bus: Bus, producer: Bus): Promise<void> {
  const registry = newRegistry();
  const ctx: RuntimeContext = { config: testConfig(), store, bus, logger: silentLogger, metrics: registry };
  const role = await startIngest(ctx);
  await role.ready;
  await producer.publish(firstWave());
  const rowsInserted = () => counterValue(registry, 'modelwatch_ingest_rows_inserted_total');
  await waitFor(async () => (await rowsInserted()) >= 2 * N, 60_000, 'first wave stored');
  // Producer-retry duplicate: the same event republished, landing at a new offset in a later batch.
  await producer.publish([encodeCapture(makeCall(5))]);
  await waitFor(
    async () => (await counterValue(registry, 'modelwatch_ingest_records_consumed_total')) >= N + 4,
    60_000,
    'retry duplicate consumed',
  );
  await role.stop();

  expect(await checkStored(store, expected())).toEqual({ lost: [], duplicated: [], unexpected: [] });
  const q = await quarantined(store);
  expect(q.map((r) => [r.event_id, r.code, r.reason.split(':')[0]])).toEqual(
    expect.arrayContaining([
      ['ev-900', 'decode_invalid', 'envelope'],
      ['ev-901', 'decode_invalid', 'body'],
    ]),
  );
  expect(q).toHaveLength(2);
  expect(q.find((r) => r.event_id === 'ev-900')?.origin).toMatch(/^[\w.-]+\/\d+\/\d+$/);
  expect(Buffer.from(q.find((r) => r.event_id === 'ev-901')?.payload ?? '', 'base64').length).toBeGreaterThan(4);
  const bad = await selectRows(store, {
    query: `SELECT rows, error FROM ${Tables.requests} WHERE event_id = 'ev-901'`,
    format: 'JSONEachRow',
  }).json<{ rows: number; error: string }>();
  expect(bad).toEqual([{ rows: 0, error: expect.stringContaining('decode_invalid') as string }]);

  expect(await rowsInserted()).toBe(2 * N);
  expect(await counterValue(registry, 'modelwatch_ingest_duplicates_dropped_total')).toBe(2);
  expect(await counterValue(registry, 'modelwatch_ingest_records_quarantined_total', { reason: 'envelope' })).toBe(1);
  expect(await counterValue(registry, 'modelwatch_ingest_records_quarantined_total', { reason: 'body' })).toBe(1);
  expect(await counterValue(registry, 'modelwatch_ingest_records_consumed_total')).toBe(N + 4);
  const lag = await registry.getSingleMetric('modelwatch_ingest_lag_records')?.get();
  expect(lag?.values[0]?.value).toBe(0);
}

describe('ingest end to end', () => {
  it('in-process bus: exactly the distinct rows, duplicates dropped, poison quarantined', async () => {
    const bus = new InProcessBus({ topic: 'e2e.inference' });
    await runScenario(bus, bus);
    await bus.close();
  });

  it('Kafka bus (librdkafka mock): exactly the distinct rows, duplicates dropped, poison quarantined', async () => {
    const consumerBus = new KafkaBus({ brokers: mock.brokers, topic: 'e2e.inference', groupId: 'e2e-ingest' });
    const producerBus = new KafkaBus({ brokers: mock.brokers, topic: 'e2e.inference' });
    await runScenario(consumerBus, producerBus);
    await Promise.all([consumerBus.close(), producerBus.close()]);
  }, 120_000);

  it('negative control: the checker reports a duplicate let through and a lost record', async () => {
    const call = makeCall(1);
    const row = {
      model: 'm',
      version: '1',
      ts: call.startedAt,
      event_id: 'ev-1',
      request_id: 'req-1',
      row: 0,
      features_num: { x_0: 1 },
      features_cat: {},
      outputs_num: {},
      outputs_cat: {},
    };
    const request = {
      model: 'm',
      version: '1',
      ts: call.startedAt,
      event_id: 'ev-1',
      request_id: 'req-1',
      source: 'rest',
      route: '',
      status: 200,
      latency_ms: 1,
      request_bytes: 1,
      response_bytes: 1,
      request_truncated: false,
      response_truncated: false,
      rows: 1,
      error: '',
    };
    await store.insertRequests([request]);
    await store.insertPredictions([row]);
    const clean = await checkStored(store, new Map([['ev-1', 1]]));
    expect(clean).toEqual({ lost: [], duplicated: [], unexpected: [] });
    // Bypass every dedupe: the same row inserted again in a new block. (A block identical to an earlier
    // one would be dropped by ClickHouse's block-checksum dedup on tables with a dedup window, so the
    // block also carries an unrelated row.)
    await store.insertPredictions([row, { ...row, event_id: 'ev-3', request_id: 'req-3' }]);
    const dirty = await checkStored(
      store,
      new Map([
        ['ev-1', 1],
        ['ev-2', 1],
      ]),
    );
    expect(dirty.duplicated).toEqual(['predictions:ev-1/0']);
    expect(dirty.unexpected).toEqual(['predictions:ev-3/0']);
    expect(dirty.lost).toEqual(['ev-2', 'ev-2/0']);
  });
});
