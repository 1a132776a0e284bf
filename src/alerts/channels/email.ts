import nodemailer from 'nodemailer';
import { ErrorCodes, ModelwatchError } from '../../common/errors.js';
import { groupModel, groupTitle, type AlertNotification, type NotificationGroup } from '../notification.js';
import type { Notifier, NotifyContext, NotifyResult } from '../notifier.js';
import type { OutboundPolicy } from '../outbound.js';
import { describeError, Redactor } from '../redact.js';
import {
  alertName,
  alertTextLines,
  describeCrossing,
  describeFeatures,
  describeReference,
  describeSamples,
  describeWindow,
  extraLabels,
} from '../render.js';
import { transportFailure } from '../http-post.js';

/** A rendered email: subject, plain-text and HTML parts. */
export interface EmailMessage {
  subject: string;
  text: string;
  html: string;
}

function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function safeHref(url: string): string | undefined {
  // Only http(s) links; a javascript: URL in an annotation must not become a link.
  return /^https?:\/\//i.test(url) ? escapeHtml(url) : undefined;
}

function htmlLink(url: string | undefined, label: string): string {
  if (!url) return '';
  const href = safeHref(url);
  return href ? `<a href="${href}">${escapeHtml(label)}</a>` : escapeHtml(url);
}

function alertHtml(a: AlertNotification, group: NotificationGroup, maxFeatures: number): string {
  const rows: [string, string][] = [];
  const e = a.evidence;
  if (a.annotations['summary']) rows.push(['Summary', escapeHtml(a.annotations['summary'])]);
  if (a.annotations['description']) rows.push(['Description', escapeHtml(a.annotations['description'])]);
  if (e !== undefined) {
    rows.push(['Value', escapeHtml(describeCrossing(e))]);
    const w = describeWindow(e.window);
    if (w) rows.push(['Window', escapeHtml(w)]);
    const s = describeSamples(e);
    if (s) rows.push(['Samples', escapeHtml(s)]);
    const r = describeReference(e);
    if (r) rows.push(['Reference', escapeHtml(r)]);
    const feats = describeFeatures(e, maxFeatures);
    if (feats.length)
      rows.push(['Top drifted features', `<ul>${feats.map((f) => `<li>${escapeHtml(f)}</li>`).join('')}</ul>`]);
  }
  rows.push(['Since', escapeHtml(a.startsAt + (a.endsAt ? ` (ended ${a.endsAt})` : ''))]);
  const links = [
    htmlLink(a.generatorURL, 'Alert (API)'),
    htmlLink(e?.reportURL, 'Evidence report'),
    htmlLink(a.annotations['runbook_url'], 'Runbook'),
  ].filter((l) => l !== '');
  if (links.length) rows.push(['Links', links.join(' · ')]);
  const labels = extraLabels(a, group);
  const sev = a.labels['severity'];
  const color = a.status === 'firing' ? '#c0392b' : '#27ae60';
  return (
    `<h3 style="color:${color};margin:16px 0 4px">${a.status === 'firing' ? 'FIRING' : 'RESOLVED'} ${escapeHtml(alertName(a))}` +
    `${sev ? ` [${escapeHtml(sev)}]` : ''}${labels.length ? ` <small>${escapeHtml(labels.join(', '))}</small>` : ''}</h3>` +
    `<table cellpadding="4" style="border-collapse:collapse">${rows
      .map(([k, v]) => `<tr><th align="left" valign="top">${k}</th><td>${v}</td></tr>`)
      .join('')}</table>`
  );
}

/** Renders `group` as one email: `[FIRING:N] model …` / `[RESOLVED] model …`, with text and HTML parts. */
export function renderEmail(group: NotificationGroup, maxFeatures = 10): EmailMessage {
  // A subject is a header: no line breaks (header injection), bounded length.
  const subject = groupTitle(group)
    .replace(/[\r\n]+/g, ' ')
    .slice(0, 250);
  const more = group.truncatedAlerts > 0 ? `\n…and ${group.truncatedAlerts} more alerts\n` : '';
  const text =
    [subject, '', ...group.alerts.flatMap((a) => [...alertTextLines(a, group, maxFeatures), ''])].join('\n') +
    more +
    (group.externalURL ? `\nmodelwatch: ${group.externalURL}\n` : '');
  const html =
    `<!doctype html><html><body style="font-family:sans-serif">` +
    `<h2>${escapeHtml(subject)}</h2><p>Model <b>${escapeHtml(groupModel(group))}</b> · group ${escapeHtml(group.groupKey)}</p>` +
    group.alerts.map((a) => alertHtml(a, group, maxFeatures)).join('') +
    (group.truncatedAlerts > 0 ? `<p>…and ${group.truncatedAlerts} more alerts</p>` : '') +
    (group.externalURL ? `<p>${htmlLink(group.externalURL, 'Open modelwatch')}</p>` : '') +
    `</body></html>`;
  return { subject, text, html };
}

/** SMTP connection settings parsed from an `smtp://` / `smtps://` URL. */
export interface SmtpTarget {
  host: string;
  port: number;
  secure: boolean;
  user?: string;
  pass?: string;
  requireTLS: boolean;
  ignoreTLS: boolean;
}

/**
 * Parses `smtp[s]://[user[:pass]@]host[:port][?requireTLS=true|ignoreTLS=true]`. Errors never echo
 * the URL (it carries the password).
 */
