import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import {
  MemoryAnnotationStore,
  NotificationDelivery,
  createReceivers,
  type AlertmanagerWebhookBody,
  type NotificationDeliveryOptions,
  type Receiver,
} from '../src/alerts/index.js';
import {
  MemoryNotificationLog,
  captureLogger,
  driftGroup,
  startHttpReceiver,
  startSmtpReceiver,
  type HttpReceiver,
  type Reply,
} from './support/alerts-receivers.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function http(script?: Reply[]): Promise<HttpReceiver> {
  const r = await startHttpReceiver(script);
  cleanup.push(() => r.close());
  return r;
}

const grafanaOk: Reply = (req) =>
  req.method === 'POST'
    ? { status: 200, body: JSON.stringify({ id: 1, message: 'Annotation added' }) }
    : { status: 200, body: '{}' };

function delivery(receivers: Receiver[], extra: Partial<NotificationDeliveryOptions> = {}) {
  const log = new MemoryNotificationLog();
  const logger = captureLogger();
  const metrics = new Registry();
  const d = new NotificationDelivery({
    receivers,
    log,
    logger,
    metrics,
    attemptTimeoutMs: 400,
    initialBackoffMs: 50,
    maxBackoffMs: 200,
    jitter: false,
    maxAttempts: 3,
    ...extra,
  });
  cleanup.push(() => d.close(0));
  return { d, log, logger, metrics };
}

