import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import {
  NotificationDelivery,
  SlackNotifier,
  createOutboundAgent,
  OutboundPolicy,
  createReceivers,
} from '../src/alerts/index.js';
import { errorMessage } from '../src/common/index.js';
import { freePort } from './support/api.js';
import {
  MemoryNotificationLog,
  captureLogger,
  driftGroup,
  startHttpReceiver,
  startSmtpReceiver,
  type HttpReceiver,
  type Reply,
} from './support/alerts-receivers.js';

const SLACK_CANARY = 'CANARYslackPATHsecret7f3a';
const SMTP_CANARY = 'CANARY-smtp-pass-42';
const GRAFANA_CANARY = 'CANARY-grafana-token-99';
const HOOK_CANARY = 'CANARYhookQUERYtoken5511';
const CANARIES = [SLACK_CANARY, SMTP_CANARY, GRAFANA_CANARY, HOOK_CANARY];

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});
async function http(script: Reply[]): Promise<HttpReceiver> {
  const r = await startHttpReceiver(script);
  cleanup.push(() => r.close());
  return r;
}

function expectNoCanary(label: string, text: string): void {
  for (const c of CANARIES) {
    expect(text.includes(c), `${label} contains ${c}`).toBe(false);
    expect(text.includes(encodeURIComponent(c)), `${label} contains encoded ${c}`).toBe(false);
  }
}

describe('secrets never leak', () => {
  it('through logs, metrics, the notification log, stats or errors, on every failure path', async () => {
    // Receivers that fail in every way: 500, 429, 401 echoing the request, hanging, port closed.
    const echo: Reply = (req) => ({ status: 401, body: `${req.url} ${String(req.headers.authorization)}` });
    const slack = await http([
      { status: 500, body: 'server_error' },
      { status: 429, headers: { 'retry-after': '0' } },
    ]);
    const grafana = await http([echo]);
    const hook = await http(['hang']);
    const smtp = await startSmtpReceiver('mw', 'the-right-password');
    cleanup.push(() => smtp.close());
    const closedPort = await freePort();

    const channelLogger = captureLogger();
    const common = {
      slackWebhookUrl: `${slack.url}/services/T0/B0/${SLACK_CANARY}`,
      smtpUrl: `smtp://mw:${SMTP_CANARY}@127.0.0.1:${smtp.port}`,
      emailTo: ['oncall@example.com'],
      grafanaUrl: grafana.url,
      grafanaToken: GRAFANA_CANARY,
      webhookUrls: [`${hook.url}/hook?token=${HOOK_CANARY}`, `http://127.0.0.1:${closedPort}/x?token=${HOOK_CANARY}`],
      logger: channelLogger,
    };
    // Allowed to loopback (receivers answer with errors) and not allowed (refused at connect).
    const allowed = createReceivers({ ...common, outboundAllow: ['127.0.0.1'] });
    const refused = createReceivers(common);
    cleanup.push(
      () => allowed.close(),
      () => refused.close(),
    );

    // Only the hanging webhook gets a short attempt timeout; the others must reach their error replies.
    const withTimeouts = (rs: typeof allowed.receivers) =>
      rs.map((r) => ({ ...r, attemptTimeoutMs: r.name === 'webhook-1' ? 300 : 5000 }));
    const runs = [
      {
        receivers: withTimeouts(allowed.receivers),
        log: new MemoryNotificationLog(),
        logger: captureLogger(),
        metrics: new Registry(),
      },
      {
        receivers: withTimeouts(refused.receivers),
        log: new MemoryNotificationLog(),
        logger: captureLogger(),
        metrics: new Registry(),
      },
    ];
    for (const run of runs) {
      const d = new NotificationDelivery({
        ...run,
        attemptTimeoutMs: 300,
        initialBackoffMs: 10,
        maxBackoffMs: 20,
        maxAttempts: 2,
        maxQueued: 1,
      });
      d.enqueue(driftGroup('fraud', 'firing'));
      d.enqueue(driftGroup('fraud', 'resolved'));
      d.enqueue(driftGroup('other', 'firing')); // pushes out a queued one: the drop path logs too
      expect(await d.idle(10_000)).toBe(true);
      const failed = run.log.entries.filter((e) => e.status === 'failed');
      // Every channel but the log failed, with a reason.
      expect(new Set(failed.map((e) => e.receiver))).toEqual(
        new Set(['slack', 'email', 'grafana', 'webhook-1', 'webhook-2']),
      );
      for (const e of failed) expect(e.error).toBeTruthy();
      expectNoCanary('delivery log', run.logger.text());
      expectNoCanary('notification log rows', JSON.stringify(run.log.entries));
      expectNoCanary('metrics', await run.metrics.metrics());
      expectNoCanary('stats', JSON.stringify(d.stats()));
      await d.close(0);
    }
    expectNoCanary('channel log', channelLogger.text());
    // The receivers did get the secrets (the test would prove nothing otherwise).
    expect(slack.requests[0]!.url).toContain(SLACK_CANARY);
    expect(grafana.requests[0]!.headers.authorization).toBe(`Bearer ${GRAFANA_CANARY}`);
    expect(smtp.authFailures).toBeGreaterThan(0);
    // Refused runs name the reason.
    expect(runs[1]!.log.entries.find((e) => e.receiver === 'slack')!.error).toMatch(/refused/);
  });

  it('in errors a notifier returns for a closed port and in configuration errors', async () => {
    const port = await freePort();
    const agent = createOutboundAgent(new OutboundPolicy({ allow: ['127.0.0.1'] }));
    cleanup.push(() => agent.close());
    const n = new SlackNotifier({
      webhookUrl: `http://127.0.0.1:${port}/services/T/B/${SLACK_CANARY}`,
      dispatcher: agent,
    });
    const res = await n.send(driftGroup('m', 'firing'), { signal: AbortSignal.timeout(3000), attempt: 1 });
    expect(res).toMatchObject({ ok: false, retryable: true });
    expect(res.error).toMatch(/ECONNREFUSED/);
    expectNoCanary('error', res.error ?? '');

    const thrown = (() => {
      try {
        new SlackNotifier({ webhookUrl: `ftp://hooks/${SLACK_CANARY}`, dispatcher: agent });
      } catch (err) {
        return errorMessage(err);
      }
      return '';
    })();
    expect(thrown).toMatch(/scheme/);
    expectNoCanary('config error', thrown);
    expect(() => createReceivers({ smtpUrl: `smtp://u:${SMTP_CANARY}@h`, logger: captureLogger() })).toThrow(
      /recipient/,
    );
    try {
      createReceivers({ smtpUrl: `smtp://u:${SMTP_CANARY}@h`, logger: captureLogger() });
    } catch (err) {
      expectNoCanary('config error', errorMessage(err));
    }
  });
});
