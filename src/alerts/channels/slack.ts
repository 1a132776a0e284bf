import {
  IncomingWebhook,
  IncomingWebhookHTTPError,
  IncomingWebhookRequestError,
  type FetchFunction,
  type IncomingWebhookSendArguments,
} from '@slack/webhook';
import { fetch as undiciFetch, type Dispatcher } from 'undici';
import { classifyStatus, parseRetryAfter, transportFailure } from '../http-post.js';
import { groupModel, groupTitle, type AlertNotification, type NotificationGroup } from '../notification.js';
import type { Notifier, NotifyContext, NotifyResult } from '../notifier.js';
import { parseHttpUrl } from '../outbound.js';
import { Redactor } from '../redact.js';
import {
  alertName,
  alertTextLines,
  describeCrossing,
  describeFeatures,
  describeReference,
  describeSamples,
  describeWindow,
  extraLabels,
  truncate,
} from '../render.js';

/** Block Kit limits (https://api.slack.com/reference/block-kit/blocks). */
export const SlackLimits = {
  /** Blocks per message. */
  maxBlocks: 50,
  /** Characters of a section's text. */
  maxSectionText: 3000,
  /** Characters of a header block's plain text. */
  maxHeaderText: 150,
  /** Elements of a context block. */
  maxContextElements: 10,
  /** Characters we allow the top-level `text` fallback (Slack truncates at 40,000). */
  maxFallbackText: 3000,
} as const;

type Block = NonNullable<IncomingWebhookSendArguments['blocks']>[number];

/** A Slack message: Block Kit blocks plus the plain-text fallback (`text`) notifications show. */
export interface SlackMessage {
  text: string;
  blocks: Block[];
}

/** Escapes the three characters Slack's mrkdwn treats as control characters. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function link(url: string, label: string): string {
  // `|`, `<` and `>` would end the link early; percent-encode them inside the URL.
  const safe = url.replace(/\|/g, '%7C').replace(/</g, '%3C').replace(/>/g, '%3E');
  return `<${safe}|${escapeMrkdwn(label)}>`;
}

function alertSection(a: AlertNotification, group: NotificationGroup, maxFeatures: number): string {
  const icon = a.status === 'firing' ? ':red_circle:' : ':large_green_circle:';
  const sev = a.labels['severity'];
  const labels = extraLabels(a, group);
  const lines = [
    `${icon} *${a.status === 'firing' ? 'FIRING' : 'RESOLVED'}* \`${escapeMrkdwn(alertName(a))}\`${sev ? ` [${escapeMrkdwn(sev)}]` : ''}${labels.length ? ` ${escapeMrkdwn(labels.join(', '))}` : ''}`,
  ];
  const summary = a.annotations['summary'];
  if (summary) lines.push(escapeMrkdwn(summary));
  const e = a.evidence;
  if (e !== undefined) {
    lines.push(`*Value:* ${escapeMrkdwn(describeCrossing(e))}`);
    const facts: string[] = [];
    const w = describeWindow(e.window);
    if (w) facts.push(`*Window:* ${escapeMrkdwn(w)}`);
    const s = describeSamples(e);
    if (s) facts.push(`*Samples:* ${escapeMrkdwn(s)}`);
    const r = describeReference(e);
    if (r) facts.push(`*Reference:* ${escapeMrkdwn(r)}`);
    if (facts.length) lines.push(facts.join('\n'));
    const feats = describeFeatures(e, maxFeatures);
    if (feats.length) lines.push(`*Top drifted features:*\n${feats.map((f) => `• ${escapeMrkdwn(f)}`).join('\n')}`);
  }
  const links: string[] = [];
  if (a.generatorURL) links.push(link(a.generatorURL, 'Alert (API)'));
  if (e?.reportURL) links.push(link(e.reportURL, 'Evidence report'));
  const runbook = a.annotations['runbook_url'];
  if (runbook) links.push(link(runbook, 'Runbook'));
  // Links go last and are kept whole by truncate(); put them first when the body alone is too long.
  const body = lines.join('\n');
  const tail = links.length ? `\n${links.join(' · ')}` : '';
  if (body.length + tail.length <= SlackLimits.maxSectionText) return body + tail;
  return truncate(body, SlackLimits.maxSectionText - tail.length) + tail;
}

/**
 * Renders `group` as a Block Kit message within Slack's limits: a header, a context line, one section
 * per alert (with dividers), and a footer with the UI link and the number of alerts left out.
 */
