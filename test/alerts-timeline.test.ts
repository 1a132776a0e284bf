import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startAlerting, type AlertmanagerWebhookBody, type RunningAlerting } from '../src/alerts/index.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { apiTestContext } from './support/api.js';
import { TestClock, insertDriftRun, insertSeries } from './support/alerts-engine.js';
import { startHttpReceiver, type HttpReceiver } from './support/alerts-receivers.js';
import { openTestStore } from './support/store.js';

// Timeline of the alert lifecycle and of Alertmanager's grouping semantics, with a controllable clock,
// stored results in embedded ClickHouse and a real webhook receiver on loopback.

let store: ClickHouseStore;
let cleanupStore: () => Promise<void>;
let hook: HttpReceiver;
const running: RunningAlerting[] = [];

const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);
const RUN = 60_000; // detect.intervalMs
const WAIT = 1_000; // groupWaitMs
const INTERVAL = 5_000; // groupIntervalMs
const REPEAT = 600_000; // repeatIntervalMs

beforeAll(async () => {
  ({ store, cleanup: cleanupStore } = await openTestStore());
  hook = await startHttpReceiver();
});
afterAll(async () => {
  await hook.close();
  await cleanupStore();
});
beforeEach(async () => {
  hook.requests.length = 0;
  for (const t of [
    'mw_drift_results',
    'mw_metric_series',
    'mw_alerts',
    'mw_notifications',
    'mw_silences',
    'mw_alert_lease',
  ]) {
    await store.command(`TRUNCATE TABLE ${t}`);
  }
});
afterEach(async () => {
  for (const r of running.splice(0)) await r.stop();
});

async function evaluator(clock: TestClock, overrides: Record<string, unknown> = {}): Promise<RunningAlerting> {
  const ctx = apiTestContext(store, {
    'detect.intervalMs': RUN,
    'alerts.webhookUrls': [hook.url],
    'alerts.outboundAllow': ['127.0.0.1'],
    'alerts.groupWaitMs': WAIT,
    'alerts.groupIntervalMs': INTERVAL,
    'alerts.repeatIntervalMs': REPEAT,
    'alerts.flapWindowMs': 30 * RUN,
    ...overrides,
  });
  const a = await startAlerting(ctx, {
    clock: clock.now,
    timers: false,
    leaseSettleMs: 0,
    delivery: { attemptTimeoutMs: 2000, initialBackoffMs: 20, jitter: false },
  });
  running.push(a);
  return a;
}

/** Webhook bodies received, in order. */
function bodies(): AlertmanagerWebhookBody[] {
  return hook.requests.map((r) => JSON.parse(r.body) as AlertmanagerWebhookBody);
}

async function cycle(a: RunningAlerting) {
  const r = await a.runOnce();
  await a.delivery.idle(5000);
  return r;
}

const DRIFTED = {
  a: { score: 0.5, drifted: true },
  b: { score: 0.4, drifted: true },
  c: { score: 0.01, drifted: false },
};
const NORMAL = {
  a: { score: 0.01, drifted: false },
  b: { score: 0.02, drifted: false },
  c: { score: 0.01, drifted: false },
};

async function stateOf(id: string): Promise<string | undefined> {
  const rows = await store.query<{ state: string }>(`SELECT state FROM mw_alerts FINAL WHERE id = {id:String}`, {
    params: { id },
  });
  return rows[0]?.state;
}

