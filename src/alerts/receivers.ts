import type { Logger } from '../common/logger.js';
import { AlertmanagerNotifier } from './channels/alertmanager.js';
import { EmailNotifier } from './channels/email.js';
import { GrafanaNotifier, type AnnotationStore } from './channels/grafana.js';
import { LogNotifier } from './channels/log.js';
import { SlackNotifier } from './channels/slack.js';
import { WebhookNotifier } from './channels/webhook.js';
import type { Receiver } from './delivery.js';
import { createOutboundAgent, OutboundPolicy, type OutboundAgentOptions } from './outbound.js';

/**
 * The channels to build, from configuration and environment. Every channel is optional except the
 * log. Secrets given here are only ever held by the notifier that needs them.
 */
export interface ReceiversOptions {
  /** `MODELWATCH_SLACK_WEBHOOK_URL`. */
  slackWebhookUrl?: string;
  /** `MODELWATCH_SMTP_URL`. */
  smtpUrl?: string;
  /** `MODELWATCH_ALERT_EMAIL_TO` (split on commas by the caller). @default [] */
  emailTo?: string[];
  /** Sender address. @default "modelwatch <modelwatch@localhost>" */
  emailFrom?: string;
  /** `MODELWATCH_GRAFANA_URL`. */
  grafanaUrl?: string;
  /** `MODELWATCH_GRAFANA_TOKEN`; Grafana is enabled when both URL and token are set. */
  grafanaToken?: string;
  /** Where Grafana annotation ids are kept between firing and resolve. @default in memory */
  annotationStore?: AnnotationStore;
  /** `alerts.webhookUrls`: each gets the Alertmanager webhook body. @default [] */
  webhookUrls?: string[];
  /** `alerts.alertmanagerUrl`: push alerts to an existing Alertmanager. */
  alertmanagerUrl?: string;
  /** `alerts.outboundAllow` / `MODELWATCH_OUTBOUND_ALLOW`. @default [] */
  outboundAllow?: string[];
  /** Timeouts of the outbound HTTP agent. */
  http?: OutboundAgentOptions;
  /** SMTP connection/greeting/socket timeout. @default 10000 */
  smtpTimeoutMs?: number;
  /** Logger of the log channel. */
  logger: Logger;
}

/** The built receivers and what they share. */
export interface BuiltReceivers {
  receivers: Receiver[];
  policy: OutboundPolicy;
  /** Closes the shared outbound agent. */
  close(): Promise<void>;
}

/**
 * Builds the configured receivers, named `slack`, `email`, `grafana`, `webhook` (`webhook-1`,
 * `webhook-2`… when several), `alertmanager` and `log` (always). All HTTP channels share one
 * outbound-checked undici agent; email checks its SMTP host with the same policy. Misconfiguration
 * (bad URL, email without recipient, bad allow-list entry) throws here, at start-up.
 */
export function createReceivers(options: ReceiversOptions): BuiltReceivers {
  const policy = new OutboundPolicy({ allow: options.outboundAllow ?? [] });
  const agent = createOutboundAgent(policy, options.http);
  const receivers: Receiver[] = [];
  if (options.slackWebhookUrl) {
    receivers.push({
      name: 'slack',
      notifier: new SlackNotifier({ webhookUrl: options.slackWebhookUrl, dispatcher: agent }),
    });
  }
  if (options.smtpUrl) {
    receivers.push({
      name: 'email',
      notifier: new EmailNotifier({
        smtpUrl: options.smtpUrl,
        to: options.emailTo ?? [],
        ...(options.emailFrom !== undefined ? { from: options.emailFrom } : {}),
        policy,
        ...(options.smtpTimeoutMs !== undefined ? { timeoutMs: options.smtpTimeoutMs } : {}),
      }),
    });
  }
  if (options.grafanaUrl && options.grafanaToken) {
    receivers.push({
      name: 'grafana',
      notifier: new GrafanaNotifier({
        receiver: 'grafana',
        grafanaUrl: options.grafanaUrl,
        token: options.grafanaToken,
        dispatcher: agent,
        ...(options.annotationStore !== undefined ? { store: options.annotationStore } : {}),
      }),
    });
  }
  const hooks = options.webhookUrls ?? [];
  hooks.forEach((url, i) => {
    const name = hooks.length === 1 ? 'webhook' : `webhook-${i + 1}`;
    receivers.push({ name, notifier: new WebhookNotifier({ receiver: name, url, dispatcher: agent }) });
  });
  if (options.alertmanagerUrl) {
    receivers.push({
      name: 'alertmanager',
      notifier: new AlertmanagerNotifier({ alertmanagerUrl: options.alertmanagerUrl, dispatcher: agent }),
    });
  }
  receivers.push({ name: 'log', notifier: new LogNotifier(options.logger) });
  return { receivers, policy, close: () => agent.close() };
}
