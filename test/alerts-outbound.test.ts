import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  OutboundPolicy,
  Redactor,
  SlackNotifier,
  WebhookNotifier,
  createOutboundAgent,
  parseOutboundAllow,
} from '../src/alerts/index.js';
import { isModelwatchError } from '../src/common/index.js';
import { driftGroup, startHttpReceiver, type HttpReceiver } from './support/alerts-receivers.js';

function ctx(timeoutMs = 3000) {
  return { signal: AbortSignal.timeout(timeoutMs), attempt: 1 };
}

describe('OutboundPolicy address ranges', () => {
  const policy = new OutboundPolicy();
  it.each([
    '127.0.0.1',
    '127.5.6.7',
    '10.0.0.1',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '169.254.169.254',
    '0.0.0.0',
    '100.64.0.1',
    '::1',
    '::',
    'fe80::1',
    'fd00::1',
    'fc00::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:10.0.0.1',
    '::ffff:169.254.169.254',
    '64:ff9b::a9fe:a9fe', // NAT64 of 169.254.169.254
    '2002:7f00:1::1', // 6to4 of 127.0.0.1
    '::127.0.0.1', // IPv4-compatible
  ])('blocks %s', (ip) => {
    expect(policy.isBlockedAddress(ip)).toBe(true);
    expect(() => policy.check(ip, ip)).toThrowError(/refused/);
  });

  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '172.32.0.1',
    '192.169.0.1',
    '2606:4700:4700::1111',
    '::ffff:8.8.8.8',
    '2002:808:808::1',
  ])('allows public %s', (ip) => {
    expect(policy.isBlockedAddress(ip)).toBe(false);
    expect(() => policy.check(ip, ip)).not.toThrow();
  });

  it('allow-list by IP, CIDR and host name; bad entries rejected at start-up', () => {
    const p = new OutboundPolicy({ allow: parseOutboundAllow('127.0.0.1, 10.1.0.0/16 [::1] hooks.internal') });
    expect(() => p.check('127.0.0.1', '127.0.0.1')).not.toThrow();
    expect(() => p.check('127.0.0.2', '127.0.0.2')).toThrow();
    expect(() => p.check('10.1.2.3', '10.1.2.3')).not.toThrow();
    expect(() => p.check('10.2.0.1', '10.2.0.1')).toThrow();
    expect(() => p.check('::1', '::1')).not.toThrow();
    expect(() => p.check('hooks.internal', '10.9.9.9')).not.toThrow();
    expect(() => p.check('HOOKS.internal', '192.168.0.1')).not.toThrow();
    expect(() => new OutboundPolicy({ allow: ['10.0.0.0/33'] })).toThrow(/prefix/);
    expect(() => new OutboundPolicy({ allow: ['http://x/'] })).toThrow(/outboundAllow/);
  });

  it('refuses a name when any of its addresses is private (resolver may hand out either)', async () => {
    const p = new OutboundPolicy({
      resolve: () =>
        Promise.resolve([
          { address: '93.184.216.34', family: 4 },
          { address: '169.254.169.254', family: 4 },
        ]),
    });
    await expect(p.resolve('mixed.example')).rejects.toThrow(/mixed\.example \(169\.254\.169\.254\) refused/);
  });
});

describe('connect-time checks on real sockets', () => {
  let v4: HttpReceiver;
  let v6: HttpReceiver;
  let target: HttpReceiver;
  let redirector: HttpReceiver;

  beforeAll(async () => {
    v4 = await startHttpReceiver();
    v6 = await startHttpReceiver([{ status: 200, body: 'ok' }], '::1');
    target = await startHttpReceiver();
    redirector = await startHttpReceiver([{ status: 302, headers: { location: '' } }]);
    redirector.script[0] = { status: 302, headers: { location: `${target.url}/landed` } };
  });
  afterAll(async () => {
    await Promise.all([v4.close(), v6.close(), target.close(), redirector.close()]);
  });

  async function post(allow: string[], url: string) {
    const agent = createOutboundAgent(new OutboundPolicy({ allow }), { connectTimeoutMs: 1000 });
    try {
      return await new WebhookNotifier({ receiver: 'hook', url, dispatcher: agent }).send(
        driftGroup('m', 'firing'),
        ctx(),
      );
    } finally {
      await agent.close();
    }
  }

  it.each([
    ['127.0.0.1 literal', () => `${v4.url}/hook`],
    ['[::1] literal', () => `${v6.url}/hook`],
    ['localhost (resolves to loopback)', () => `http://localhost:${v4.port}/hook`],
    ['10.0.0.1', () => 'http://10.0.0.1:9/hook'],
    ['169.254.169.254', () => 'http://169.254.169.254/latest/meta-data/'],
  ])('refuses %s without an allow-list, before any byte is sent', async (_name, url) => {
    const before = v4.requests.length + v6.requests.length;
    const res = await post([], url());
    expect(res.ok).toBe(false);
    expect(res.retryable).toBe(false);
    expect(res.error).toMatch(/refused/);
    expect(v4.requests.length + v6.requests.length).toBe(before);
  });

  it('delivers when allow-listed by address, by CIDR and by host name', async () => {
    expect((await post(['127.0.0.1'], `${v4.url}/a`)).ok).toBe(true);
    expect((await post(['::1'], `${v6.url}/b`)).ok).toBe(true);
    expect((await post(['127.0.0.0/8'], `http://localhost:${v4.port}/c`)).ok).toBe(true);
    expect((await post(['localhost'], `http://localhost:${v4.port}/d`)).ok).toBe(true);
    expect(v4.requests.map((r) => r.url)).toEqual(['/a', '/c', '/d']);
    expect(v6.requests.map((r) => r.url)).toEqual(['/b']);
    // Allowing one host does not open its neighbours.
    const res = await post(['localhost'], `${v4.url}/e`);
    expect(res.ok).toBe(false);
  });

  it('does not follow a redirect, even to an allowed host (undici request)', async () => {
    const res = await post(['127.0.0.1'], `${redirector.url}/hook`);
    expect(res).toMatchObject({ ok: false, status: 302, retryable: false });
    expect(res.error).toMatch(/redirects are not followed/);
    expect(redirector.requests).toHaveLength(1);
    expect(target.requests).toHaveLength(0);
  });

  it('does not follow a redirect through the Slack client (fetch path)', async () => {
    const agent = createOutboundAgent(new OutboundPolicy({ allow: ['127.0.0.1'] }));
    const slack = new SlackNotifier({
      webhookUrl: `${redirector.url}/services/T0/B0/redirectsecret`,
      dispatcher: agent,
    });
    const res = await slack.send(driftGroup('m', 'firing'), ctx());
    await agent.close();
    expect(res.ok).toBe(false);
    expect(res.retryable).toBe(false);
    expect(target.requests).toHaveLength(0);
    expect(res.error ?? '').not.toContain('redirectsecret');
  });

  it('refusal errors are ModelwatchErrors with code outbound_refused', async () => {
    const p = new OutboundPolicy();
    const err = await p.resolve('localhost').catch((e: unknown) => e);
    expect(isModelwatchError(err, 'outbound_refused')).toBe(true);
  });
});

describe('Redactor', () => {
  it('removes the URL, its path and its long segments', () => {
    const url = 'https://hooks.slack.com/services/T000/B000/CANARYsecret123';
    const r = new Redactor(Redactor.urlSecrets(url));
    const text = r.redact(`POST ${url} failed; path /services/T000/B000/CANARYsecret123; token CANARYsecret123`);
    expect(text).not.toContain('CANARYsecret123');
    expect(text).toContain('[redacted]');
  });
});
