import type { Dispatcher } from 'undici';
import { sendJson } from '../http-post.js';
import type { AlertNotification, NotificationGroup } from '../notification.js';
import type { Notifier, NotifyContext, NotifyResult } from '../notifier.js';
import { parseHttpUrl } from '../outbound.js';
import { Redactor } from '../redact.js';
import { alertName, describeCrossing, truncate } from '../render.js';

/**
 * Where the Grafana annotation id of each firing alert is kept between its firing and its resolve
 * (so the resolve PATCHes the region instead of creating a second one, and a retry does not post a
 * duplicate). Keyed by receiver name and alert fingerprint. The ClickHouse adapter is wired by the
 * runtime (DDL: {@link MW_ALERT_ANNOTATIONS_DDL}); {@link MemoryAnnotationStore} serves one process.
 */
export interface AnnotationStore {
  get(receiver: string, fingerprint: string): Promise<number | undefined>;
  set(receiver: string, fingerprint: string, annotationId: number): Promise<void>;
  delete(receiver: string, fingerprint: string): Promise<void>;
}

/** An {@link AnnotationStore} in memory: right for a single process and for tests. */
export class MemoryAnnotationStore implements AnnotationStore {
  private readonly ids = new Map<string, number>();
  get(receiver: string, fingerprint: string): Promise<number | undefined> {
    return Promise.resolve(this.ids.get(`${receiver}\u0000${fingerprint}`));
  }
  set(receiver: string, fingerprint: string, annotationId: number): Promise<void> {
    this.ids.set(`${receiver}\u0000${fingerprint}`, annotationId);
    return Promise.resolve();
  }
  delete(receiver: string, fingerprint: string): Promise<void> {
    this.ids.delete(`${receiver}\u0000${fingerprint}`);
    return Promise.resolve();
  }
}

export { MW_ALERT_ANNOTATIONS_DDL } from '../tables.js';

/** Options of {@link GrafanaNotifier}. */
export interface GrafanaNotifierOptions {
  /** Receiver name, the key under which annotation ids are stored. @default "grafana" */
  receiver?: string;
  /** Grafana base URL (`MODELWATCH_GRAFANA_URL`), e.g. `https://grafana.example.com`. */
  grafanaUrl: string;
  /** Service-account token (`MODELWATCH_GRAFANA_TOKEN`), sent as `Authorization: Bearer`. */
  token: string;
  /** The outbound-checked dispatcher. */
  dispatcher: Dispatcher;
  /** Where annotation ids live between firing and resolve. @default a MemoryAnnotationStore */
  store?: AnnotationStore;
  /** Scope annotations to one dashboard; unset = organisation-wide, filtered by tags. */
  dashboardUID?: string;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
}

/**
 * Grafana annotations: one region per alert (fingerprint), tagged `modelwatch`, `model:<name>`,
 * `rule:<name>` and `severity:<level>`. Firing posts `POST /api/annotations` and stores the id it
 * returns; the resolve closes the region with `PATCH /api/annotations/:id` (`timeEnd`). A resolve
 * with no stored id (or whose annotation was deleted: 404) posts a closed region. Alerts already
 * annotated are skipped on repeats and retries, so a retried group does not duplicate regions.
 */
export class GrafanaNotifier implements Notifier {
  readonly kind = 'grafana';
  private readonly receiver: string;
  private readonly base: URL;
  private readonly token: string;
  private readonly dispatcher: Dispatcher;
  private readonly store: AnnotationStore;
  private readonly dashboardUID: string | undefined;
  private readonly now: () => number;
  private readonly redactor: Redactor;

  constructor(options: GrafanaNotifierOptions) {
    this.receiver = options.receiver ?? 'grafana';
    this.base = parseHttpUrl(options.grafanaUrl, 'grafana URL');
    this.token = options.token;
    this.dispatcher = options.dispatcher;
    this.store = options.store ?? new MemoryAnnotationStore();
    this.dashboardUID = options.dashboardUID;
    this.now = options.now ?? Date.now;
    this.redactor = new Redactor([
      options.token,
      `Bearer ${options.token}`,
      ...Redactor.urlSecrets(options.grafanaUrl),
    ]);
  }

