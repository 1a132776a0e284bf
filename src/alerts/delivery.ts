import type { Counter, Gauge, Registry } from 'prom-client';
import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import { silentLogger, type Logger } from '../common/logger.js';
import { counterOn, gaugeOn } from '../common/metrics.js';
import { sleep } from '../common/time.js';
import { alertSetHash, type NotificationGroup } from './notification.js';
import type { NotificationLog } from './notification-log.js';
import type { Notifier, NotifyResult } from './notifier.js';

/** A named channel instance. The name is what logs, metrics and the notification log show. */
export interface Receiver {
  /** `slack`, `email`, `webhook-1`…: never a URL. */
  name: string;
  notifier: Notifier;
  /** This receiver's attempt timeout (SMTP dialogues take longer than a webhook POST). @default the delivery's attemptTimeoutMs */
  attemptTimeoutMs?: number;
}

/** Options of {@link NotificationDelivery}. */
export interface NotificationDeliveryOptions {
  receivers: Receiver[];
  /** Where acknowledged and finally failed notifications are recorded. @default none */
  log?: NotificationLog;
  /** @default silentLogger */
  logger?: Logger;
  /** Registry for `modelwatch_notifications_total` and `modelwatch_notification_queue`. @default none */
  metrics?: Registry;
  /** Notifications waiting per receiver (not counting those in flight). @default 1000 */
  maxQueued?: number;
  /** Bytes (JSON size) of the notifications waiting per receiver. @default 8388608 */
  maxQueuedBytes?: number;
  /** Notifications of different groups sent at once per receiver; one group's are always in order. @default 2 */
  concurrency?: number;
  /** Timeout of one attempt; the channel's I/O is aborted when it elapses. @default 10000 */
  attemptTimeoutMs?: number;
  /** First retry delay; doubles each attempt. @default 1000 */
  initialBackoffMs?: number;
  /** Cap of the retry delay. @default 60000 */
  maxBackoffMs?: number;
  /** Randomise each delay to between half and all of it, so receivers are not hit in lockstep. @default true */
  jitter?: boolean;
  /** Attempts per notification before it is given up. @default 10 */
  maxAttempts?: number;
  /** A receiver's `Retry-After` is honoured up to this long. @default 300000 */
  maxRetryAfterMs?: number;
  /** Give up when the next attempt would start later than this after the first. @default 900000 */
  maxRetryDurationMs?: number;
}

const defaults = {
  log: { record: () => Promise.resolve() },
  logger: silentLogger,
  maxQueued: 1000,
  maxQueuedBytes: 8 * 1024 * 1024,
  concurrency: 2,
  attemptTimeoutMs: 10_000,
  initialBackoffMs: 1000,
  maxBackoffMs: 60_000,
  jitter: true,
  maxAttempts: 10,
  maxRetryAfterMs: 300_000,
  maxRetryDurationMs: 900_000,
} satisfies Omit<Required<NotificationDeliveryOptions>, 'receivers' | 'metrics'>;

/** What each receiver's queue holds right now. */
export interface ReceiverQueueStats {
  queued: number;
  queuedBytes: number;
  inFlight: number;
  dropped: number;
  sent: number;
  failed: number;
}

/** Notification outcomes counted in `modelwatch_notifications_total`. */
export const DeliveryOutcomes = ['sent', 'failed', 'retried', 'dropped'] as const;
/** One of {@link DeliveryOutcomes}. */
export type DeliveryOutcome = (typeof DeliveryOutcomes)[number];

interface Job {
  group: NotificationGroup;
  bytes: number;
  enqueuedAt: number;
}

interface Lane {
  receiver: Receiver;
  queue: Job[];
  queuedBytes: number;
  inFlight: Set<string>;
  running: Set<Promise<void>>;
  stats: ReceiverQueueStats;
}

/**
 * Delivers notifications to receivers, each through its own bounded queue and workers, so a slow or
 * dead channel never delays the others or the evaluator (`enqueue` returns at once).
 *
 * - Bounded per receiver in count and bytes; when full the oldest waiting notification is dropped
 *   (newer ones describe the current state), counted and logged.
 * - Retries with capped exponential backoff and a timeout per attempt; `Retry-After` (Slack's 429)
 *   is honoured; 3xx and other 4xx are final.
 * - Per receiver, notifications of one group key go out in order, one at a time: a firing
 *   notification that keeps failing is still retried after the alert resolved, and the resolve is
 *   sent after it. Different groups proceed in parallel up to `concurrency`.
 * - The notification log is written only once the receiver acknowledged (and when delivery gives up).
 */