async function waitFor(pred: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function bodies(r: HttpReceiver): AlertmanagerWebhookBody[] {
  return r.requests.map((q) => JSON.parse(q.body) as AlertmanagerWebhookBody);
}

describe('delivery to real receivers', () => {
  it('one acknowledged notification each: Slack after its 429 wait, webhook after its 500, the hung Alertmanager timed out while the others are on time', async () => {
    const slack = await http([
      { status: 429, headers: { 'retry-after': '1' }, body: 'rate_limited' },
      { status: 200, body: 'ok' },
    ]);
    const hook = await http([{ status: 500 }, { status: 200 }]);
    const grafana = await http([grafanaOk]);
    const am = await http(['hang']);
    const smtp = await startSmtpReceiver('mw', 'pw');
    cleanup.push(() => smtp.close());
    const logger = captureLogger();
    const built = createReceivers({
      slackWebhookUrl: `${slack.url}/services/T/B/secret`,
      smtpUrl: smtp.url,
      emailTo: ['oncall@example.com'],
      grafanaUrl: grafana.url,
      grafanaToken: 'tok',
      annotationStore: new MemoryAnnotationStore(),
      webhookUrls: [`${hook.url}/hook`],
      alertmanagerUrl: am.url,
      outboundAllow: ['127.0.0.1'],
      logger,
    });
    cleanup.push(() => built.close());
    expect(built.receivers.map((r) => r.name)).toEqual(['slack', 'email', 'grafana', 'webhook', 'alertmanager', 'log']);
    // The machine running the tests may be loaded: healthy channels get a generous attempt timeout,
    // the hung Alertmanager a short one (three attempts of it still outlast every healthy delivery).
    const receivers = built.receivers.map((r) => ({ ...r, attemptTimeoutMs: r.name === 'alertmanager' ? 1000 : 5000 }));
    const { d, log, metrics } = delivery(receivers);

    const t0 = performance.now();
    const accepted = d.enqueue(driftGroup('fraud', 'firing'));
    // The evaluator is never held up by delivery.
    expect(performance.now() - t0).toBeLessThan(50);
    expect(accepted).toHaveLength(6);
    expect(await d.idle(20_000)).toBe(true);

    const sent = (name: string) => log.for(name).filter((e) => e.status === 'sent');
    for (const name of ['slack', 'email', 'grafana', 'webhook', 'log']) {
      expect(sent(name), `${name}: ${JSON.stringify(log.entries)}`).toHaveLength(1);
    }
    expect(sent('email')[0]).toMatchObject({ attempt: 1, httpStatus: 250 });
    expect(sent('slack')[0]).toMatchObject({
      attempt: 2,
      httpStatus: 200,
      error: null,
      groupStatus: 'firing',
      firing: 1,
    });
    expect(sent('webhook')[0]).toMatchObject({ attempt: 2, httpStatus: 200 });
    expect(sent('grafana')[0]).toMatchObject({ attempt: 1 });

    // Exactly one acknowledged request per stand-in.
    expect(slack.requests.filter((r) => r.answered === 200)).toHaveLength(1);
    expect(hook.requests.map((r) => r.answered)).toEqual([500, 200]);
    expect(grafana.requests).toHaveLength(1);
    await smtp.settled();
    expect(smtp.messages).toHaveLength(1);
    expect(smtp.messages[0]!.subject).toBe('[FIRING:1] model fraud: dataset_drift');

    // Slack's second attempt waited for Retry-After: 1.
    expect(slack.requests).toHaveLength(2);
    expect(slack.requests[1]!.at - slack.requests[0]!.at).toBeGreaterThanOrEqual(990);

    // The hung Alertmanager: three attempts, each timed out, then given up and logged as failed.
    expect(am.requests).toHaveLength(3);
    const amLog = log.for('alertmanager');
    expect(amLog).toHaveLength(1);
    expect(amLog[0]).toMatchObject({ status: 'failed', attempt: 3, httpStatus: null, acknowledgedAt: null });
    expect(amLog[0]!.error).toBe('attempt timed out after 1000 ms');
    // ...while the healthy channels were acknowledged long before it gave up.
    const amDone = amLog[0]!.recordedAt;
    for (const name of ['email', 'grafana', 'webhook']) {
      expect(sent(name)[0]!.recordedAt).toBeLessThan(amDone);
    }
    expect(amDone - t0).toBeGreaterThanOrEqual(3 * 1000);

    const text = await metrics.metrics();
    expect(text).toContain('modelwatch_notifications_total{receiver="slack",outcome="sent"} 1');
    expect(text).toContain('modelwatch_notifications_total{receiver="slack",outcome="retried"} 1');
    expect(text).toContain('modelwatch_notifications_total{receiver="webhook",outcome="retried"} 1');
    expect(text).toContain('modelwatch_notifications_total{receiver="alertmanager",outcome="failed"} 1');
    expect(text).toContain('modelwatch_notifications_total{receiver="alertmanager",outcome="retried"} 2');
    expect(logger.lines.some((l) => l.includes('"msg":"alert firing: model fraud: dataset_drift"'))).toBe(true);
  });

  it('a failing firing notification is retried after the alert resolved, and the resolve follows it; other groups are not held up', async () => {
    // The fraud firing notification fails twice; everything else is acknowledged.
    let fraudFiring = 0;
    const hook = await http([
      (req) => {
        const b = JSON.parse(req.body) as AlertmanagerWebhookBody;
        if (b.commonLabels['model'] === 'fraud' && b.status === 'firing' && ++fraudFiring <= 2) return { status: 500 };
        return { status: 200 };
      },
    ]);
    const built = createReceivers({
      webhookUrls: [`${hook.url}/h`],
      outboundAllow: ['127.0.0.1'],
      logger: captureLogger(),
    });
    cleanup.push(() => built.close());
    const { d, log } = delivery(
      built.receivers.filter((r) => r.name === 'webhook'),
      {
        initialBackoffMs: 300,
        maxBackoffMs: 300,
        maxAttempts: 5,
      },
    );
    d.enqueue(driftGroup('fraud', 'firing'));
    await new Promise((r) => setTimeout(r, 100)); // first attempt failed, firing is waiting to retry
    d.enqueue(driftGroup('fraud', 'resolved'));
    d.enqueue(driftGroup('other', 'firing'));
    expect(await d.idle(10_000)).toBe(true);

    const seen = bodies(hook).map((b) => `${b.commonLabels['model']}:${b.status}`);
    // 'other' goes out while fraud's firing notification waits for its retry.
    expect(seen).toEqual(['fraud:firing', 'other:firing', 'fraud:firing', 'fraud:firing', 'fraud:resolved']);
    expect(hook.requests.map((r) => r.answered)).toEqual([500, 200, 500, 200, 200]);
    expect(log.entries.map((e) => `${e.groupKey}:${e.groupStatus}:${e.status}:${e.attempt}`)).toEqual([
      '{}:{model="other"}:firing:sent:1',
      '{}:{model="fraud"}:firing:sent:3',
      '{}:{model="fraud"}:resolved:sent:1',
    ]);
  });

  it('4xx other than 408/429 is final: logged as failed after one attempt', async () => {
    const hook = await http([{ status: 400 }]);
    const built = createReceivers({
      webhookUrls: [`${hook.url}/h`],
      outboundAllow: ['127.0.0.1'],
      logger: captureLogger(),
    });
    cleanup.push(() => built.close());
    const { d, log } = delivery(built.receivers.filter((r) => r.name === 'webhook'));
    d.enqueue(driftGroup('fraud', 'firing'));
    expect(await d.idle(5000)).toBe(true);
    expect(hook.requests).toHaveLength(1);
    expect(log.entries).toMatchObject([{ receiver: 'webhook', status: 'failed', attempt: 1, httpStatus: 400 }]);
  });

  it('a dead receiver fills only its own bounded queue; drops are counted and logged', async () => {
    const dead = await http(['hang']);
    const live = await http();
    const built = createReceivers({
      webhookUrls: [`${dead.url}/dead`, `${live.url}/live`],
      outboundAllow: ['127.0.0.1'],
      logger: captureLogger(),
    });
    cleanup.push(() => built.close());
    const { d, log, logger, metrics } = delivery(
      built.receivers.filter((r) => r.name !== 'log'),
      { concurrency: 1, maxQueued: 3, attemptTimeoutMs: 3000, maxAttempts: 1 },
    );
    for (let i = 0; i < 3; i++) d.enqueue(driftGroup(`m${i}`, 'firing'));
    await waitFor(() => log.for('webhook-2').length === 3);
    for (let i = 3; i < 6; i++) d.enqueue(driftGroup(`m${i}`, 'firing'));
    // webhook-1 (dead): m0 hangs in flight; m4 and m5 pushed out the oldest waiting (m1, m2).
    const s = d.stats();
    expect(s['webhook-1']).toMatchObject({ inFlight: 1, queued: 3, dropped: 2, sent: 0 });
    // webhook-2 (live) is not held up by it.
    await waitFor(() => log.for('webhook-2').length === 6);
    expect(bodies(live).map((b) => b.commonLabels['model'])).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    expect(d.stats()['webhook-2']!.dropped).toBe(0);
    expect(dead.requests).toHaveLength(1);
    expect((await metrics.metrics()).split('\n')).toContain(
      'modelwatch_notifications_total{receiver="webhook-1",outcome="dropped"} 2',
    );
    const drops = logger.lines.filter((l) => l.includes('alert notification dropped'));
    expect(drops).toHaveLength(2);
    expect(drops[0]).toContain('"groupKey":"{}:{model=\\"m1\\"}"');

    // A single notification larger than the byte bound is dropped, not queued.
    const small = new NotificationDelivery({ receivers: built.receivers.slice(0, 1), maxQueuedBytes: 100 });
    expect(small.enqueue(driftGroup('big', 'firing'))).toEqual([]);
    expect(small.stats()['webhook-1']!.dropped).toBe(1);
    await small.close(0);
  });
});

describe('shutdown', () => {
  it('close() drains what it can, then aborts a hung attempt without logging it as failed', async () => {
    const hung = await http(['hang']);
    const ok = await http();
    const built = createReceivers({
      webhookUrls: [`${hung.url}/h`, `${ok.url}/o`],
      outboundAllow: ['127.0.0.1'],
      logger: captureLogger(),
    });
    cleanup.push(() => built.close());
    const { d, log, logger } = delivery(
      built.receivers.filter((r) => r.name !== 'log'),
      { attemptTimeoutMs: 10_000 },
    );
    d.enqueue(driftGroup('fraud', 'firing'));
    const t0 = performance.now();
    await d.close(300);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(log.entries.map((e) => `${e.receiver}:${e.status}`)).toEqual(['webhook-2:sent']);
    expect(logger.lines.some((l) => l.includes('left unsent at shutdown') && l.includes('webhook-1'))).toBe(true);
    expect(d.enqueue(driftGroup('fraud', 'resolved'))).toEqual([]);
  });
});
