import type { Dispatcher } from 'undici';
import { sendJson } from '../http-post.js';
import { toAlertmanagerWebhook, type NotificationGroup } from '../notification.js';
import type { Notifier, NotifyContext, NotifyResult } from '../notifier.js';
import { parseHttpUrl } from '../outbound.js';
import { Redactor } from '../redact.js';

/** Options of {@link WebhookNotifier}. */
export interface WebhookNotifierOptions {
  /** Receiver name, sent as the body's `receiver` (never the URL). */
  receiver: string;
  /** Target URL (`alerts.webhookUrls[]`); treated as a secret. */
  url: string;
  /** The outbound-checked dispatcher. */
  dispatcher: Dispatcher;
  /** Extra headers (e.g. `authorization`); their values are redacted from errors. @default {} */
  headers?: Record<string, string>;
  /** Add each alert's `evidence` object to the Alertmanager body. @default true */
  includeEvidence?: boolean;
}

/** A generic webhook receiving Alertmanager's webhook JSON (`version: "4"`), so any Alertmanager consumer accepts it. */
export class WebhookNotifier implements Notifier {
  readonly kind = 'webhook';
  private readonly receiver: string;
  private readonly url: URL;
  private readonly dispatcher: Dispatcher;
  private readonly headers: Record<string, string>;
  private readonly includeEvidence: boolean;
  private readonly redactor: Redactor;

  constructor(options: WebhookNotifierOptions) {
    this.receiver = options.receiver;
    this.url = parseHttpUrl(options.url, `webhook ${options.receiver} URL`);
    this.dispatcher = options.dispatcher;
    this.headers = options.headers ?? {};
    this.includeEvidence = options.includeEvidence ?? true;
    this.redactor = new Redactor([...Redactor.urlSecrets(options.url), ...Object.values(this.headers)]);
  }

  async send(group: NotificationGroup, context: NotifyContext): Promise<NotifyResult> {
    const { result } = await sendJson({
      url: this.url,
      method: 'POST',
      body: toAlertmanagerWebhook(group, this.receiver, this.includeEvidence),
      headers: this.headers,
      dispatcher: this.dispatcher,
      signal: context.signal,
      redactor: this.redactor,
    });
    return result;
  }
}