export class NotificationDelivery {
  private readonly o: Omit<Required<NotificationDeliveryOptions>, 'metrics'>;
  private readonly lanes = new Map<string, Lane>();
  private readonly closing = new AbortController();
  private readonly counter: Counter<'receiver' | 'outcome'> | undefined;
  private readonly depth: Gauge<'receiver'> | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(options: NotificationDeliveryOptions) {
    this.o = { ...defaults, ...stripUndefined(options) } as Omit<Required<NotificationDeliveryOptions>, 'metrics'>;
    const positive = ['maxQueued', 'maxQueuedBytes', 'concurrency', 'attemptTimeoutMs', 'maxAttempts'] as const;
    for (const k of positive) {
      if (!Number.isFinite(this.o[k]) || this.o[k] < 1) {
        throw new ModelwatchError(ErrorCodes.configInvalid, `alerts delivery: ${k} must be at least 1`, { field: k });
      }
    }
    for (const k of ['initialBackoffMs', 'maxBackoffMs', 'maxRetryAfterMs', 'maxRetryDurationMs'] as const) {
      if (!Number.isFinite(this.o[k]) || this.o[k] < 0) {
        throw new ModelwatchError(ErrorCodes.configInvalid, `alerts delivery: ${k} must not be negative`, { field: k });
      }
    }
    if (options.metrics !== undefined) {
      this.counter = counterOn(options.metrics, {
        name: 'modelwatch_notifications_total',
        help: 'Alert notifications by receiver name and outcome (sent, failed, retried, dropped).',
        labelNames: ['receiver', 'outcome'],
      });
      this.depth = gaugeOn(options.metrics, {
        name: 'modelwatch_notification_queue',
        help: 'Alert notifications waiting per receiver.',
        labelNames: ['receiver'],
      });
    }
    for (const r of options.receivers) {
      if (this.lanes.has(r.name)) {
        throw new ModelwatchError(ErrorCodes.configInvalid, `alerts: receiver ${r.name} defined twice`, {
          field: 'alerts.receivers',
        });
      }
      this.lanes.set(r.name, {
        receiver: r,
        queue: [],
        queuedBytes: 0,
        inFlight: new Set(),
        running: new Set(),
        stats: { queued: 0, queuedBytes: 0, inFlight: 0, dropped: 0, sent: 0, failed: 0 },
      });
      for (const outcome of DeliveryOutcomes) this.counter?.inc({ receiver: r.name, outcome }, 0);
      this.depth?.set({ receiver: r.name }, 0);
    }
  }

  /** Receiver names, in configuration order. */
  receiverNames(): string[] {
    return [...this.lanes.keys()];
  }

  /**
   * Queues `group` for `receivers` (default: all) and returns at once. Unknown receiver names throw
   * (a routing bug); after {@link close} nothing is accepted. Returns the receivers that accepted it.
   */
  enqueue(group: NotificationGroup, receivers?: readonly string[]): string[] {
    if (this.closing.signal.aborted) return [];
    const names = receivers ?? [...this.lanes.keys()];
    const bytes = Buffer.byteLength(JSON.stringify(group));
    const accepted: string[] = [];
    for (const name of names) {
      const lane = this.lanes.get(name);
      if (lane === undefined) {
        throw new ModelwatchError(ErrorCodes.internal, `alerts: no receiver named ${name}`, { field: 'receiver' });
      }
      if (bytes > this.o.maxQueuedBytes) {
        this.drop(lane, group, 'notification larger than maxQueuedBytes');
        continue;
      }
      while (lane.queue.length >= this.o.maxQueued || lane.queuedBytes + bytes > this.o.maxQueuedBytes) {
        const oldest = lane.queue.shift();
        if (oldest === undefined) break;
        lane.queuedBytes -= oldest.bytes;
        this.drop(lane, oldest.group, 'queue full');
      }
      lane.queue.push({ group, bytes, enqueuedAt: Date.now() });
      lane.queuedBytes += bytes;
      accepted.push(name);
      this.pump(lane);
    }
    return accepted;
  }

