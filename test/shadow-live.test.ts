// Live shadow end to end: production traffic (answers of the real ONNX model) published on a real bus —
// the in-process bus, where ingest and live shadow both receive every message, and Kafka (librdkafka mock
// cluster), where live shadow has its own consumer group — scored by configured candidates on the shadow
// pool; per-interval series land in chdb. Identical candidates agree 1; perturbed ones disagree at exactly
// the rate NumPy computed (fixtures).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus, KafkaBus, encodeCapture, type Bus } from '../src/bus/index.js';
import { silentLogger } from '../src/common/logger.js';
import { startIngest } from '../src/ingest/index.js';
import type { RuntimeContext } from '../src/runtime/context.js';
import { ShadowPool, buildLogisticRegression, buildMlp, startLiveShadow } from '../src/shadow/index.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { modelsFixture } from './fixtures/shadow/load.js';
import { counterValue, newRegistry, testConfig, waitFor } from './support/ingest.js';
import { startKafkaMock, type KafkaMock } from './support/kafka-mock.js';
import { productionCalls } from './support/shadow.js';
import { openTestStore } from './support/store.js';

const fx = modelsFixture();
const rows = fx.inputs.rows;
const N = rows.length;
const HOUR = 3_600_000;
// Calls are 1 s apart (≈ 260 calls): all inside one hour-long interval starting at T0.
const T0 = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let pool: ShadowPool;
let mock: KafkaMock;
let dir: string;

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  pool = new ShadowPool({ workers: 2 });
  mock = await startKafkaMock({ brokers: 1, topics: { 'live-shadow': 2 } });
  dir = mkdtempSync(join(tmpdir(), 'mw-live-shadow-'));
  writeFileSync(join(dir, 'lr.onnx'), buildLogisticRegression(fx.params.lr));
  writeFileSync(join(dir, 'lr-perturbed.onnx'), buildLogisticRegression(fx.params.lr_perturbed));
  writeFileSync(join(dir, 'mlp.onnx'), buildMlp(fx.params.mlp));
  writeFileSync(join(dir, 'mlp-perturbed.onnx'), buildMlp(fx.params.mlp_perturbed));
}, 120_000);

