import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { activeAlerts, startAlerting, type RunningAlerting } from '../src/alerts/index.js';
import { startApi, type RunningApi } from '../src/api/index.js';
import { silenceCommand, alertsCommand } from '../src/cli/commands/alerts.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { apiTestContext } from './support/api.js';
import { TestClock, insertDriftRun } from './support/alerts-engine.js';
import {
  startHttpReceiver,
  startSmtpReceiver,
  type HttpReceiver,
  type Reply,
  type SmtpReceiver,
} from './support/alerts-receivers.js';
import { openTestStore } from './support/store.js';

// End to end on embedded ClickHouse: stored drift results → the default rules fire → Slack, email and
// Grafana stand-ins on loopback each get one notification naming the drifted features → the results
// return to normal → resolved notifications. Then the API, CLI and metrics over the same alerts.

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let slack: HttpReceiver;
let grafana: HttpReceiver;
let smtp: SmtpReceiver;
let alerting: RunningAlerting;
let api: RunningApi;
const RUN = 60_000;
const clock = new TestClock(Date.now() - 30 * 60_000);

const grafanaReply: Reply = (req) =>
  req.method === 'POST'
    ? { status: 200, body: JSON.stringify({ id: 42, message: 'Annotation added' }) }
    : { status: 200, body: '{}' };

const features = (shift: boolean) => ({
  income: { score: shift ? 0.62 : 0.02, drifted: shift },
  age: { score: shift ? 0.35 : 0.01, drifted: shift },
  tenure: { score: 0.03, drifted: false },
});

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  slack = await startHttpReceiver();
  grafana = await startHttpReceiver([grafanaReply]);
  smtp = await startSmtpReceiver('mw', 'smtp-pass');
  const ctx = apiTestContext(store, {
    'detect.intervalMs': RUN,
    'alerts.slackWebhookUrl': `${slack.url}/services/T0/B0/secret`,
    'alerts.smtpUrl': smtp.url,
    'alerts.emailTo': ['oncall@example.com'],
    'alerts.grafanaUrl': grafana.url,
    'alerts.grafanaToken': 'glsa_token',
    'alerts.outboundAllow': ['127.0.0.1'],
    'alerts.groupWaitMs': 1000,
    'alerts.groupIntervalMs': 5000,
  });
  alerting = await startAlerting(ctx, { clock: clock.now, timers: false, leaseSettleMs: 0 });
  api = await startApi(ctx);
});
afterAll(async () => {
  await api?.stop();
  await alerting?.stop();
  await slack?.close();
  await grafana?.close();
  await smtp?.close();
  await cleanup?.();
});

async function cycle(): Promise<void> {
  await alerting.runOnce();
  await alerting.delivery.idle(15_000);
  await smtp.settled();
}

async function getJson<T>(path: string): Promise<{ status: number; body: T }> {
  const res = await fetch(api.url + path);
  return { status: res.status, body: (await res.json()) as T };
}