describe('alert lifecycle (for = 2 consecutive detection runs)', () => {
  it('goes pending after one run and fires only after the second; notifies once after group wait', async () => {
    const clock = new TestClock(T0);
    const a = await evaluator(clock);
    await insertDriftRun(store, { model: 'fraud', ts: clock.ms, features: DRIFTED });
    let r = await cycle(a);
    expect(r.leader).toBe(true);
    const ds = [...a.book.active.values()].find((x) => x.rule === 'dataset_drift');
    expect(ds?.state).toBe('pending');
    expect(await stateOf(ds?.id ?? '')).toBe('pending');
    clock.advance(WAIT * 2);
    await cycle(a);
    expect(hook.requests).toHaveLength(0); // pending alerts are never notified

    clock.advance(RUN);
    await insertDriftRun(store, { model: 'fraud', ts: clock.ms, features: DRIFTED });
    r = await cycle(a);
    expect(
      r.changed
        .filter((c) => c.state === 'firing')
        .map((c) => c.rule)
        .sort(),
    ).toEqual(['dataset_drift', 'feature_drift', 'feature_drift']);
    expect(hook.requests).toHaveLength(0); // group wait
    clock.advance(WAIT - 1);
    await cycle(a);
    expect(hook.requests).toHaveLength(0);
    clock.advance(1);
    await cycle(a);
    expect(hook.requests).toHaveLength(1);
    const [body] = bodies();
    expect(body?.status).toBe('firing');
    expect(body?.groupLabels).toEqual({ model: 'fraud' });
    expect(body?.alerts.map((x) => x.labels['feature'] ?? '').sort()).toEqual(['', 'a', 'b']);
    const dataset = body?.alerts.find((x) => x.labels['alertname'] === 'dataset_drift');
    expect(dataset?.evidence?.topFeatures?.map((f) => f.feature)).toEqual(['a', 'b']);
    expect(dataset?.evidence?.value).toBeCloseTo(2 / 3);
    expect(dataset?.evidence?.reference?.id).toBe('ref-1');
    // Nothing more while unchanged, inside the repeat interval.
    clock.advance(INTERVAL * 3);
    await cycle(a);
    expect(hook.requests).toHaveLength(1);
  });

  it('a condition that clears inside `for` never fires', async () => {
    const clock = new TestClock(T0);
    const a = await evaluator(clock);
    await insertDriftRun(store, { model: 'credit', ts: clock.ms, features: DRIFTED });
    await cycle(a);
    const ids = [...a.book.active.values()].map((x) => x.id);
    expect(ids.length).toBe(3);
    clock.advance(RUN);
    await insertDriftRun(store, { model: 'credit', ts: clock.ms, features: NORMAL });
    await cycle(a);
    expect(a.book.active.size).toBe(0);
    for (const id of ids) expect(await stateOf(id)).toBe('inactive');
    clock.advance(WAIT * 10);
    await cycle(a);
    expect(hook.requests).toHaveLength(0);
  });
});