  /** Queue and in-flight counts per receiver. */
  stats(): Record<string, ReceiverQueueStats> {
    const out: Record<string, ReceiverQueueStats> = {};
    for (const [name, lane] of this.lanes) {
      out[name] = {
        ...lane.stats,
        queued: lane.queue.length,
        queuedBytes: lane.queuedBytes,
        inFlight: lane.inFlight.size,
      };
    }
    return out;
  }

  /** Resolves once every queue is empty and nothing is in flight (or after `timeoutMs`; false then). */
  async idle(timeoutMs = 60_000): Promise<boolean> {
    if (this.isIdle()) return true;
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true))),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    return done;
  }

  /**
   * Stops accepting, waits up to `drainTimeoutMs` for queued and in-flight notifications, then aborts
   * the rest (they are not in the notification log, so they are sent again after a restart) and
   * closes the channels.
   */
  async close(drainTimeoutMs = 5000): Promise<void> {
    const drained = await this.idle(drainTimeoutMs);
    this.closing.abort(new ModelwatchError(ErrorCodes.timeout, 'alerts delivery closed'));
    if (!drained) {
      for (const lane of this.lanes.values()) {
        if (lane.queue.length > 0) {
          this.o.logger.warn('alert notifications left unsent at shutdown', {
            receiver: lane.receiver.name,
            count: lane.queue.length,
          });
        }
        lane.queue = [];
        lane.queuedBytes = 0;
      }
    }
    await Promise.all([...this.lanes.values()].flatMap((l) => [...l.running]));
    const closing: Promise<void>[] = [];
    for (const l of this.lanes.values()) {
      const n = l.receiver.notifier;
      if (n.close !== undefined) closing.push(n.close().catch(() => undefined));
    }
    await Promise.all(closing);
  }

  private isIdle(): boolean {
    for (const lane of this.lanes.values()) if (lane.queue.length > 0 || lane.inFlight.size > 0) return false;
    return true;
  }

  private drop(lane: Lane, group: NotificationGroup, reason: string): void {
    lane.stats.dropped++;
    this.counter?.inc({ receiver: lane.receiver.name, outcome: 'dropped' });
    this.o.logger.warn('alert notification dropped', {
      receiver: lane.receiver.name,
      groupKey: group.groupKey,
      status: group.status,
      reason,
      dropped: lane.stats.dropped,
    });
  }

  private pump(lane: Lane): void {
    while (lane.inFlight.size < this.o.concurrency && !this.closing.signal.aborted) {
      // First waiting job whose group has nothing in flight: FIFO per group key.
      const i = lane.queue.findIndex((j) => !lane.inFlight.has(j.group.groupKey));
      if (i < 0) break;
      const [job] = lane.queue.splice(i, 1) as [Job];
      lane.queuedBytes -= job.bytes;
      lane.inFlight.add(job.group.groupKey);
      // Start on the next turn of the event loop: enqueue() stays O(1) for the evaluator, and no
      // channel code (rendering, DNS, connect) runs on its stack.
      const run = new Promise<void>((resolve) => setImmediate(resolve))
        .then(() => this.deliver(lane, job))
        .finally(() => {
          lane.inFlight.delete(job.group.groupKey);
          lane.running.delete(run);
          this.depth?.set({ receiver: lane.receiver.name }, lane.queue.length);
          this.pump(lane);
          if (this.isIdle()) {
            const waiters = this.idleWaiters;
            this.idleWaiters = [];
            for (const w of waiters) w();
          }
        });
      lane.running.add(run);
    }
    this.depth?.set({ receiver: lane.receiver.name }, lane.queue.length);
  }

  private backoffMs(attempt: number): number {
    const base = Math.min(this.o.maxBackoffMs, this.o.initialBackoffMs * 2 ** (attempt - 1));
    return this.o.jitter ? base / 2 + Math.random() * (base / 2) : base;
  }

  private async deliver(lane: Lane, job: Job): Promise<void> {
    const name = lane.receiver.name;
    const { group } = job;
    const start = Date.now();
    let attempt = 0;
    let res: NotifyResult;
    for (;;) {
      attempt++;
      res = await this.attemptOnce(lane.receiver, group, attempt);
      if (res.ok) {
        lane.stats.sent++;
        this.counter?.inc({ receiver: name, outcome: 'sent' });
        this.o.logger.info('alert notification sent', {
          receiver: name,
          groupKey: group.groupKey,
          status: group.status,
          attempt,
          latencyMs: Date.now() - job.enqueuedAt,
        });
        await this.record(name, group, attempt, res, new Date());
        return;
      }
      const retryable = res.retryable ?? true;
      let waitMs =
        res.retryAfterMs !== undefined ? Math.min(res.retryAfterMs, this.o.maxRetryAfterMs) : this.backoffMs(attempt);
      const giveUp =
        !retryable ||
        attempt >= this.o.maxAttempts ||
        this.closing.signal.aborted ||
        Date.now() + waitMs - start > this.o.maxRetryDurationMs;
      if (giveUp) break;
      this.counter?.inc({ receiver: name, outcome: 'retried' });
      this.o.logger.warn('alert notification failed, retrying', {
        receiver: name,
        groupKey: group.groupKey,
        attempt,
        httpStatus: res.status,
        error: res.error,
        retryInMs: Math.round(waitMs),
      });
      waitMs = Math.max(0, waitMs);
      try {
        await sleep(waitMs, this.closing.signal);
      } catch {
        break;
      }
    }
    if (this.closing.signal.aborted) {
      // Not logged as failed: with no notification-log row it is sent again after the restart.
      this.o.logger.warn('alert notification left unsent at shutdown', {
        receiver: name,
        groupKey: group.groupKey,
        attempt,
      });
      return;
    }
    lane.stats.failed++;
    this.counter?.inc({ receiver: name, outcome: 'failed' });
    this.o.logger.error('alert notification failed', {
      receiver: name,
      groupKey: group.groupKey,
      status: group.status,
      attempt,
      httpStatus: res.status,
      error: res.error,
    });
    await this.record(name, group, attempt, res, null);
  }

  private async attemptOnce(receiver: Receiver, group: NotificationGroup, attempt: number): Promise<NotifyResult> {
    const ac = new AbortController();
    const onClose = (): void => ac.abort(this.closing.signal.reason);
    this.closing.signal.addEventListener('abort', onClose, { once: true });
    const timeoutMs = receiver.attemptTimeoutMs ?? this.o.attemptTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<NotifyResult>((resolve) => {
      timer = setTimeout(() => {
        ac.abort(new ModelwatchError(ErrorCodes.timeout, 'notification attempt timed out'));
        resolve({ ok: false, retryable: true, error: `attempt timed out after ${timeoutMs} ms` });
      }, timeoutMs);
    });
    const sent = receiver.notifier.send(group, { signal: ac.signal, attempt }).catch((err: unknown): NotifyResult => ({
      ok: false,
      retryable: true,
      // A channel must not throw; if one does, its message may hold a secret: show the type only.
      error: `channel ${receiver.notifier.kind} raised ${err instanceof Error ? err.name : typeof err}`,
    }));
    try {
      return await Promise.race([sent, timedOut]);
    } finally {
      clearTimeout(timer);
      this.closing.signal.removeEventListener('abort', onClose);
      if (!ac.signal.aborted) ac.abort();
    }
  }

  private async record(
    receiver: string,
    group: NotificationGroup,
    attempt: number,
    res: NotifyResult,
    acknowledgedAt: Date | null,
  ): Promise<void> {
    const firing = group.alerts.filter((a) => a.status === 'firing').length;
    try {
      await this.o.log.record({
        receiver,
        groupKey: group.groupKey,
        attempt,
        status: res.ok ? 'sent' : 'failed',
        httpStatus: res.status ?? null,
        error: res.ok ? null : (res.error ?? 'unknown error'),
        acknowledgedAt,
        groupStatus: group.status,
        alertsHash: alertSetHash(group),
        firing,
        resolved: group.alerts.length - firing,
        firingFingerprints: group.alerts.filter((a) => a.status === 'firing').map((a) => a.fingerprint),
        resolvedFingerprints: group.alerts.filter((a) => a.status === 'resolved').map((a) => a.fingerprint),
      });
    } catch (err) {
      this.o.logger.error('notification log write failed', {
        receiver,
        groupKey: group.groupKey,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
