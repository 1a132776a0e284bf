import { afterEach, describe, expect, it } from 'vitest';
import {
  AlertmanagerNotifier,
  EmailNotifier,
  GrafanaNotifier,
  MemoryAnnotationStore,
  OutboundPolicy,
  SlackLimits,
  SlackNotifier,
  WebhookNotifier,
  buildNotificationGroup,
  createOutboundAgent,
  renderSlackMessage,
  type AlertmanagerWebhookBody,
  type NotificationGroup,
} from '../src/alerts/index.js';
import {
  driftAlert,
  driftGroup,
  startHttpReceiver,
  startSmtpReceiver,
  type HttpReceiver,
  type SmtpReceiver,
} from './support/alerts-receivers.js';

const policy = new OutboundPolicy({ allow: ['127.0.0.1'] });
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map((f) => f()));
});

async function http(script?: Parameters<typeof startHttpReceiver>[0]): Promise<HttpReceiver> {
  const r = await startHttpReceiver(script);
  cleanup.push(() => r.close());
  return r;
}
function agent() {
  const a = createOutboundAgent(policy);
  cleanup.push(() => a.close());
  return a;
}
const ctx = () => ({ signal: AbortSignal.timeout(5000), attempt: 1 });

interface SlackBlock {
  type: string;
  text?: { type: string; text: string };
  elements?: { type: string; text: string }[];
}

describe('Slack', () => {
  it('posts a Block Kit message naming the model, the crossing, window, samples, reference, features and links', async () => {
    const slack = await http();
    const n = new SlackNotifier({ webhookUrl: `${slack.url}/services/T1/B1/XYZ`, dispatcher: agent() });
    const res = await n.send(driftGroup('fraud', 'firing'), ctx());
    expect(res).toMatchObject({ ok: true, status: 200 });
    expect(slack.requests).toHaveLength(1);
    const req = slack.requests[0]!;
    expect(req.url).toBe('/services/T1/B1/XYZ');
    const body = JSON.parse(req.body) as { text: string; blocks: SlackBlock[] };
    expect(body.text).toContain('[FIRING:1] model fraud: dataset_drift');
    const all = JSON.stringify(body.blocks);
    expect(body.blocks[0]).toMatchObject({ type: 'header', text: { type: 'plain_text' } });
    for (const s of [
      'dataset_drift_share 0.4 &gt; 0.3',
      '2024-05-01T09:00:00.000Z – 2024-05-01T10:00:00.000Z',
      'reference n=5000, current n=1200',
      'ref-7',
      'income (ks 0.41, p=0.0001)',
      'age (ks 0.22',
      '<http://127.0.0.1:9400/api/v1/alerts/a-fraud|Alert (API)>',
      '<http://127.0.0.1:9400/api/v1/alerts/a-fraud/report|Evidence report>',
      '<http://127.0.0.1:9400|Open modelwatch>',
    ]) {
      expect(all).toContain(JSON.stringify(s).slice(1, -1));
    }
  });

  it('stays within Block Kit limits with many alerts and huge texts, and never cuts a link', () => {
    const alerts = Array.from({ length: 80 }, (_, i) =>
      driftAlert('fraud', 'firing', {
        fingerprint: `fp-${String(i).padStart(3, '0')}`,
        labels: { alertname: 'feature_drift', model: 'fraud', severity: 'warning', feature: `f${i}` },
        annotations: { summary: '😀'.repeat(2000) + ' <b>&', runbook_url: 'https://runbooks.example.com/x' },
      }),
    );
    const group = buildNotificationGroup({
      groupKey: 'k',
      groupLabels: { model: 'fraud' },
      externalURL: 'http://ui',
      alerts,
    });
    const msg = renderSlackMessage(group);
    expect(msg.blocks.length).toBeLessThanOrEqual(SlackLimits.maxBlocks);
    const blocks = msg.blocks as SlackBlock[];
    for (const b of blocks) {
      if (b.type === 'header') expect(b.text!.text.length).toBeLessThanOrEqual(SlackLimits.maxHeaderText);
      if (b.type === 'section') {
        const t = b.text!.text;
        expect(t.length).toBeLessThanOrEqual(SlackLimits.maxSectionText);
        // The links at the end survive truncation; the user's text is escaped.
        expect(t).toContain('|Runbook>');
        expect(t).not.toContain('<b>');
        // No lone surrogate from cutting an emoji in half.
        expect(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(t)).toBe(false);
      }
    }
    const footer = blocks[blocks.length - 1]!;
    expect(footer.elements![0]!.text).toMatch(/…and 57 more alerts/);
    expect(msg.text.length).toBeLessThanOrEqual(SlackLimits.maxFallbackText);
    expect(msg.text.startsWith('[FIRING:80] model fraud: feature_drift')).toBe(true);
  });

  it('429 reports Retry-After; 500 is retryable; 404 is final', async () => {
    const slack = await http([
      { status: 429, headers: { 'retry-after': '1' }, body: 'rate_limited' },
      { status: 500 },
      { status: 404, body: 'no_service' },
    ]);
    const n = new SlackNotifier({ webhookUrl: `${slack.url}/services/T1/B1/XYZ`, dispatcher: agent() });
    const g = driftGroup('fraud', 'firing');
    expect(await n.send(g, ctx())).toMatchObject({ ok: false, status: 429, retryable: true, retryAfterMs: 1000 });
    expect(await n.send(g, ctx())).toMatchObject({ ok: false, status: 500, retryable: true });
    expect(await n.send(g, ctx())).toMatchObject({ ok: false, status: 404, retryable: false });
  });
});

