// The Seldon bridge loses nothing on a crash. A bridge in a child process reads request halves whose
// responses come later, and is killed with SIGKILL while they wait. A second bridge in the same consumer
// groups reads them again, pairs them with the responses produced after the crash, and ingest (chdb,
// Kafka capture topic) stores every call exactly once: the pairs the first bridge had already published
// come again with the same event ids and are dropped. A control consumer on the auto-commit path shows
// that committing each handled batch would have skipped the waiting halves.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel, type Admin, type Producer } from 'kafkajs';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { KafkaBus, type BusConsumer } from '../src/bus/index.js';
import { silentLogger } from '../src/common/logger.js';
import { startIngest, type IngestRole } from '../src/ingest/index.js';
import { seldonEventId, startSeldonBridge, type SeldonBridge } from '../src/ingest/seldon.js';
import type { RecordPosition } from '../src/ingest/seldon-offsets.js';
import type { RuntimeContext } from '../src/runtime/context.js';
import { Tables, type ClickHouseStore } from '../src/store/index.js';
import { checkStored, counterValue, testConfig, waitFor, openStoreKeepingDuplicates } from './support/ingest.js';
import { startKafkaMock, type KafkaMock } from './support/kafka-mock.js';
import { selectRows } from './support/store.js';
import { classifierProbabilities, v2Types } from './support/v2-grpc-server.js';

vi.setConfig({ testTimeout: 180_000, hookTimeout: 120_000 });

const here = dirname(fileURLToPath(import.meta.url));
const PREFIX = 'seldon.default.model.iris';
const INPUTS = `${PREFIX}.inputs`;
const OUTPUTS = `${PREFIX}.outputs`;
const CAPTURE = 'crash.inference';
const GROUP = 'crash-seldon';
const SESSION_MS = 6_000;

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let mock: KafkaMock;
let admin: Admin;
let producer: Producer;
let ingest: IngestRole;
let ingestRegistry: Registry;
let captureBus: KafkaBus;
const children: ChildProcessWithoutNullStreams[] = [];
const bridges: SeldonBridge[] = [];

const rows = [
  [5.1, 3.5, 1.4, 0.2],
  [6.2, 2.9, 4.3, 1.3],
];
const request = (() => {
  const t = v2Types().request;
  return Buffer.from(
    t
      .encode(
        t.fromObject({
          model_name: 'iris',
          model_version: '3',
          inputs: [{ name: 'predict', datatype: 'FP32', shape: [2, 4], contents: { fp32_contents: rows.flat() } }],
        }),
      )
      .finish(),
  );
})();
const response = (() => {
  const t = v2Types().response;
  return Buffer.from(
    t
      .encode(
        t.fromObject({
          model_name: 'iris',
          model_version: '3',
          outputs: [
            {
              name: 'proba',
              datatype: 'FP32',
              shape: [2, 2],
              contents: { fp32_contents: rows.flatMap((r) => classifierProbabilities(r)) },
            },
          ],
        }),
      )
      .finish(),
  );
})();

/** Produces one half on an explicit partition; returns where it landed. */
async function half(side: 'inputs' | 'outputs', rid: string, partition: number): Promise<RecordPosition> {
  const topic = side === 'inputs' ? INPUTS : OUTPUTS;
  const [meta] = await producer.send({
    topic,
    messages: [
      {
        partition,
        key: `${partition}.iris.${rid}`,
        value: side === 'inputs' ? request : response,
        headers: { 'x-request-id': rid },
      },
    ],
  });
  if (meta === undefined) throw new Error('no produce metadata');
  return { topic, partition, offset: meta.baseOffset ?? '' };
}

async function committed(groupId: string, topic: string): Promise<Map<number, bigint>> {
  const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return new Map((t?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
}

async function highWatermarks(topic: string): Promise<Map<number, bigint>> {
  return new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, BigInt(p.high)]));
}

/** True once the bridge groups committed exactly `want` (partition → offset) on `topic`. */
async function committedIs(topic: string, want: Map<number, bigint>): Promise<boolean> {
  const got = await committed(`${GROUP}.${topic}`, topic);
  return [...want].every(([p, o]) => got.get(p) === o);
}