export function renderSlackMessage(group: NotificationGroup, maxFeatures = 5): SlackMessage {
  const title = groupTitle(group);
  const blocks: Block[] = [
    { type: 'header', text: { type: 'plain_text', text: truncate(title, SlackLimits.maxHeaderText), emoji: true } },
  ];
  const severity = group.commonLabels['severity'];
  blocks.push({
    type: 'context',
    elements: [
      {
        type: 'mrkdwn',
        text: truncate(
          `*Model:* ${escapeMrkdwn(groupModel(group))}${severity ? `  *Severity:* ${escapeMrkdwn(severity)}` : ''}  *Group:* ${escapeMrkdwn(group.groupKey)}`,
          SlackLimits.maxSectionText,
        ),
      },
    ],
  });
  // header + context + footer, and two blocks (section + divider) per alert.
  const room = Math.floor((SlackLimits.maxBlocks - 3) / 2);
  const shown = group.alerts.slice(0, room);
  shown.forEach((a, i) => {
    if (i > 0) blocks.push({ type: 'divider' });
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: alertSection(a, group, maxFeatures) } });
  });
  const omitted = group.alerts.length - shown.length + group.truncatedAlerts;
  const footer: string[] = [];
  if (omitted > 0) footer.push(`…and ${omitted} more alert${omitted === 1 ? '' : 's'}`);
  if (group.externalURL) footer.push(link(group.externalURL, 'Open modelwatch'));
  if (footer.length) blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: footer.join('  ·  ') }] });

  const fallback = [title, ...group.alerts.flatMap((a) => alertTextLines(a, group, maxFeatures))].join('\n');
  return { text: truncate(fallback, SlackLimits.maxFallbackText), blocks };
}

/** Options of {@link SlackNotifier}. */
export interface SlackNotifierOptions {
  /** The incoming-webhook URL. It is the credential: it never appears in logs or errors. */
  webhookUrl: string;
  /** The outbound-checked dispatcher ({@link createOutboundAgent}). */
  dispatcher: Dispatcher;
  /** Drifted features listed per alert. @default 5 */
  maxFeatures?: number;
}

/**
 * Slack through `@slack/webhook`'s `IncomingWebhook`. The library sends with `fetch`; we hand it
 * undici's fetch bound to the outbound-checked agent (so the connect-time address check and the
 * no-redirect rule hold), read `Retry-After` off the response it got, and turn its errors, whose
 * `original` may carry the URL, into redacted texts.
 */
export class SlackNotifier implements Notifier {
  readonly kind = 'slack';
  private readonly url: string;
  private readonly dispatcher: Dispatcher;
  private readonly redactor: Redactor;
  private readonly maxFeatures: number;

  constructor(options: SlackNotifierOptions) {
    this.url = parseHttpUrl(options.webhookUrl, 'slack webhook URL').href;
    this.dispatcher = options.dispatcher;
    this.redactor = new Redactor(Redactor.urlSecrets(options.webhookUrl));
    this.maxFeatures = options.maxFeatures ?? 5;
  }

  async send(group: NotificationGroup, context: NotifyContext): Promise<NotifyResult> {
    let last: { status: number; retryAfter: string | null } | undefined;
    const fetchFn: FetchFunction = async (url, init) => {
      const res = await undiciFetch(url, {
        method: init?.method ?? 'POST',
        headers: init?.headers ?? {},
        body: typeof init?.body === 'string' ? init.body : null,
        // 'manual' hands the 3xx back as a response: the client reports it as an HTTP error, which
        // classifyStatus makes final ('error' would surface as a retryable network failure).
        redirect: 'manual',
        signal: context.signal,
        dispatcher: this.dispatcher,
      });
      last = { status: res.status, retryAfter: res.headers.get('retry-after') };
      return res;
    };
    const hook = new IncomingWebhook(this.url, { fetch: fetchFn, timeout: 0, retryConfig: { retries: 0 } });
    try {
      await hook.send(renderSlackMessage(group, this.maxFeatures));
      return { ok: true, status: last?.status ?? 200 };
    } catch (err) {
      if (err instanceof IncomingWebhookHTTPError) {
        return classifyStatus(err.statusCode, parseRetryAfter(last?.retryAfter));
      }
      const original = err instanceof IncomingWebhookRequestError ? err.original : err;
      return transportFailure(original, this.redactor, context.signal);
    }
  }
}
