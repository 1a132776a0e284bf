import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import type { Logger } from '../../src/common/index.js';
import {
  buildNotificationGroup,
  type AlertNotification,
  type NotificationGroup,
  type NotificationLog,
  type NotificationLogEntry,
} from '../../src/alerts/index.js';

/** One request a stand-in receiver got. */
export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  /** performance.now() when the request body had arrived. */
  at: number;
  /** The status the stand-in answered (undefined while hanging). */
  answered?: number;
}

/** How a stand-in answers one request. */
export type Reply =
  | { status: number; headers?: Record<string, string>; body?: string }
  | 'hang'
  | ((req: ReceivedRequest) => { status: number; headers?: Record<string, string>; body?: string } | 'hang');

/** A real HTTP server on loopback standing in for Slack, Grafana, a webhook or Alertmanager. */
export interface HttpReceiver {
  url: string;
  port: number;
  requests: ReceivedRequest[];
  /** Replies used in order; the last one repeats. */
  script: Reply[];
  close(): Promise<void>;
}

/** Starts a stand-in on `host` (default 127.0.0.1) answering with `script` (default: 200 "ok"). */
export async function startHttpReceiver(
  script: Reply[] = [{ status: 200, body: 'ok' }],
  host = '127.0.0.1',
): Promise<HttpReceiver> {
  const requests: ReceivedRequest[] = [];
  const hanging = new Set<ServerResponse>();
  const receiver: HttpReceiver = { url: '', port: 0, requests, script, close: () => Promise.resolve() };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: ReceivedRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: performance.now(),
      };
      requests.push(r);
      const idx = Math.min(requests.length - 1, receiver.script.length - 1);
      let reply = receiver.script[idx] ?? { status: 200, body: 'ok' };
      if (typeof reply === 'function') reply = reply(r);
      if (reply === 'hang') {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }
      r.answered = reply.status;
      res.writeHead(reply.status, { 'content-type': 'text/plain', ...reply.headers });
      res.end(reply.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  receiver.port = port;
  receiver.url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  receiver.close = () =>
    new Promise<void>((resolve) => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver;
}

/** A real SMTP server (smtp-server) on loopback; received messages are parsed with mailparser. */
export interface SmtpReceiver {
  port: number;
  url: string;
  messages: ParsedMail[];
  /** Raw messages, to grep for secrets. */
  raw: string[];
  /** Failed AUTH attempts. */
  authFailures: number;
  /** Resolves once every received message is parsed into `messages`. */
  settled(): Promise<void>;
  close(): Promise<void>;
}

/** Starts an SMTP server that requires AUTH with `user`/`pass` (no TLS: loopback only). */
export async function startSmtpReceiver(user: string, pass: string): Promise<SmtpReceiver> {
  const messages: ParsedMail[] = [];
  const raw: string[] = [];
  const state = { authFailures: 0 };
  const parsing: Promise<void>[] = [];
  const server = new SMTPServer({
    secure: false,
    disabledCommands: ['STARTTLS'],
    // smtp-server looks up the client's reverse DNS before its greeting; slow in sandboxes, useless on loopback.
    disableReverseLookup: true,
    allowInsecureAuth: true,
    authOptional: false,
    logger: false,
    onAuth(auth, _session, cb) {
      if (auth.username === user && auth.password === pass) return cb(null, { user: auth.username });
      state.authFailures++;
      return cb(new Error('Invalid username or password'));
    },
    onData(stream, _session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        raw.push(text);
        // Acknowledge first, as a real server queues the message; parsing follows (see settled()).
        cb();
        parsing.push(simpleParser(text).then((mail) => void messages.push(mail)));
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    url: `smtp://${encodeURIComponent(user)}:${encodeURIComponent(pass)}@127.0.0.1:${port}`,
    messages,
    raw,
    get authFailures() {
      return state.authFailures;
    },
    settled: async () => {
      await Promise.all(parsing);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A logger that keeps every line as the JSON the default logger would write. */
export function captureLogger(): Logger & { lines: string[]; text(): string } {
  const lines: string[] = [];
  const write =
    (level: string) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      lines.push(JSON.stringify({ level, msg, ...fields }));
    };
  return {
    lines,
    text: () => lines.join('\n'),
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
  };
}

/**
 * The notification log as a list. The runtime's adapter writes to ClickHouse (`mw_notifications`),
 * wired outside the alerts folder; here the test reads what the delivery layer recorded.
 */
export class MemoryNotificationLog implements NotificationLog {
  readonly entries: (NotificationLogEntry & { recordedAt: number })[] = [];
  record(entry: NotificationLogEntry): Promise<void> {
    this.entries.push({ ...entry, recordedAt: performance.now() });
    return Promise.resolve();
  }
  for(receiver: string): (NotificationLogEntry & { recordedAt: number })[] {
    return this.entries.filter((e) => e.receiver === receiver);
  }
}

/** A drift alert of model `model` with evidence naming drifted features. */
export function driftAlert(
  model: string,
  status: 'firing' | 'resolved',
  overrides: Partial<AlertNotification> = {},
): AlertNotification {
  return {
    status,
    fingerprint: `fp-${model}-dataset`,
    labels: { alertname: 'dataset_drift', model, severity: 'critical' },
    annotations: {
      summary: `Dataset drift on ${model}: 40% of features drifted`,
      description: 'Share of drifted features above threshold for 2 consecutive windows.',
      runbook_url: 'https://runbooks.example.com/drift',
    },
    startsAt: '2024-05-01T10:00:00.000Z',
    ...(status === 'resolved' ? { endsAt: '2024-05-01T12:00:00.000Z' } : {}),
    generatorURL: `http://127.0.0.1:9400/api/v1/alerts/a-${model}`,
    evidence: {
      signal: 'dataset_drift_share',
      value: 0.4,
      comparison: '>',
      threshold: 0.3,
      window: { from: '2024-05-01T09:00:00.000Z', to: '2024-05-01T10:00:00.000Z' },
      reference: { id: 'ref-7', window: { from: '2024-04-30T00:00:00.000Z', to: '2024-04-30T01:00:00.000Z' } },
      sampleSizes: { reference: 5000, current: 1200 },
      method: 'ks',
      topFeatures: [
        { feature: 'income', method: 'ks', score: 0.41, pValue: 0.0001, threshold: 0.05, drifted: true },
        { feature: 'age', method: 'ks', score: 0.22, pValue: 0.003, threshold: 0.05, drifted: true },
      ],
      reportURL: `http://127.0.0.1:9400/api/v1/alerts/a-${model}/report`,
    },
    ...overrides,
  };
}

/** A one-alert group for `model`. */
export function driftGroup(model: string, status: 'firing' | 'resolved'): NotificationGroup {
  return buildNotificationGroup({
    groupKey: `{}:{model="${model}"}`,
    groupLabels: { model },
    externalURL: 'http://127.0.0.1:9400',
    alerts: [driftAlert(model, status)],
  });
}