describe('grouping (Alertmanager semantics)', () => {
  it('group interval batches a new alert into the group; repeat interval re-sends an unchanged group', async () => {
    const clock = new TestClock(T0);
    const a = await evaluator(clock);
    const err = (v: number) => ({ series: 'traffic.error_rate', value: v });
    await insertSeries(store, { model: 'm1', ts: clock.ms, values: [err(0.2)] });
    clock.advance(RUN);
    await insertSeries(store, { model: 'm1', ts: clock.ms, values: [err(0.3)] });
    await cycle(a);
    clock.advance(WAIT);
    await cycle(a);
    expect(hook.requests).toHaveLength(1);
    const sentAt = clock.ms;
    // A second alert of the same model joins the group: sent at the group interval, not before.
    await insertSeries(store, {
      model: 'm1',
      ts: clock.ms - RUN,
      values: [{ series: 'quality.missing_rate', feature: 'age', value: 0.5 }],
    });
    await insertSeries(store, {
      model: 'm1',
      ts: clock.ms,
      values: [{ series: 'quality.missing_rate', feature: 'age', value: 0.6 }],
    });
    clock.advance(INTERVAL - 1);
    await cycle(a);
    expect(hook.requests).toHaveLength(1);
    clock.ms = sentAt + INTERVAL;
    await cycle(a);
    expect(hook.requests).toHaveLength(2);
    expect(
      bodies()[1]
        ?.alerts.map((x) => x.labels['alertname'])
        .sort(),
    ).toEqual(['data_quality', 'error_rate']);
    // Unchanged: nothing at later group intervals, then a repeat after repeatIntervalMs.
    for (let i = 0; i < 5; i++) {
      clock.advance(INTERVAL);
      await cycle(a);
    }
    expect(hook.requests).toHaveLength(2);
    clock.ms = sentAt + INTERVAL + REPEAT;
    await cycle(a);
    expect(hook.requests).toHaveLength(3);
    expect(bodies()[2]?.alerts).toHaveLength(2);
  });

  it('a resolve inside the group wait sends nothing', async () => {
    const clock = new TestClock(T0);
    const a = await evaluator(clock);
    await insertDriftRun(store, { model: 'quick', ts: clock.ms - RUN, features: DRIFTED });
    await insertDriftRun(store, { model: 'quick', ts: clock.ms, features: DRIFTED });
    const r = await cycle(a);
    expect(r.changed.some((c) => c.state === 'firing')).toBe(true);
    clock.advance(WAIT / 2);
    await insertDriftRun(store, { model: 'quick', ts: clock.ms, features: NORMAL });
    const r2 = await cycle(a);
    expect(r2.changed.every((c) => c.state === 'resolved')).toBe(true);
    clock.advance(WAIT * 5);
    await cycle(a);
    clock.advance(INTERVAL * 2);
    await cycle(a);
    expect(hook.requests).toHaveLength(0);
  });

  it('resolved notifications follow firing ones', async () => {
    const clock = new TestClock(T0);
    const a = await evaluator(clock);
    await insertDriftRun(store, { model: 'res', ts: clock.ms - RUN, features: DRIFTED });
    await insertDriftRun(store, { model: 'res', ts: clock.ms, features: DRIFTED });
    await cycle(a);
    clock.advance(WAIT);
    await cycle(a);
    expect(bodies().map((b) => b.status)).toEqual(['firing']);
    clock.advance(RUN);
    await insertDriftRun(store, { model: 'res', ts: clock.ms, features: NORMAL });
    await cycle(a);
    clock.advance(INTERVAL);
    await cycle(a);
    expect(bodies().map((b) => b.status)).toEqual(['firing', 'resolved']);
    expect(bodies()[1]?.alerts.every((x) => x.status === 'resolved' && x.endsAt !== '0001-01-01T00:00:00Z')).toBe(true);
    clock.advance(INTERVAL * 3);
    await cycle(a);
    expect(hook.requests).toHaveLength(2);
  });
});

describe('silences and inhibition', () => {
  it('a silence suppresses matching alerts and they are notified once it expires', async () => {
    const clock = new TestClock(T0);
    const a = await evaluator(clock);
    await a.alertStore.createSilence({
      matchers: [{ name: 'model', value: 'quiet', isRegex: false, isEqual: true }],
      startsAt: clock.ms,
      endsAt: clock.ms + 10 * INTERVAL,
      comment: 'maintenance',
      createdBy: 'test',
      now: clock.ms,
    });
    await insertDriftRun(store, { model: 'quiet', ts: clock.ms - RUN, features: DRIFTED });
    await insertDriftRun(store, { model: 'quiet', ts: clock.ms, features: DRIFTED });
    await cycle(a);
    for (let i = 0; i < 5; i++) {
      clock.advance(INTERVAL);
      await cycle(a);
    }
    expect(hook.requests).toHaveLength(0);
    expect(a.dispatcher.muted.size).toBe(3);
    clock.ms = T0 + 10 * INTERVAL; // the silence ends
    await cycle(a);
    expect(hook.requests).toHaveLength(1);
    expect(bodies()[0]?.alerts).toHaveLength(3);
  });

  it('a firing no_data alert inhibits the model’s drift alerts until it resolves', async () => {
    const clock = new TestClock(T0);
    const a = await evaluator(clock);
    const req = (v: number) => [{ series: 'traffic.requests', value: v }];
    await insertSeries(store, { model: 'gone', ts: clock.ms - 2 * RUN, values: req(100) });
    await insertSeries(store, { model: 'gone', ts: clock.ms - RUN, values: req(0) });
    await insertSeries(store, { model: 'gone', ts: clock.ms, values: req(0) });
    await insertDriftRun(store, { model: 'gone', ts: clock.ms - RUN, features: DRIFTED });
    await insertDriftRun(store, { model: 'gone', ts: clock.ms, features: DRIFTED });
    await cycle(a);
    clock.advance(WAIT);
    await cycle(a);
    expect(hook.requests).toHaveLength(1);
    expect(bodies()[0]?.alerts.map((x) => x.labels['alertname'])).toEqual(['no_data']);
    expect([...a.dispatcher.muted.values()]).toEqual(['inhibited', 'inhibited', 'inhibited']);
    // Traffic is back: no_data resolves, the drift alerts are no longer inhibited.
    clock.advance(RUN);
    await insertSeries(store, { model: 'gone', ts: clock.ms, values: req(50) });
    await cycle(a);
    clock.advance(INTERVAL);
    await cycle(a);
    expect(hook.requests).toHaveLength(2);
    const second = bodies()[1];
    expect(
      second?.alerts
        .filter((x) => x.status === 'firing')
        .map((x) => x.labels['alertname'])
        .sort(),
    ).toEqual(['dataset_drift', 'feature_drift', 'feature_drift']);
    expect(second?.alerts.filter((x) => x.status === 'resolved').map((x) => x.labels['alertname'])).toEqual([
      'no_data',
    ]);
  });
});

