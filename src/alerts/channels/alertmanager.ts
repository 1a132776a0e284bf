import type { Dispatcher } from 'undici';
import { sendJson } from '../http-post.js';
import { toPostableAlerts, type NotificationGroup } from '../notification.js';
import type { Notifier, NotifyContext, NotifyResult } from '../notifier.js';
import { parseHttpUrl } from '../outbound.js';
import { Redactor } from '../redact.js';

/** Options of {@link AlertmanagerNotifier}. */
export interface AlertmanagerNotifierOptions {
  /** Alertmanager base URL (`alerts.alertmanagerUrl`), e.g. `http://alertmanager:9093`. */
  alertmanagerUrl: string;
  /** The outbound-checked dispatcher. */
  dispatcher: Dispatcher;
  /**
   * `endsAt` given to firing alerts, from now: Alertmanager resolves an alert by itself once this
   * passes without a new push, so pushes must come more often than this.
   * @default 3600000
   */
  activeForMs?: number;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
}

/** Pushes the group's alerts to an existing Alertmanager: `POST {url}/api/v2/alerts` with postable alerts. */
export class AlertmanagerNotifier implements Notifier {
  readonly kind = 'alertmanager';
  private readonly url: URL;
  private readonly dispatcher: Dispatcher;
  private readonly activeForMs: number;
  private readonly now: () => number;
  private readonly redactor: Redactor;

  constructor(options: AlertmanagerNotifierOptions) {
    const base = parseHttpUrl(options.alertmanagerUrl, 'alerts.alertmanagerUrl');
    this.url = new URL(base.href);
    this.url.pathname = `${base.pathname.replace(/\/+$/, '')}/api/v2/alerts`;
    this.dispatcher = options.dispatcher;
    this.activeForMs = options.activeForMs ?? 3_600_000;
    this.now = options.now ?? Date.now;
    this.redactor = new Redactor(Redactor.urlSecrets(options.alertmanagerUrl));
  }

  async send(group: NotificationGroup, context: NotifyContext): Promise<NotifyResult> {
    const { result } = await sendJson({
      url: this.url,
      method: 'POST',
      body: toPostableAlerts(group, this.now(), this.activeForMs),
      dispatcher: this.dispatcher,
      signal: context.signal,
      redactor: this.redactor,
    });
    return result;
  }
}