export function parseSmtpUrl(url: string): SmtpTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ModelwatchError(ErrorCodes.configInvalid, 'smtp URL: not a valid URL', { field: 'alerts.smtpUrl' });
  }
  if (u.protocol !== 'smtp:' && u.protocol !== 'smtps:') {
    throw new ModelwatchError(ErrorCodes.configInvalid, 'smtp URL: scheme must be smtp or smtps', {
      field: 'alerts.smtpUrl',
    });
  }
  const secure = u.protocol === 'smtps:';
  const host = u.hostname;
  if (!host) throw new ModelwatchError(ErrorCodes.configInvalid, 'smtp URL: host missing', { field: 'alerts.smtpUrl' });
  const flag = (k: string): boolean => u.searchParams.get(k) === 'true';
  return {
    host,
    port: u.port ? Number(u.port) : secure ? 465 : 587,
    secure,
    ...(u.username ? { user: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { pass: decodeURIComponent(u.password) } : {}),
    requireTLS: flag('requireTLS'),
    ignoreTLS: flag('ignoreTLS'),
  };
}

/** Options of {@link EmailNotifier}. */
export interface EmailNotifierOptions {
  /** `smtp://user:pass@host:587` or `smtps://…` (`MODELWATCH_SMTP_URL`). */
  smtpUrl: string;
  /** Recipients (`MODELWATCH_ALERT_EMAIL_TO`). */
  to: string[];
  /** Sender. @default "modelwatch <modelwatch@localhost>" */
  from?: string;
  /** Checks the SMTP server's address before connecting. */
  policy: OutboundPolicy;
  /** Connection, greeting and socket-inactivity timeout (nodemailer's defaults are minutes). @default 10000 */
  timeoutMs?: number;
  /** Drifted features listed per alert. @default 10 */
  maxFeatures?: number;
}

/**
 * Email through nodemailer: one message per group. The SMTP host is resolved and checked by the
 * outbound policy first; nodemailer then connects to that address, with `tls.servername` set to
 * the host name so STARTTLS/TLS still verify the certificate.
 */
export class EmailNotifier implements Notifier {
  readonly kind = 'email';
  private readonly target: SmtpTarget;
  private readonly to: string[];
  private readonly from: string;
  private readonly policy: OutboundPolicy;
  private readonly timeoutMs: number;
  private readonly maxFeatures: number;
  private readonly redactor: Redactor;

  constructor(options: EmailNotifierOptions) {
    this.target = parseSmtpUrl(options.smtpUrl);
    if (options.to.length === 0) {
      throw new ModelwatchError(ErrorCodes.configInvalid, 'email: no recipient (MODELWATCH_ALERT_EMAIL_TO)', {
        field: 'alerts.emailTo',
      });
    }
    this.to = options.to;
    this.from = options.from ?? 'modelwatch <modelwatch@localhost>';
    this.policy = options.policy;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.maxFeatures = options.maxFeatures ?? 10;
    this.redactor = new Redactor([options.smtpUrl, this.target.pass, ...Redactor.urlSecrets(options.smtpUrl)]);
  }

  async send(group: NotificationGroup, context: NotifyContext): Promise<NotifyResult> {
    let address: string;
    try {
      ({ address } = await this.policy.resolve(this.target.host));
    } catch (err) {
      return transportFailure(err, this.redactor, context.signal);
    }
    const t = this.target;
    const transport = nodemailer.createTransport({
      host: address,
      port: t.port,
      secure: t.secure,
      requireTLS: t.requireTLS,
      ignoreTLS: t.ignoreTLS,
      ...(t.user !== undefined ? { auth: { user: t.user, pass: t.pass ?? '' } } : {}),
      tls: { servername: t.host },
      connectionTimeout: this.timeoutMs,
      greetingTimeout: this.timeoutMs,
      socketTimeout: this.timeoutMs,
      logger: false,
      debug: false,
    });
    const onAbort = (): void => transport.close();
    context.signal.addEventListener('abort', onAbort, { once: true });
    try {
      const msg = renderEmail(group, this.maxFeatures);
      const info = (await transport.sendMail({ from: this.from, to: this.to, ...msg })) as {
        accepted?: unknown[];
        rejected?: unknown[];
      };
      if ((info.accepted?.length ?? 0) === 0) {
        return { ok: false, retryable: false, status: 550, error: 'SMTP server accepted no recipient' };
      }
      return { ok: true, status: 250 };
    } catch (err) {
      return smtpFailure(err, this.redactor, context.signal);
    } finally {
      context.signal.removeEventListener('abort', onAbort);
      transport.close();
    }
  }
}

function smtpFailure(err: unknown, redactor: Redactor, signal: AbortSignal): NotifyResult {
  if (signal.aborted) return { ok: false, retryable: true, error: 'attempt timed out' };
  const e = err as { responseCode?: unknown; code?: unknown };
  const status = typeof e.responseCode === 'number' ? e.responseCode : undefined;
  // RFC 5321: 4yz transient, 5yz permanent. Bad credentials will not get better by retrying.
  const retryable = status !== undefined ? status < 500 : e.code !== 'EAUTH' && e.code !== 'EENVELOPE';
  return { ok: false, retryable, ...(status !== undefined ? { status } : {}), error: describeError(err, redactor) };
}