describe('email', () => {
  let smtp: SmtpReceiver;
  afterEach(async () => smtp?.close());

  it('sends one message per group with text and HTML parts and an Alertmanager-style subject', async () => {
    smtp = await startSmtpReceiver('alerts', 'p@ss word');
    const n = new EmailNotifier({ smtpUrl: smtp.url, to: ['oncall@example.com'], from: 'mw@example.com', policy });
    const group = buildNotificationGroup({
      groupKey: '{}:{model="fraud"}',
      groupLabels: { model: 'fraud' },
      externalURL: 'http://127.0.0.1:9400',
      alerts: [
        driftAlert('fraud', 'firing'),
        driftAlert('fraud', 'firing', {
          fingerprint: 'fp-2',
          labels: { alertname: 'feature_drift', model: 'fraud', severity: 'warning', feature: 'income' },
          annotations: { summary: 'Feature <income> drifted' },
        }),
      ],
    });
    expect(await n.send(group, ctx())).toMatchObject({ ok: true, status: 250 });
    await smtp.settled();
    expect(smtp.messages).toHaveLength(1);
    const mail = smtp.messages[0]!;
    expect(mail.subject).toBe('[FIRING:2] model fraud: dataset_drift, feature_drift');
    expect(mail.text).toContain('value: dataset_drift_share 0.4 > 0.3');
    expect(mail.text).toContain('top drifted features: income (ks 0.41, p=0.0001); age');
    expect(mail.text).toContain('evidence report: http://127.0.0.1:9400/api/v1/alerts/a-fraud/report');
    expect(typeof mail.html).toBe('string');
    const html = mail.html as string;
    expect(html).toContain('<a href="http://127.0.0.1:9400/api/v1/alerts/a-fraud/report">Evidence report</a>');
    expect(html).toContain('Feature &lt;income&gt; drifted');
    expect(html).toContain('<li>income (ks 0.41, p=0.0001)</li>');

    const resolved = await n.send(driftGroup('fraud', 'resolved'), ctx());
    expect(resolved.ok).toBe(true);
    await smtp.settled();
    expect(smtp.messages[1]!.subject).toBe('[RESOLVED] model fraud: dataset_drift');
  });

  it('a wrong password is a final failure whose error does not contain the password', async () => {
    smtp = await startSmtpReceiver('alerts', 'right-password');
    const n = new EmailNotifier({
      smtpUrl: `smtp://alerts:CANARY-wrong-pw@127.0.0.1:${smtp.port}`,
      to: ['oncall@example.com'],
      policy,
    });
    const res = await n.send(driftGroup('fraud', 'firing'), ctx());
    expect(res).toMatchObject({ ok: false, retryable: false, status: 535 });
    expect(res.error).not.toContain('CANARY-wrong-pw');
    expect(smtp.authFailures).toBe(1);
  });

  it('checks the SMTP host against the outbound policy before connecting', async () => {
    smtp = await startSmtpReceiver('alerts', 'pw');
    const n = new EmailNotifier({ smtpUrl: smtp.url, to: ['a@example.com'], policy: new OutboundPolicy() });
    const res = await n.send(driftGroup('fraud', 'firing'), ctx());
    expect(res).toMatchObject({ ok: false, retryable: false });
    expect(res.error).toMatch(/refused/);
    await smtp.settled();
    expect(smtp.raw).toHaveLength(0);
  });
});