  private url(path: string): URL {
    const u = new URL(this.base.href);
    u.pathname = `${u.pathname.replace(/\/+$/, '')}${path}`;
    return u;
  }

  private tags(a: AlertNotification): string[] {
    const tags = ['modelwatch'];
    if (a.labels['model']) tags.push(`model:${a.labels['model']}`);
    tags.push(`rule:${alertName(a)}`);
    if (a.labels['severity']) tags.push(`severity:${a.labels['severity']}`);
    return tags;
  }

  private text(a: AlertNotification): string {
    const summary = a.annotations['summary'] ?? alertName(a);
    const crossing = a.evidence ? ` (${describeCrossing(a.evidence)})` : '';
    const link = a.evidence?.reportURL ?? a.generatorURL;
    return truncate(
      `${a.status === 'firing' ? 'FIRING' : 'RESOLVED'} ${summary}${crossing}${link ? ` ${link}` : ''}`,
      2000,
    );
  }

  private async call(method: 'POST' | 'PATCH', path: string, body: unknown, signal: AbortSignal) {
    return sendJson({
      url: this.url(path),
      method,
      body,
      headers: { authorization: `Bearer ${this.token}`, accept: 'application/json' },
      dispatcher: this.dispatcher,
      signal,
      redactor: this.redactor,
    });
  }

  private async post(a: AlertNotification, signal: AbortSignal, closed: boolean): Promise<NotifyResult> {
    const time = Date.parse(a.startsAt);
    const body: Record<string, unknown> = { time, tags: this.tags(a), text: this.text(a) };
    if (closed) body['timeEnd'] = a.endsAt ? Date.parse(a.endsAt) : this.now();
    if (this.dashboardUID !== undefined) body['dashboardUID'] = this.dashboardUID;
    const { result, body: text } = await this.call('POST', '/api/annotations', body, signal);
    if (!result.ok || closed) return result;
    const id = parseId(text);
    if (id === undefined)
      return { ok: false, retryable: false, status: result.status, error: 'Grafana returned no annotation id' };
    await this.store.set(this.receiver, a.fingerprint, id);
    return result;
  }

  async send(group: NotificationGroup, context: NotifyContext): Promise<NotifyResult> {
    let last: NotifyResult = { ok: true, status: 200 };
    try {
      for (const a of group.alerts) {
        const id = await this.store.get(this.receiver, a.fingerprint);
        let r: NotifyResult;
        if (a.status === 'firing') {
          if (id !== undefined) continue; // region already open
          r = await this.post(a, context.signal, false);
        } else if (id === undefined) {
          r = await this.post(a, context.signal, true);
        } else {
          const timeEnd = a.endsAt ? Date.parse(a.endsAt) : this.now();
          r = (
            await this.call(
              'PATCH',
              `/api/annotations/${id}`,
              { time: Date.parse(a.startsAt), timeEnd, tags: this.tags(a), text: this.text(a) },
              context.signal,
            )
          ).result;
          if (r.status === 404) r = await this.post(a, context.signal, true);
          if (r.ok) await this.store.delete(this.receiver, a.fingerprint);
        }
        if (!r.ok) return r; // the retry resumes here: done alerts are skipped through the store
        last = r;
      }
      return last;
    } catch (err) {
      // Only the store can throw here (sendJson does not); retry later.
      return {
        ok: false,
        retryable: true,
        error: this.redactor.redact(err instanceof Error ? err.message : String(err)),
      };
    }
  }
}

function parseId(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  try {
    const v = (JSON.parse(text) as { id?: unknown }).id;
    return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
  } catch {
    return undefined;
  }
}