/** Ingest has handled and committed everything on the capture topic. */
async function ingestCaughtUp(): Promise<boolean> {
  const high = await highWatermarks(CAPTURE);
  const got = await committed('crash-ingest', CAPTURE);
  return [...high].every(([p, h]) => h === 0n || got.get(p) === h);
}

async function startChild(): Promise<{ child: ChildProcessWithoutNullStreams; pending: () => number }> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(here, 'support', 'seldon-bridge-child.ts'),
      JSON.stringify({
        brokers: mock.brokers,
        prefix: PREFIX,
        groupId: GROUP,
        captureTopic: CAPTURE,
        pairTtlMs: 600_000,
        commitIntervalMs: 100,
        sessionTimeoutMs: SESSION_MS,
      }),
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  children.push(child);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let pending = -1;
  let ready = false;
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line === 'ready') ready = true;
    const m = /^pending (\d+)$/.exec(line);
    if (m) pending = Number(m[1]);
  });
  await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`bridge child exited ${child.exitCode}: ${stderr}`);
      return ready;
    },
    90_000,
    'bridge child ready',
  );
  return { child, pending: () => pending };
}

async function startBridge(pairTtlMs: number): Promise<SeldonBridge> {
  const ctx: RuntimeContext = {
    config: testConfig({ kafka: { brokers: mock.brokers, seldonTopics: [PREFIX] } }),
    store: store,
    bus: captureBus,
    logger: silentLogger,
    metrics: new Registry(),
  };
  const bridge = await startSeldonBridge(ctx, {
    groupId: GROUP,
    pairTtlMs,
    sweepIntervalMs: 50,
    commitIntervalMs: 100,
    sessionTimeoutMs: SESSION_MS,
  });
  bridges.push(bridge);
  await bridge.ready;
  return bridge;
}

beforeAll(async () => {
  ({ store, cleanup } = await openStoreKeepingDuplicates());
  mock = await startKafkaMock({ topics: { [INPUTS]: 2, [OUTPUTS]: 2, [CAPTURE]: 2 } });
  const kafka = new Kafka({ brokers: mock.brokers, logLevel: logLevel.NOTHING });
  admin = kafka.admin();
  await admin.connect();
  producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  captureBus = new KafkaBus({ brokers: mock.brokers, topic: CAPTURE });
  ingestRegistry = new Registry();
  const ingestBus = new KafkaBus({ brokers: mock.brokers, topic: CAPTURE, groupId: 'crash-ingest' });
  ingest = await startIngest({
    config: testConfig({ kafka: { brokers: mock.brokers } }),
    store,
    bus: ingestBus,
    logger: silentLogger,
    metrics: ingestRegistry,
  });
  await ingest.ready;
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const b of bridges) await b.stop();
  await ingest?.stop();
  await captureBus?.close();
  await producer?.disconnect();
  await admin?.disconnect();
  await mock?.stop();
  await cleanup?.();
});

/** Event id → prediction rows, for calls whose request half sits at `pos`. */
const expected = new Map<string, number>();

