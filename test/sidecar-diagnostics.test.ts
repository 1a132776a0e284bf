// The sidecar's diagnostics (event-loop delay, GC pauses, CPU) report what the process really did: a
// loop blocked for 150 ms shows as ≥ 100 ms of event-loop delay, churned garbage as young-generation
// collections, a busy loop as CPU time; and `startSidecar` logs them when asked to.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../src/bus/index.js';
import { ModelwatchError } from '../src/common/errors.js';
import type { Logger } from '../src/common/logger.js';
import {
  DIAGNOSTICS_ENV,
  LoopDiagnostics,
  diagnosticsIntervalFromEnv,
  startSidecar,
  type DiagnosticsReading,
} from '../src/sidecar/index.js';
import type { Store } from '../src/store/index.js';
import { waitFor } from './support/ingest.js';
import { sidecarConfig, sidecarContext } from './support/sidecar.js';
import { startV2Server, type TestV2Server } from './support/v2-server.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Keeps the thread busy (the event loop cannot run) for `ms`. */
function blockFor(ms: number): void {
  const until = performance.now() + ms;
  let x = 0;
  while (performance.now() < until) x += Math.sqrt(x + 1);
  if (x < 0) throw new Error('unreachable');
}

const noStore = new Proxy({} as Store, {
  get(_t, p) {
    if (p === 'then') return undefined;
    throw new Error(`the sidecar used the store (${String(p)})`);
  },
});

describe('LoopDiagnostics', () => {
  it('reports a blocked event loop as delay, and starts a new interval at each reading', async () => {
    const diag = new LoopDiagnostics({ resolutionMs: 5 });
    try {
      await sleep(50);
      let blockCpuUs = 0;
      setTimeout(() => {
        const c0 = process.cpuUsage();
        blockFor(150);
        const c = process.cpuUsage(c0);
        blockCpuUs = c.user + c.system;
      }, 10);
      await sleep(250);
      const blocked = diag.read();
      expect(blocked.eldMaxMs).toBeGreaterThanOrEqual(100);
      expect(blocked.eldP99Ms).toBeGreaterThanOrEqual(blocked.eldP50Ms);
      expect(blocked.eldMaxMs).toBeGreaterThanOrEqual(blocked.eldP99Ms);
      expect(blocked.intervalMs).toBeGreaterThanOrEqual(250);
      // The busy loop's CPU time is inside the interval's.
      expect(blockCpuUs).toBeGreaterThan(0);
      expect(blocked.cpuUserUs + blocked.cpuSystemUs).toBeGreaterThanOrEqual(blockCpuUs);
      await sleep(120);
      const quiet = diag.read();
      expect(quiet.intervalMs).toBeLessThan(blocked.intervalMs);
      expect(quiet.eldMaxMs).toBeLessThan(blocked.eldMaxMs);
    } finally {
      diag.stop();
    }
  });

  it('counts the young-generation collections that churned garbage causes, with their pauses', async () => {
    const diag = new LoopDiagnostics();
    try {
      diag.read();
      let keep = 0;
      for (let round = 0; round < 20; round++) {
        for (let i = 0; i < 20_000; i++) keep += { a: i, b: [i, i + 1], c: `x${i}` }.b.length;
        await sleep(1);
      }
      expect(keep).toBe(20 * 20_000 * 2);
      // GC performance entries are delivered asynchronously.
      await sleep(50);
      const r: DiagnosticsReading = diag.read();
      expect(r.gcMinor).toBeGreaterThanOrEqual(1);
      expect(r.gcCount).toBeGreaterThanOrEqual(r.gcMinor + r.gcMajor);
      expect(r.gcTotalMs).toBeGreaterThan(0);
      expect(r.gcMaxMs).toBeLessThanOrEqual(r.gcTotalMs);
      expect(r.gcMinorMaxMs).toBeLessThanOrEqual(r.gcMaxMs);
      expect(r.rssMb).toBeGreaterThan(0);
      const next = diag.read();
      expect(next.gcCount).toBeLessThan(r.gcCount);
    } finally {
      diag.stop();
    }
  });

  it('rejects a resolution that is not a positive integer', () => {
    expect(() => new LoopDiagnostics({ resolutionMs: 0 })).toThrow(RangeError);
    expect(() => new LoopDiagnostics({ resolutionMs: 2.5 })).toThrow(/resolutionMs/);
  });

  it(`reads its interval from ${DIAGNOSTICS_ENV}, off when unset or not a positive integer`, () => {
    expect(diagnosticsIntervalFromEnv({})).toBe(0);
    expect(diagnosticsIntervalFromEnv({ [DIAGNOSTICS_ENV]: '' })).toBe(0);
    expect(diagnosticsIntervalFromEnv({ [DIAGNOSTICS_ENV]: '500' })).toBe(500);
    expect(diagnosticsIntervalFromEnv({ [DIAGNOSTICS_ENV]: '-5' })).toBe(0);
    expect(diagnosticsIntervalFromEnv({ [DIAGNOSTICS_ENV]: 'soon' })).toBe(0);
  });
});

describe('the sidecar diagnostics log', () => {
  let upstream: TestV2Server;
  let bus: InProcessBus;
  const lines: { msg: string; fields: Record<string, unknown> }[] = [];
  const logger: Logger = {
    debug() {},
    info: (msg, fields = {}) => lines.push({ msg, fields }),
    warn: (msg, fields = {}) => lines.push({ msg, fields }),
    error: (msg, fields = {}) => lines.push({ msg, fields }),
  };

  beforeAll(async () => {
    upstream = await startV2Server();
    bus = new InProcessBus();
  });

  afterAll(async () => {
    await bus.close();
    await upstream.stop();
  });

  it('logs the event-loop delay the sidecar process really had, and a last line at stop', async () => {
    const config = sidecarConfig({ sidecar: { upstream: upstream.url } });
    const ctx = { ...sidecarContext(config, bus, noStore), logger };
    const sidecar = await startSidecar(ctx, { diagnosticsIntervalMs: 100 });
    try {
      const res = await fetch(`${sidecar.url}/v2/models/classifier/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }),
      });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      blockFor(200);
      await waitFor(
        () => lines.some((l) => l.msg === 'diagnostics' && Number(l.fields.eldMaxMs) >= 150),
        30_000,
        'a diagnostics line showing the blocked loop',
      );
    } finally {
      const before = lines.filter((l) => l.msg === 'diagnostics').length;
      await sidecar.stop();
      expect(lines.filter((l) => l.msg === 'diagnostics').length).toBe(before + 1);
    }
    const d = lines.find((l) => l.msg === 'diagnostics')?.fields as unknown as DiagnosticsReading;
    for (const k of ['intervalMs', 'eldP50Ms', 'eldP99Ms', 'eldMaxMs', 'gcCount', 'gcTotalMs', 'cpuUserUs', 'rssMb']) {
      expect(typeof (d as unknown as Record<string, unknown>)[k]).toBe('number');
    }
  });

  it('rejects a negative or fractional diagnostics interval with config_invalid', async () => {
    const config = sidecarConfig({ sidecar: { upstream: upstream.url } });
    for (const bad of [-1, 1.5]) {
      const err = await startSidecar(sidecarContext(config, bus, noStore), { diagnosticsIntervalMs: bad }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ModelwatchError);
      expect((err as ModelwatchError).code).toBe('config_invalid');
      expect((err as ModelwatchError).message).toMatch(/diagnosticsIntervalMs/);
    }
  });
});