afterAll(async () => {
  await pool.close();
  await mock.stop();
  await cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function contextOf(bus: Bus, model: string): RuntimeContext {
  const config = testConfig({
    shadow: {
      modelDir: dir,
      intervalMs: HOUR,
      candidates: [
        { model, file: `${model}.onnx` },
        // An absolute path works too.
        { model, file: join(dir, `${model}-perturbed.onnx`) },
      ],
    },
  });
  return { config, store, bus, logger: silentLogger, metrics: newRegistry() };
}

interface SeriesRow {
  run_id: string;
  ts: string;
  series: string;
  value: number;
}

async function series(model: string): Promise<SeriesRow[]> {
  const out = await store.query<SeriesRow>(
    `SELECT run_id, toString(ts) AS ts, series, value FROM mw_metric_series
     WHERE model = {model:String} ORDER BY run_id, series`,
    { params: { model } },
  );
  return out.map((r) => ({ ...r, value: Number(r.value) }));
}

function expectSeries(got: SeriesRow[], model: 'lr' | 'mlp'): void {
  const by = (run: string, s: string): SeriesRow[] => got.filter((r) => r.run_id === run && r.series === s);
  const same = `shadow-live:${model}.onnx`;
  const pert = `shadow-live:${model}-perturbed.onnx`;
  // One value per candidate per series for the one interval, stamped at its start.
  for (const run of [same, pert]) {
    for (const s of ['shadow.agreement', 'shadow.disagreement', 'shadow.latency_p99']) {
      expect(by(run, s)).toHaveLength(1);
      expect(by(run, s)[0]?.ts).toBe(new Date(T0).toISOString().replace('T', ' ').replace('Z', ''));
    }
  }
  expect(by(same, 'shadow.agreement')[0]?.value).toBe(1);
  expect(by(same, 'shadow.disagreement')[0]?.value).toBe(0);
  const expected = fx.compare[model].disagreements / N;
  expect(expected).toBeGreaterThan(0);
  expect(by(pert, 'shadow.disagreement')[0]?.value).toBeCloseTo(expected, 12);
  expect(by(pert, 'shadow.agreement')[0]?.value).toBeCloseTo(1 - expected, 12);
  expect(by(pert, 'shadow.latency_p99')[0]?.value).toBeGreaterThan(0);
}

describe('live shadow', () => {
  it('in-process bus: ingest and live shadow both receive every call; series are stored per interval', async () => {
    const bus = new InProcessBus({ topic: 'live-inproc' });
    const ctx = contextOf(bus, 'lr');
    const { calls } = await productionCalls('lr', buildLogisticRegression(fx.params.lr), rows, T0);
    const shadow = await startLiveShadow(ctx, { pool });
    const ingest = await startIngest(ctx);
    await Promise.all([shadow.ready, ingest.ready]);
    for (let i = 0; i < calls.length; i += 25) await bus.publish(calls.slice(i, i + 25).map(encodeCapture));
    await waitFor(
      async () =>
        (await counterValue(ctx.metrics, 'modelwatch_shadow_rows_total', { model: 'lr', mode: 'live' })) === 2 * N,
      60_000,
      'live shadow rows',
    );
    await waitFor(() => bus.bufferedBytes === 0, 60_000, 'ingest drained');
    await ingest.stop();
    await shadow.stop();
    const [stored] = await store.query<{ n: number; calls: number }>(
      `SELECT count() AS n, uniqExact(event_id) AS calls FROM mw_predictions WHERE model = 'lr'`,
    );
    expect(Number(stored?.n)).toBe(N);
    expect(Number(stored?.calls)).toBe(calls.length);
    expectSeries(await series('lr'), 'lr');
    expect(
      await counterValue(ctx.metrics, 'modelwatch_shadow_agreement', {
        model: 'lr',
        candidate: 'lr.onnx',
        mode: 'live',
      }),
    ).toBe(1);
    expect(
      await counterValue(ctx.metrics, 'modelwatch_shadow_live_latency_p99_seconds', {
        model: 'lr',
        candidate: 'lr-perturbed.onnx',
      }),
    ).toBeGreaterThan(0);
  }, 120_000);

  it("Kafka: live shadow reads with its own consumer group and leaves ingest's group untouched", async () => {
    const bus = new KafkaBus({ brokers: mock.brokers, topic: 'live-shadow', groupId: 'live-ingest' });
    const ctx = contextOf(bus, 'mlp');
    const { calls } = await productionCalls('mlp', buildMlp(fx.params.mlp), rows, T0);
    await bus.publish(calls.map(encodeCapture));
    const shadow = await startLiveShadow(ctx, { pool, groupId: 'live-shadow-group' });
    await shadow.ready;
    await waitFor(
      async () =>
        (await counterValue(ctx.metrics, 'modelwatch_shadow_rows_total', { model: 'mlp', mode: 'live' })) === 2 * N,
      60_000,
      'live shadow rows (kafka)',
    );
    await shadow.stop();
    expectSeries(await series('mlp'), 'mlp');
    // The shadow group committed every message; ingest's group was never touched.
    const admin = new Kafka({ brokers: mock.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const [mine] = await admin.fetchOffsets({ groupId: 'live-shadow-group', topics: ['live-shadow'] });
      expect((mine?.partitions ?? []).reduce((n, p) => n + Number(p.offset), 0)).toBe(calls.length);
      const [theirs] = await admin.fetchOffsets({ groupId: 'live-ingest', topics: ['live-shadow'] });
      expect((theirs?.partitions ?? []).every((p) => Number(p.offset) < 0)).toBe(true);
    } finally {
      await admin.disconnect();
    }
    await bus.close();
  }, 120_000);
});