describe('restart and flapping', () => {
  it('a restart in each phase neither loses nor repeats a notification', async () => {
    const clock = new TestClock(T0);
    let a = await evaluator(clock);
    await insertDriftRun(store, { model: 'rs', ts: clock.ms - RUN, features: DRIFTED });
    await insertDriftRun(store, { model: 'rs', ts: clock.ms, features: DRIFTED });
    await cycle(a);
    const firingIds = [...a.book.active.values()].map((x) => x.id).sort();
    // Restart inside the group wait: the firing alerts are not lost.
    await a.stop();
    a = await evaluator(clock);
    clock.advance(WAIT);
    await cycle(a); // reload; the new group waits again
    expect([...a.book.active.values()].map((x) => x.id).sort()).toEqual(firingIds);
    clock.advance(WAIT);
    await cycle(a);
    expect(hook.requests).toHaveLength(1);
    // Restart after the notification: not sent again.
    await a.stop();
    a = await evaluator(clock);
    for (let i = 0; i < 3; i++) {
      clock.advance(INTERVAL);
      await cycle(a);
    }
    expect(hook.requests).toHaveLength(1);
    // Resolve, restart before the resolved notification went out: it is sent once after the restart.
    clock.advance(RUN);
    await insertDriftRun(store, { model: 'rs', ts: clock.ms, features: NORMAL });
    await cycle(a);
    await a.stop();
    a = await evaluator(clock);
    for (let i = 0; i < 3; i++) {
      clock.advance(INTERVAL);
      await cycle(a);
    }
    expect(bodies().map((b) => b.status)).toEqual(['firing', 'resolved']);
  });

  it('flapping re-opens the same incident', async () => {
    const clock = new TestClock(T0);
    const a = await evaluator(clock);
    await insertDriftRun(store, { model: 'flap', ts: clock.ms - RUN, features: DRIFTED });
    await insertDriftRun(store, { model: 'flap', ts: clock.ms, features: DRIFTED });
    await cycle(a);
    const first = [...a.book.active.values()].find((x) => x.rule === 'dataset_drift');
    clock.advance(RUN);
    await insertDriftRun(store, { model: 'flap', ts: clock.ms, features: NORMAL });
    await cycle(a);
    expect(await stateOf(first?.id ?? '')).toBe('resolved');
    clock.advance(RUN);
    await insertDriftRun(store, { model: 'flap', ts: clock.ms, features: DRIFTED });
    await cycle(a);
    clock.advance(RUN);
    await insertDriftRun(store, { model: 'flap', ts: clock.ms, features: DRIFTED });
    await cycle(a);
    const again = [...a.book.active.values()].find((x) => x.rule === 'dataset_drift');
    expect(again?.state).toBe('firing');
    expect(again?.id).toBe(first?.id);
    expect(again?.flaps).toBe(1);
    expect(again?.firedAt).toBe(first?.firedAt);
    const incidents = await store.query<{ n: number }>(
      `SELECT uniqExact(id) AS n FROM mw_alerts FINAL WHERE rule = 'dataset_drift' AND model = 'flap' AND state != 'inactive'`,
    );
    expect(Number(incidents[0]?.n)).toBe(1);
  });
});