describe('Grafana annotations', () => {
  it('opens a region on firing, keeps the id, closes it with PATCH timeEnd on resolve', async () => {
    let nextId = 41;
    const grafana = await http([
      (req) =>
        req.method === 'POST'
          ? {
              status: 200,
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ message: 'Annotation added', id: ++nextId }),
            }
          : { status: 200, body: JSON.stringify({ message: 'Annotation patched' }) },
    ]);
    const store = new MemoryAnnotationStore();
    const n = new GrafanaNotifier({ grafanaUrl: grafana.url, token: 'glsa_token', dispatcher: agent(), store });
    const firing = driftGroup('fraud', 'firing');
    expect((await n.send(firing, ctx())).ok).toBe(true);
    // A repeat of the same firing alert does not open a second region.
    expect((await n.send(firing, ctx())).ok).toBe(true);
    expect(await store.get('grafana', 'fp-fraud-dataset')).toBe(42);
    expect((await n.send(driftGroup('fraud', 'resolved'), ctx())).ok).toBe(true);
    expect(await store.get('grafana', 'fp-fraud-dataset')).toBeUndefined();

    expect(grafana.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'POST /api/annotations',
      'PATCH /api/annotations/42',
    ]);
    for (const r of grafana.requests) expect(r.headers.authorization).toBe('Bearer glsa_token');
    const post = JSON.parse(grafana.requests[0]!.body) as {
      time: number;
      tags: string[];
      text: string;
      timeEnd?: number;
    };
    expect(post.time).toBe(Date.parse('2024-05-01T10:00:00.000Z'));
    expect(post.timeEnd).toBeUndefined();
    expect(post.tags).toEqual(['modelwatch', 'model:fraud', 'rule:dataset_drift', 'severity:critical']);
    expect(post.text).toContain('dataset_drift_share 0.4 > 0.3');
    const patch = JSON.parse(grafana.requests[1]!.body) as { timeEnd: number };
    expect(patch.timeEnd).toBe(Date.parse('2024-05-01T12:00:00.000Z'));
  });

  it('a resolve whose annotation is gone (404) posts a closed region', async () => {
    const grafana = await http([{ status: 404 }, { status: 200, body: '{"id":7}' }]);
    const store = new MemoryAnnotationStore();
    await store.set('grafana', 'fp-fraud-dataset', 99);
    const n = new GrafanaNotifier({
      grafanaUrl: `${grafana.url}/grafana/`,
      token: 't0ken',
      dispatcher: agent(),
      store,
    });
    expect((await n.send(driftGroup('fraud', 'resolved'), ctx())).ok).toBe(true);
    expect(grafana.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'PATCH /grafana/api/annotations/99',
      'POST /grafana/api/annotations',
    ]);
    const body = JSON.parse(grafana.requests[1]!.body) as { time: number; timeEnd: number };
    expect(body.timeEnd - body.time).toBe(2 * 3600_000);
  });
});

describe('webhook and Alertmanager', () => {
  it('webhook gets the Alertmanager webhook body (version 4) with evidence', async () => {
    const hook = await http();
    const n = new WebhookNotifier({ receiver: 'webhook', url: `${hook.url}/alerts`, dispatcher: agent() });
    const group: NotificationGroup = buildNotificationGroup({
      groupKey: '{}:{model="fraud"}',
      groupLabels: { model: 'fraud' },
      externalURL: 'http://127.0.0.1:9400',
      alerts: [driftAlert('fraud', 'firing'), driftAlert('fraud', 'resolved', { fingerprint: 'fp-old' })],
      maxAlerts: 1,
    });
    expect((await n.send(group, ctx())).ok).toBe(true);
    const body = JSON.parse(hook.requests[0]!.body) as AlertmanagerWebhookBody;
    expect(hook.requests[0]!.headers['content-type']).toBe('application/json');
    expect(body).toMatchObject({
      version: '4',
      groupKey: '{}:{model="fraud"}',
      status: 'firing',
      receiver: 'webhook',
      groupLabels: { model: 'fraud' },
      commonLabels: { alertname: 'dataset_drift', model: 'fraud', severity: 'critical' },
      externalURL: 'http://127.0.0.1:9400',
      truncatedAlerts: 1,
    });
    expect(body.commonAnnotations['summary']).toBe('Dataset drift on fraud: 40% of features drifted');
    expect(body.alerts).toHaveLength(1);
    expect(body.alerts[0]).toMatchObject({
      status: 'firing',
      endsAt: '0001-01-01T00:00:00Z',
      fingerprint: 'fp-fraud-dataset',
      generatorURL: 'http://127.0.0.1:9400/api/v1/alerts/a-fraud',
    });
    expect(body.alerts[0]!.evidence?.topFeatures?.[0]?.feature).toBe('income');
  });

  it('Alertmanager push posts postable alerts to /api/v2/alerts', async () => {
    const am = await http();
    const now = Date.parse('2024-05-01T11:00:00.000Z');
    const n = new AlertmanagerNotifier({
      alertmanagerUrl: am.url,
      dispatcher: agent(),
      activeForMs: 600_000,
      now: () => now,
    });
    const group = buildNotificationGroup({
      groupKey: 'k',
      groupLabels: { model: 'fraud' },
      externalURL: '',
      alerts: [
        driftAlert('fraud', 'firing'),
        driftAlert('fraud', 'resolved', { fingerprint: 'fp-r', labels: { alertname: 'no_data', model: 'fraud' } }),
      ],
    });
    expect((await n.send(group, ctx())).ok).toBe(true);
    expect(`${am.requests[0]!.method} ${am.requests[0]!.url}`).toBe('POST /api/v2/alerts');
    const alerts = JSON.parse(am.requests[0]!.body) as {
      labels: Record<string, string>;
      endsAt: string;
      startsAt: string;
    }[];
    expect(alerts).toHaveLength(2);
    expect(alerts[0]).toMatchObject({ labels: { alertname: 'dataset_drift' }, endsAt: '2024-05-01T11:10:00.000Z' });
    expect(alerts[1]).toMatchObject({ labels: { alertname: 'no_data' }, endsAt: '2024-05-01T12:00:00.000Z' });
  });
});
