import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/common/index.js';
import { loadConfig } from '../src/config/index.js';
import { createRuntime } from '../src/runtime/index.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { openTestStore } from './support/store.js';

let store: ClickHouseStore;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
});
afterAll(async () => cleanup());

describe('runtime', () => {
  it('uses the in-process bus when no Kafka brokers are configured', async () => {
    const config = loadConfig({ env: { MODELWATCH_KAFKA_TOPIC: 'rt.topic' } });
    const rt = await createRuntime(config, { store, logger: silentLogger });
    expect(rt.bus.kind).toBe('inprocess');
    expect(rt.bus.topic).toBe('rt.topic');
    expect(rt.config).toBe(config);
    await rt.close();
    await rt.close(); // idempotent
    // A store handed in is not closed by the runtime.
    expect(await store.ping()).toBe(true);
  });

  it('uses Kafka when brokers are configured', async () => {
    const config = loadConfig({ env: { MODELWATCH_KAFKA_BROKERS: '127.0.0.1:1', MODELWATCH_KAFKA_TOPIC: 'k.topic' } });
    const rt = await createRuntime(config, { store, logger: silentLogger });
    expect(rt.bus.kind).toBe('kafka');
    expect(rt.bus.topic).toBe('k.topic');
    await rt.close();
  });

  it('has its own registry with prefixed default metrics that promtool accepts by name', async () => {
    const a = await createRuntime(loadConfig({ env: {} }), { store, logger: silentLogger });
    const b = await createRuntime(loadConfig({ env: {} }), { store, logger: silentLogger });
    expect(a.metrics).not.toBe(b.metrics);
    const all = await a.metrics.getMetricsAsJSON();
    const names = all.map((m) => m.name);
    expect(names).toContain('modelwatch_process_cpu_user_seconds_total');
    expect(names).toContain('modelwatch_nodejs_active_handles');
    for (const n of names) expect(n.startsWith('modelwatch_')).toBe(true);
    // Gauges named *_total fail `promtool check metrics`; they are dropped.
    expect(all.filter((m) => String(m.type) !== 'counter' && m.name.endsWith('_total')).map((m) => m.name)).toEqual([]);
    const none = await createRuntime(loadConfig({ env: {} }), { store, logger: silentLogger, defaultMetrics: false });
    expect(await none.metrics.getMetricsAsJSON()).toEqual([]);
    await Promise.all([a.close(), b.close(), none.close()]);
  });
});
