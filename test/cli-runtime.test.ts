import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveRoles, type RoleSpec } from '../src/cli/index.js';
import { silentLogger, sleep } from '../src/common/index.js';
import type { RuntimeContext } from '../src/runtime/index.js';
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

describe('serveRoles', () => {
  const signal = 'SIGUSR2' as const;

  function sink(): { out: Writable; text: () => string } {
    let text = '';
    const out = new Writable({
      write(chunk: Buffer, _enc, cb) {
        text += chunk.toString();
        cb();
      },
    });
    return { out, text: () => text };
  }

  function role(name: string, events: string[], opts: { startDelay?: Promise<void>; fail?: boolean } = {}): RoleSpec {
    return {
      name,
      start: async (ctx: RuntimeContext) => {
        events.push(`start ${name}`);
        await opts.startDelay;
        if (opts.fail === true) throw new Error(`${name} failed`);
        expect(ctx.bus.kind).toBe('inprocess');
        return {
          name,
          urls: [`http://${name}.test`],
          stop: async () => {
            await sleep(5);
            events.push(`stop ${name}`);
          },
        };
      },
    };
  }

  const options = (out: Writable) => ({
    out,
    signals: [signal],
    runtime: { store, logger: silentLogger, defaultMetrics: false },
  });

  it('starts roles in reverse, prints their URLs, and stops them in order on a signal', async () => {
    const events: string[] = [];
    const { out, text } = sink();
    const done = serveRoles(
      loadConfig({ env: {} }),
      [role('intake', events), role('ingest', events), role('api', events)],
      options(out),
    );
    while (!text().includes('intake:')) await sleep(5);
    expect(text()).toBe('intake: http://intake.test\ningest: http://ingest.test\napi: http://api.test\n');
    process.emit(signal);
    expect(await done).toBe(0);
    expect(events).toEqual(['start api', 'start ingest', 'start intake', 'stop intake', 'stop ingest', 'stop api']);
    expect(process.listenerCount(signal)).toBe(0);
  });

  it('shuts down right after start-up when a signal arrives meanwhile', async () => {
    const events: string[] = [];
    const { out, text } = sink();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const done = serveRoles(
      loadConfig({ env: {} }),
      [role('intake', events), role('api', events, { startDelay: gate })],
      options(out),
    );
    while (!events.includes('start api')) await sleep(5);
    process.emit(signal);
    release();
    expect(await done).toBe(0);
    expect(events).toEqual(['start api', 'stop api']);
    expect(text()).toBe('');
  });

  it('stops the roles already started when one fails to start, and rethrows', async () => {
    const events: string[] = [];
    const { out } = sink();
    await expect(
      serveRoles(
        loadConfig({ env: {} }),
        [role('intake', events, { fail: true }), role('ingest', events), role('api', events)],
        options(out),
      ),
    ).rejects.toThrow('intake failed');
    expect(events).toEqual(['start api', 'start ingest', 'start intake', 'stop ingest', 'stop api']);
    expect(process.listenerCount(signal)).toBe(0);
    expect(await store.ping()).toBe(true);
  });

  it('never opens the store when no role uses it (the sidecar alone)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mw-nostore-'));
    const path = join(dir, 'chdb');
    const config = loadConfig({ env: { MODELWATCH_CLICKHOUSE_URL: `chdb:${path}` } });
    const { out } = sink();
    let storeError: unknown;
    const done = serveRoles(
      config,
      [
        {
          name: 'sidecar',
          usesStore: false,
          start: (ctx) => {
            try {
              void ctx.store.ping();
            } catch (err) {
              storeError = err;
            }
            return Promise.resolve({ name: 'sidecar', urls: ['http://sidecar.test'], stop: () => Promise.resolve() });
          },
        },
      ],
      { out, signals: [signal], runtime: { logger: silentLogger, defaultMetrics: false } },
    );
    await sleep(20);
    process.emit(signal);
    expect(await done).toBe(0);
    // Not opened, not migrated: the embedded store's directory was never created.
    expect(existsSync(path)).toBe(false);
    expect(storeError).toMatchObject({ code: 'internal' });
    expect(String((storeError as Error).message)).toContain('store.ping');
    rmSync(dir, { recursive: true, force: true });
  });
});