describe('Seldon bridge crash (SIGKILL) on the librdkafka mock cluster', () => {
  it('stores every call exactly once after a crash with halves waiting, and never commits past them', async () => {
    const { child, pending } = await startChild();

    // Waiting halves first on every partition, then complete pairs behind them.
    const waitingRequests: Record<string, RecordPosition> = {};
    const waitingResponses: Record<string, RecordPosition> = {};
    for (let i = 0; i < 4; i++) waitingRequests[`req-first-${i}`] = await half('inputs', `req-first-${i}`, i % 2);
    for (let i = 0; i < 2; i++) waitingResponses[`res-first-${i}`] = await half('outputs', `res-first-${i}`, i % 2);
    const paired: string[] = [];
    for (let i = 0; i < 4; i++) {
      const rid = `paired-${i}`;
      expected.set(seldonEventId(await half('inputs', rid, i % 2)), 2);
      await half('outputs', rid, i % 2);
      paired.push(rid);
    }
    await waitFor(() => pending() === 6, 30_000, 'six halves waiting in the child bridge');
    // The pairs behind the waiting halves are stored: the bridge fetched past them.
    const pairedIds = [...expected.keys()];
    await waitFor(async () => (await checkStored(store, expected)).lost.length === 0, 30_000, 'pairs stored');

    // Each partition's commit is exactly its oldest waiting half's offset.
    const lowWater = (halves: RecordPosition[]): Map<number, bigint> => {
      const m = new Map<number, bigint>();
      for (const h of halves) {
        const o = BigInt(h.offset);
        if (!m.has(h.partition) || o < m.get(h.partition)!) m.set(h.partition, o);
      }
      return m;
    };
    const inputsLow = lowWater(Object.values(waitingRequests));
    const outputsLow = lowWater(Object.values(waitingResponses));
    expect(inputsLow.size).toBe(2);
    expect(outputsLow.size).toBe(2);
    await waitFor(() => committedIs(INPUTS, inputsLow), 15_000, 'inputs committed up to the waiting requests');
    await waitFor(() => committedIs(OUTPUTS, outputsLow), 15_000, 'outputs committed up to the waiting responses');

    // Negative control: the auto-commit path (commit each handled batch) commits to the high watermark,
    // past every waiting half, so a restart of that group would never read them again.
    const controlBus = new KafkaBus({ brokers: mock.brokers });
    const controls: BusConsumer[] = [];
    for (const topic of [INPUTS, OUTPUTS]) {
      controls.push(
        await controlBus.consume({ topic, groupId: `crash-control.${topic}`, handler: () => Promise.resolve() }),
      );
    }
    for (const topic of [INPUTS, OUTPUTS]) {
      const high = await highWatermarks(topic);
      await waitFor(
        async () => {
          const got = await committed(`crash-control.${topic}`, topic);
          return [...high].every(([p, h]) => got.get(p) === h);
        },
        30_000,
        `control group committed ${topic} to its high watermark`,
      );
    }
    for (const c of controls) await c.stop();
    await controlBus.close();
    const controlInputs = await committed(`crash-control.${INPUTS}`, INPUTS);
    for (const h of Object.values(waitingRequests)) {
      expect(controlInputs.get(h.partition)! > BigInt(h.offset)).toBe(true);
    }
    const bridgeInputs = await committed(`${GROUP}.${INPUTS}`, INPUTS);
    for (const h of Object.values(waitingRequests)) {
      expect(bridgeInputs.get(h.partition)! <= BigInt(h.offset)).toBe(true);
    }

    // Crash: no stop(), no flush, no commit.
    child.kill('SIGKILL');
    await new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
    // Nothing of the waiting halves reached the capture topic.
    await waitFor(ingestCaughtUp, 30_000, 'ingest caught up before the restart');
    expect((await checkStored(store, expected)).unexpected).toEqual([]);
    const capturesBefore = [...(await highWatermarks(CAPTURE)).values()].reduce((a, b) => a + b, 0n);

    // A new bridge in the same groups (after the dead member's session ends), then the other halves.
    const bridge = await startBridge(8_000);
    for (const [rid, pos] of Object.entries(waitingRequests)) {
      expected.set(seldonEventId(pos), 2);
      await half('outputs', rid, pos.partition);
    }
    for (const [rid, pos] of Object.entries(waitingResponses)) {
      expected.set(seldonEventId(await half('inputs', rid, pos.partition)), 2);
    }
    await waitFor(() => bridge.pending === 0, 30_000, 'every half paired in the new bridge');
    await waitFor(async () => (await checkStored(store, expected)).lost.length === 0, 30_000, 'every call stored');
    await waitFor(ingestCaughtUp, 30_000, 'ingest caught up after the restart');

    const report = await checkStored(store, expected);
    expect(report).toEqual({ lost: [], duplicated: [], unexpected: [] });
    const calls = await selectRows(store, {
      query: `SELECT request_id, count() AS n, min(status) AS status, max(error) AS error FROM ${Tables.requests} GROUP BY request_id ORDER BY request_id`,
    }).json<{ request_id: string; n: string; status: number; error: string }>();
    expect(calls.map((c) => c.request_id)).toEqual(
      [...paired, ...Object.keys(waitingRequests), ...Object.keys(waitingResponses)].sort(),
    );
    for (const c of calls) expect([c.request_id, Number(c.n), c.status, c.error]).toEqual([c.request_id, 1, 200, '']);
    // The pairs published before the crash were read again and published again (the commit was held
    // behind the waiting halves), and ingest dropped them by their event ids.
    const capturesAfter = [...(await highWatermarks(CAPTURE)).values()].reduce((a, b) => a + b, 0n);
    expect(capturesAfter - capturesBefore).toBeGreaterThanOrEqual(BigInt(6 + paired.length));
    expect(await counterValue(ingestRegistry, 'modelwatch_ingest_duplicates_dropped_total')).toBeGreaterThanOrEqual(
      pairedIds.length,
    );
    // Everything paired and published: the commits reach the high watermarks.
    await waitFor(async () => committedIs(OUTPUTS, await highWatermarks(OUTPUTS)), 15_000, 'outputs fully committed');
    await waitFor(async () => committedIs(INPUTS, await highWatermarks(INPUTS)), 15_000, 'inputs fully committed');
  });

  it('holds the commit behind an orphan until the pair timeout flushes it, then releases it', async () => {
    const bridge = bridges[0]!;
    const lonely = await half('inputs', 'lonely', 0);
    // An orphan is a failed call (its response is missing): stored as a request, with no prediction rows.
    expected.set(seldonEventId(lonely), 0);
    await waitFor(() => bridge.pending === 1, 15_000, 'the lonely input waiting');
    // Waiting: the commit stays on it for several commit rounds.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(bridge.pending).toBe(1);
    expect((await committed(`${GROUP}.${INPUTS}`, INPUTS)).get(0)).toBe(BigInt(lonely.offset));
    // Flushed after the TTL as `response missing`: stored once, and the commit moves past it.
    await waitFor(() => bridge.pending === 0, 30_000, 'orphan flushed');
    await waitFor(
      () => committedIs(INPUTS, new Map([[0, BigInt(lonely.offset) + 1n]])),
      15_000,
      'commit past the flushed orphan',
    );
    await waitFor(ingestCaughtUp, 30_000, 'ingest caught up');
    expect(await checkStored(store, expected)).toEqual({ lost: [], duplicated: [], unexpected: [] });
    const [row] = await selectRows(store, {
      query: `SELECT status, error FROM ${Tables.requests} WHERE request_id = 'lonely'`,
    }).json<{ status: number; error: string }>();
    expect(row).toEqual({ status: 0, error: 'response missing' });
  });

  it('stop() commits up to the waiting halves without publishing them; the next bridge pairs them', async () => {
    const first = bridges[0]!;
    const waiting = await half('inputs', 'across-restart', 1);
    expected.set(seldonEventId(waiting), 2);
    await waitFor(() => first.pending === 1, 15_000, 'input waiting');
    await first.stop();
    expect(await committedIs(INPUTS, new Map([[1, BigInt(waiting.offset)]]))).toBe(true);
    await waitFor(ingestCaughtUp, 30_000, 'ingest caught up');
    expect((await checkStored(store, expected)).lost).toContain(seldonEventId(waiting));

    const next = await startBridge(8_000);
    await half('outputs', 'across-restart', 1);
    await waitFor(() => next.pending === 0, 30_000, 'paired after the restart');
    await waitFor(async () => (await checkStored(store, expected)).lost.length === 0, 30_000, 'stored');
    await waitFor(ingestCaughtUp, 30_000, 'ingest caught up');
    expect(await checkStored(store, expected)).toEqual({ lost: [], duplicated: [], unexpected: [] });
    const [row] = await selectRows(store, {
      query: `SELECT status, error FROM ${Tables.requests} WHERE request_id = 'across-restart'`,
    }).json<{ status: number; error: string }>();
    expect(row).toEqual({ status: 200, error: '' });
  });
});
