import { Kafka, logLevel, type Admin } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCapture, KafkaBus } from '../src/bus/index.js';
import { createLogger, silentLogger } from '../src/common/index.js';
import { startIngest } from '../src/ingest/index.js';
import type { RuntimeContext } from '../src/runtime/context.js';
import { Tables, type ClickHouseStore } from '../src/store/index.js';
import {
  checkStored,
  counterValue,
  FlakyStore,
  makeCall,
  newRegistry,
  testConfig,
  waitFor,
  openStoreKeepingDuplicates,
} from './support/ingest.js';
import { startKafkaMock, type KafkaMock } from './support/kafka-mock.js';
import { selectRows } from './support/store.js';

const TOPIC = 'fault.inference';
const GROUP = 'fault-ingest';
const RECORDS = 120;
const PER_PUBLISH = 10;

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let mock: KafkaMock;
let admin: Admin;

beforeAll(async () => {
  ({ store, cleanup } = await openStoreKeepingDuplicates());
  mock = await startKafkaMock({ brokers: 1, topics: { [TOPIC]: 2 } });
  admin = new Kafka({ brokers: mock.brokers, logLevel: logLevel.NOTHING, retry: { retries: 2 } }).admin();
  await admin.connect();
});

afterAll(async () => {
  await admin.disconnect();
  await mock.stop();
  await cleanup();
});

async function committedOffsets(): Promise<Map<number, number>> {
  const [t] = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] });
  return new Map((t?.partitions ?? []).map((p) => [p.partition, Math.max(0, Number(p.offset))]));
}

async function storedEventIds(): Promise<Set<string>> {
  const rs = selectRows(store, { query: `SELECT DISTINCT event_id FROM ${Tables.requests}`, format: 'JSONEachRow' });
  return new Set((await rs.json<{ event_id: string }>()).map((r) => r.event_id));
}

/** Every record on the topic: partition → offset → event id, read by a separate consumer group. */
async function auditTopic(total: number): Promise<Map<number, Map<number, string>>> {
  const bus = new KafkaBus({ brokers: mock.brokers, topic: TOPIC, groupId: 'fault-audit' });
  const out = new Map<number, Map<number, string>>();
  let n = 0;
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  const consumer = await bus.consume({
    handler: (b) => {
      const p = out.get(b.partition) ?? new Map<number, string>();
      out.set(b.partition, p);
      for (const m of b.messages) {
        if (!p.has(Number(m.offset))) n++;
        p.set(Number(m.offset), m.headers.ce_id ?? '');
      }
      if (n >= total) done();
      return Promise.resolve();
    },
  });
  await all;
  await consumer.stop();
  await bus.close();
  return out;
}

describe('ingest under faults (store outage + broker down/up, Kafka mock)', () => {
  it('loses nothing, duplicates nothing, and never commits past stored data', async () => {
    const flaky = new FlakyStore(store, 6);
    const registry = newRegistry();
    const bus = new KafkaBus({
      brokers: mock.brokers,
      topic: TOPIC,
      groupId: GROUP,
      sessionTimeoutMs: 10_000,
      heartbeatIntervalMs: 1_000,
      connectionTimeoutMs: 500,
      requestTimeoutMs: 2_000,
    });
    const producer = new KafkaBus({
      brokers: mock.brokers,
      topic: TOPIC,
      publishTimeoutMs: 3_000,
      requestTimeoutMs: 1_000,
      connectionTimeoutMs: 500,
    });
    // MW_TEST_LOG=1 shows ingest's retry and heartbeat warnings while debugging.
    const logger = process.env.MW_TEST_LOG ? createLogger('info') : silentLogger;
    const ctx: RuntimeContext = { config: testConfig(), store: flaky, bus, logger, metrics: registry };
    const role = await startIngest(ctx);
    await role.ready;

    // Sample (committed offsets, then stored ids) all along: stored data only grows, so a commit seen
    // at time t must be covered by what is stored at any later time.
    const samples: { committed: Map<number, number>; stored: Set<string> }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        try {
          const committed = await committedOffsets();
          samples.push({ committed, stored: await storedEventIds() });
        } catch {
          // The broker is down: no sample this round.
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    let publishFailures = 0;
    for (let start = 0; start < RECORDS; start += PER_PUBLISH) {
      const msgs = Array.from({ length: PER_PUBLISH }, (_, k) => encodeCapture(makeCall(start + k)));
      if (start === 40) await mock.down(1);
      // A second store outage, after the broker came back; added to what is left of the first one.
      if (start === 80) flaky.failInserts += 5;
      for (;;) {
        try {
          await producer.publish(msgs);
          break;
        } catch {
          // While the broker is down publish rejects within its deadline; bring it back and retry
          // (a retry may duplicate records at new offsets, which ingest must absorb).
          publishFailures++;
          await mock.up(1);
        }
      }
    }
    expect(publishFailures).toBeGreaterThan(0);

    const highWatermarks = async (): Promise<Map<number, number>> =>
      new Map((await admin.fetchTopicOffsets(TOPIC)).map((p) => [p.partition, Number(p.high)]));
    // A publish that timed out may still land later (the producer-retry duplicate): compare with the
    // high watermarks as they are at each check, not as they were when the loop ended.
    let high = new Map<number, number>();
    await waitFor(
      async () => {
        try {
          high = await highWatermarks();
          const c = await committedOffsets();
          return [...high].every(([p, h]) => c.get(p) === h) && (await storedEventIds()).size === RECORDS;
        } catch {
          return false;
        }
      },
      120_000,
      'every offset committed',
    );
    sampling = false;
    await sampler;
    await role.stop();

    const expected = new Map(Array.from({ length: RECORDS }, (_, i) => [`ev-${i}`, 2]));
    expect(await checkStored(store, expected)).toEqual({ lost: [], duplicated: [], unexpected: [] });
    expect(flaky.failures).toBe(11);
    // Each injected failure is retried, unless it hit while the consumer was being stopped/rebalanced.
    expect(await counterValue(registry, 'modelwatch_ingest_insert_retries_total')).toBeGreaterThanOrEqual(1);
    expect(await counterValue(registry, 'modelwatch_ingest_rows_inserted_total')).toBe(2 * RECORDS);

    const total = [...high.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThanOrEqual(RECORDS);
    const topic = await auditTopic(total);
    let checkedOffsets = 0;
    for (const s of samples) {
      for (const [partition, committed] of s.committed) {
        for (let offset = 0; offset < committed; offset++) {
          const ev = topic.get(partition)?.get(offset);
          expect(ev, `partition ${partition} offset ${offset} committed but not on the topic`).toBeDefined();
          expect(s.stored.has(ev ?? ''), `${ev} at ${partition}/${offset} committed before it was stored`).toBe(true);
          checkedOffsets++;
        }
      }
    }
    // The check is not vacuous: commits were observed mid-stream, not only at the end.
    const midStream = samples.filter((s) => [...s.committed.values()].reduce((a, b) => a + b, 0) < total);
    expect(midStream.some((s) => [...s.committed.values()].some((c) => c > 0))).toBe(true);
    expect(checkedOffsets).toBeGreaterThan(total);
    await Promise.all([bus.close(), producer.close()]);
  }, 240_000);
});
