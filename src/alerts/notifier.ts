import type { NotificationGroup } from './notification.js';

/** What one delivery attempt gets besides the notification. */
export interface NotifyContext {
  /** Aborted when the attempt's timeout elapses or delivery shuts down; channels stop their I/O on it. */
  signal: AbortSignal;
  /** 1 for the first attempt. */
  attempt: number;
}

/** The outcome of one delivery attempt. Error texts are already free of secrets. */
export interface NotifyResult {
  /** True when the receiver acknowledged (HTTP 2xx, SMTP 250). */
  ok: boolean;
  /** HTTP status (or SMTP reply code) of the last response, when one arrived. */
  status?: number;
  /** Why it failed, without URLs, tokens or passwords. */
  error?: string;
  /** The receiver asked to wait this long before the next attempt (HTTP `Retry-After`). */
  retryAfterMs?: number;
  /** Whether another attempt may succeed. @default true when not ok */
  retryable?: boolean;
}

/**
 * The port every channel implements. `send` never throws: failures come back as `{ ok: false }`.
 * Implementations are identified by the receiver NAME they are registered under, never by a URL.
 */
export interface Notifier {
  /** Channel kind, for logs (`slack`, `email`, `grafana`, `webhook`, `alertmanager`, `log`). */
  readonly kind: string;
  send(group: NotificationGroup, context: NotifyContext): Promise<NotifyResult>;
  /** Releases sockets and pools. */
  close?(): Promise<void>;
}