describe('alerts end to end on embedded ClickHouse', () => {
  let alertId = '';

  it('drift in two consecutive runs fires; Slack, email and Grafana each get one notification naming the features', async () => {
    await insertDriftRun(store, { model: 'fraud', ts: clock.ms, features: features(true) });
    await cycle();
    clock.advance(RUN);
    await insertDriftRun(store, { model: 'fraud', ts: clock.ms, features: features(true) });
    await cycle();
    clock.advance(1000);
    await cycle();

    expect(slack.requests).toHaveLength(1);
    const slackText = slack.requests[0]?.body ?? '';
    expect(slackText).toContain('fraud');
    expect(slackText).toContain('income');
    expect(slackText).toContain('age');
    expect(slackText).not.toContain('tenure (');

    expect(smtp.messages).toHaveLength(1);
    const mail = smtp.messages[0];
    expect(mail?.subject).toMatch(/^\[FIRING:3\] model fraud/);
    expect(mail?.text).toContain('income');
    expect(typeof mail?.html === 'string' && mail.html.includes('income')).toBe(true);

    const posts = grafana.requests.filter((r) => r.method === 'POST');
    expect(posts.length).toBe(3); // one region per alert of the group
    const tags = (JSON.parse(posts[0]?.body ?? '{}') as { tags?: string[] }).tags ?? [];
    expect(tags).toContain('modelwatch');
    expect(tags).toContain('model:fraud');
    expect(grafana.requests[0]?.headers.authorization).toBe('Bearer glsa_token');

    const list = await getJson<{ alerts: { id: string; rule: string; state: string }[] }>(
      '/api/v1/alerts?state=firing&model=fraud',
    );
    expect(list.status).toBe(200);
    expect(list.body.alerts.map((a) => a.rule).sort()).toEqual(['dataset_drift', 'feature_drift', 'feature_drift']);
    alertId = list.body.alerts.find((a) => a.rule === 'dataset_drift')?.id ?? '';
    expect((await activeAlerts(store, 'fraud')).filter((a) => a.state === 'firing')).toHaveLength(3);
  });

  it('serves the evidence, its HTML report and the modelwatch_alerts gauge', async () => {
    const one = await getJson<{
      evidence: { topFeatures: { feature: string }[]; runs: unknown[]; reference: { id: string } };
    }>(`/api/v1/alerts/${alertId}`);
    expect(one.status).toBe(200);
    expect(one.body.evidence.topFeatures.map((f) => f.feature)).toEqual(['income', 'age']);
    expect(one.body.evidence.runs).toHaveLength(2);
    expect(one.body.evidence.reference.id).toBe('ref-1');
    const report = await fetch(`${api.url}/api/v1/alerts/${alertId}/report`);
    expect(report.headers.get('content-type')).toContain('text/html');
    const html = await report.text();
    expect(html).toContain('Alert evidence');
    expect(html).toContain('dataset_drift_share');
    expect(html).toContain('income');
    expect((await fetch(`${api.url}/api/v1/alerts/nope`)).status).toBe(404);
    const metrics = await (await fetch(`${api.url}/metrics`)).text();
    expect(metrics).toMatch(
      /modelwatch_alerts\{model="fraud",rule="feature_drift",severity="warning",state="firing"\} 2/,
    );
    expect(metrics).toMatch(/modelwatch_notifications_total\{receiver="slack",outcome="sent"\} 1/);
  });

  it('results back to normal: resolved notifications arrive on every channel', async () => {
    clock.advance(RUN);
    await insertDriftRun(store, { model: 'fraud', ts: clock.ms, features: features(false) });
    await cycle();
    clock.advance(5000);
    await cycle();
    expect(slack.requests).toHaveLength(2);
    expect(slack.requests[1]?.body).toContain('RESOLVED');
    expect(smtp.messages).toHaveLength(2);
    expect(smtp.messages[1]?.subject).toMatch(/^\[RESOLVED\] model fraud/);
    const patches = grafana.requests.filter((r) => r.method === 'PATCH');
    expect(patches.length).toBe(3);
    expect(JSON.parse(patches[0]?.body ?? '{}')).toHaveProperty('timeEnd');
    expect(await activeAlerts(store, 'fraud')).toEqual([]);
    // No secret reached a stored row or an API answer.
    const stored =
      JSON.stringify(await store.query('SELECT * FROM mw_notifications')) +
      JSON.stringify(await store.query('SELECT * FROM mw_alerts'));
    for (const secret of ['secret', 'smtp-pass', 'glsa_token']) expect(stored).not.toContain(secret);
  });

  it('silences through the CLI and the API', async () => {
    const out: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
      out.push(String(s));
      return true;
    });
    try {
      expect(
        await silenceCommand.run([
          'add',
          '--matcher',
          'model=fraud',
          '--matcher',
          'alertname=~feature_.*',
          '--duration',
          '2h',
          '--comment',
          'retraining',
          '--author',
          'ana',
          '--api',
          api.url,
        ]),
      ).toBe(0);
      const id = out.join('').trim();
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      const listed = await getJson<{
        silences: { id: string; state: string; matchers: unknown[]; createdBy: string }[];
      }>('/api/v1/silences');
      expect(listed.body.silences.find((s) => s.id === id)).toMatchObject({ state: 'active', createdBy: 'ana' });
      out.length = 0;
      expect(await silenceCommand.run(['list', '--api', api.url])).toBe(0);
      expect(out.join('')).toContain('model=fraud,alertname=~feature_.*');
      expect(await silenceCommand.run(['expire', id, '--api', api.url])).toBe(0);
      const after = await getJson<{ silences: { id: string; state: string }[] }>('/api/v1/silences');
      expect(after.body.silences.find((s) => s.id === id)?.state).toBe('expired');
      expect((await fetch(`${api.url}/api/v1/silences/${id}`, { method: 'DELETE' })).status).toBe(404);
      out.length = 0;
      expect(await alertsCommand.run(['list', '--state', 'resolved', '--api', api.url])).toBe(0);
      expect(out.join('')).toContain('dataset_drift');
    } finally {
      spy.mockRestore();
    }
    const bad = await fetch(`${api.url}/api/v1/silences`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        matchers: [{ name: 'model', value: '(', isRegex: true }],
        endsAt: '2099-01-01T00:00:00Z',
        comment: 'x',
      }),
    });
    expect(bad.status).toBe(400);
  });
});
