import { hostname } from 'node:os';
import type { Gauge } from 'prom-client';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import { newId } from '../common/ids.js';
import { gaugeOn, histogramOn } from '../common/metrics.js';
import type { Config } from '../config/schema.js';
import type { RunningRole, RuntimeContext } from '../runtime/context.js';
import { AlertStore, type Silence } from './alert-store.js';
import { BaselineBook, buildCandidates, key } from './candidates.js';
import { DefaultInhibitRules, inhibitSchema } from './config.js';
import { NotificationDelivery, type NotificationDeliveryOptions, type Receiver } from './delivery.js';
import { Dispatcher, type FlushedNotification } from './dispatcher.js';
import { AlertBook, type AlertRecord } from './lifecycle.js';
import type { NotificationLogEntry } from './notification-log.js';
import { createReceivers } from './receivers.js';
import { formatNumber } from './render.js';
import { fillTemplate, resolveRules, runsNeeded, type Rule } from './rules.js';
import { readSnapshot } from './signals.js';

/** Name of the evaluator's lease row. */
export const EVALUATOR_LEASE = 'evaluator';

/** Options of {@link startAlerting}. Everything else comes from `config.alerts`. */
export interface AlertingOptions {
  /** Clock, epoch ms (timeline tests). @default Date.now */
  clock?: () => number;
  /** Start the evaluation and flush timers. Off in tests that drive {@link RunningAlerting.runOnce}. @default true */
  timers?: boolean;
  /** How often due groups are flushed between evaluations. @default min(1000, evaluateIntervalMs) */
  flushTickMs?: number;
  /** Lease lifetime; the holder renews it every cycle. @default max(3 × evaluateIntervalMs, 30000) */
  leaseTtlMs?: number;
  /** Wait before reading a freshly taken lease back. @default 200 */
  leaseSettleMs?: number;
  /** This process's lease holder id. @default host:pid:random */
  holder?: string;
  /** Receivers to use instead of those built from the config (tests wire stand-ins). */
  receivers?: Receiver[];
  /** Delivery tuning (timeouts, backoff). */
  delivery?: Omit<NotificationDeliveryOptions, 'receivers' | 'log' | 'logger' | 'metrics'>;
}

/** What one evaluation cycle did. */
export interface CycleReport {
  /** False when another process holds the lease (nothing was evaluated). */
  leader: boolean;
  at: number;
  candidates: number;
  /** Alerts whose state changed, with their new state. */
  changed: { id: string; rule: string; model: string; state: string }[];
  notifications: FlushedNotification[];
  durationMs: number;
  /** Time per phase, ms: lease, load, read, evaluate, persist, dispatch. */
  phases: Record<string, number>;
}

/** The running evaluator: a role, plus hooks for tests and the API. */
export interface RunningAlerting extends RunningRole {
  /** One evaluation cycle now (lease, read, evaluate, persist, group, flush). Cycles never overlap. */
  runOnce(): Promise<CycleReport>;
  /** Flushes due groups now (between cycles). */
  flushNow(): FlushedNotification[];
  readonly rules: readonly Rule[];
  readonly book: AlertBook;
  readonly dispatcher: Dispatcher;
  readonly delivery: NotificationDelivery;
  readonly alertStore: AlertStore;
  isLeader(): boolean;
}

/** The base URL of the API used in notification links. */
export function externalUrlOf(config: Config): string {
  return (config.alerts.externalUrl ?? `http://${config.api.listen}`).replace(/\/+$/, '');
}

function configSilences(config: Config): Silence[] {
  return config.alerts.silences.map((s, i) => ({
    id: `config-${i + 1}`,
    matchers: s.matchers,
    startsAt: s.startsAt === undefined ? 0 : Date.parse(s.startsAt),
    endsAt: s.endsAt === undefined ? 8.64e15 : Date.parse(s.endsAt),
    comment: s.comment,
    createdBy: 'config',
    createdAt: 0,
    updatedAt: 0,
  }));
}

/**
 * Starts the alert evaluator: every `alerts.evaluateIntervalMs` it takes (or renews) the lease, reads
 * the stored results of every model (one query per table), moves each alert through its lifecycle,
 * persists the changes in `mw_alerts`, and hands due groups to the per-receiver delivery queues.
 * Failures are logged and counted, never thrown from a timer; timers are unref'ed. `stop()` stops
 * the timers, waits for the cycle in flight, drains delivery (bounded) and releases the lease.
 */
export async function startAlerting(ctx: RuntimeContext, options: AlertingOptions = {}): Promise<RunningAlerting> {
  const cfg = ctx.config.alerts;
  const clock = options.clock ?? Date.now;
  const evaluateIntervalMs = cfg.evaluateIntervalMs;
  const leaseTtlMs = options.leaseTtlMs ?? Math.max(3 * evaluateIntervalMs, 30_000);
  const leaseSettleMs = options.leaseSettleMs ?? 200;
  const holder = options.holder ?? `${hostname()}:${process.pid}:${newId().slice(-8)}`;
  const rules = resolveRules(cfg.rules, cfg.defaultRules);
  const k = runsNeeded(rules) + cfg.baselineRuns;
  const lookbackMs = cfg.lookbackMs ?? Math.max(3_600_000, 10 * ctx.config.detect.intervalMs);
  const keepResolvedMs = Math.max(cfg.flapWindowMs, cfg.repeatIntervalMs, 86_400_000);
  const externalURL = externalUrlOf(ctx.config);
  const log = ctx.logger;
  const store = new AlertStore(ctx.store.with({ role: 'detect' }));
  const staticSilences = configSilences(ctx.config);
  for (const s of staticSilences) {
    if (Number.isNaN(s.startsAt) || Number.isNaN(s.endsAt)) {
      throw new ModelwatchError(ErrorCodes.configInvalid, 'alerts.silences: startsAt/endsAt must be ISO-8601 times', {
        field: 'alerts.silences',
      });
    }
  }

  const built =
    options.receivers === undefined
      ? createReceivers({
          ...(cfg.slackWebhookUrl !== undefined ? { slackWebhookUrl: cfg.slackWebhookUrl } : {}),
          ...(cfg.smtpUrl !== undefined ? { smtpUrl: cfg.smtpUrl } : {}),
          emailTo: cfg.emailTo,
          emailFrom: cfg.emailFrom,
          ...(cfg.grafanaUrl !== undefined ? { grafanaUrl: cfg.grafanaUrl } : {}),
          ...(cfg.grafanaToken !== undefined ? { grafanaToken: cfg.grafanaToken } : {}),
          annotationStore: store.annotationStore(),
          webhookUrls: cfg.webhookUrls,
          ...(cfg.alertmanagerUrl !== undefined ? { alertmanagerUrl: cfg.alertmanagerUrl } : {}),
          outboundAllow: cfg.outboundAllow,
          logger: log,
        })
      : undefined;
  const receivers = options.receivers ?? built?.receivers ?? [];
  let dispatcher: Dispatcher | undefined;
  const notificationLog = store.notificationLog(clock);
  const delivery = new NotificationDelivery({
    ...options.delivery,
    receivers,
    logger: log,
    metrics: ctx.metrics,
    log: {
      record: async (entry: NotificationLogEntry) => {
        dispatcher?.recordOutcome(entry, clock());
        await notificationLog.record(entry);
      },
    },
  });
  try {
    dispatcher = new Dispatcher({
      sink: delivery,
      receivers: delivery.receiverNames(),
      routes: cfg.routes,
      groupBy: cfg.groupBy,
      groupWaitMs: cfg.groupWaitMs,
      groupIntervalMs: cfg.groupIntervalMs,
      repeatIntervalMs: cfg.repeatIntervalMs,
      inhibit: cfg.inhibit ?? DefaultInhibitRules.map((r) => inhibitSchema.parse(r)),
      externalURL,
      logger: log,
    });
  } catch (err) {
    await delivery.close(0);
    await built?.close();
    throw err;
  }
  const disp = dispatcher;
  const book = new AlertBook({
    flapWindowMs: cfg.flapWindowMs,
    keepResolvedMs,
    annotate: (rule, labels, value, threshold) => {
      const vars = { ...labels, value: formatNumber(value), threshold: formatNumber(threshold) };
      const out: Record<string, string> = {};
      for (const [name, template] of Object.entries(rule.annotations)) {
        if (typeof template === 'string') out[name] = fillTemplate(template, vars);
      }
      return out;
    },
  });
  const baselines = new BaselineBook(cfg.baselineRuns);

  const gauge: Gauge<'model' | 'rule' | 'severity' | 'state'> = gaugeOn(ctx.metrics, {
    name: 'modelwatch_alerts',
    help: 'Alerts by model, rule, severity and state (pending, firing; silenced and inhibited firing alerts count as such).',
    labelNames: ['model', 'rule', 'severity', 'state'],
  });
  const duration = histogramOn(ctx.metrics, {
    name: 'modelwatch_alert_evaluation_seconds',
    help: 'Duration of one alert evaluation cycle over all models.',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
  });
  const updateGauge = (): void => {
    gauge.reset();
    for (const a of book.active.values()) {
      const state = a.state === 'firing' ? (disp.muted.get(a.fingerprint) ?? 'firing') : a.state;
      gauge.inc({ model: a.model, rule: a.rule, severity: a.severity, state });
    }
  };

  let leader = false;
  let loaded = false;
  let stopped = false;
  let stopping: Promise<void> | undefined;
  let inFlight: Promise<CycleReport> | null = null;

  const load = async (now: number): Promise<void> => {
    book.load(await store.loadState(now - keepResolvedMs));
    disp.reset();
    disp.loadNflog(await store.loadNflog(now - Math.max(cfg.repeatIntervalMs, keepResolvedMs)));
    baselines.entries.clear();
    for (const b of await store.loadBaselines()) baselines.entries.set(key(b.model, b.source, b.metric), b.baseline);
    loaded = true;
  };

  const cycle = async (): Promise<CycleReport> => {
    const started = performance.now();
    const now = clock();
    const report: CycleReport = {
      leader: false,
      at: now,
      candidates: 0,
      changed: [],
      notifications: [],
      durationMs: 0,
      phases: {},
    };
    let mark = started;
    const phase = (name: string): void => {
      const t = performance.now();
      report.phases[name] = t - mark;
      mark = t;
    };
    const holds = await store.acquireLease(EVALUATOR_LEASE, holder, now, leaseTtlMs, leaseSettleMs);
    phase('lease');
    if (!holds) {
      if (leader) log.info('alerts: evaluator lease lost; another process evaluates', { holder });
      leader = false;
      loaded = false;
      report.durationMs = performance.now() - started;
      return report;
    }
    if (!leader) log.info('alerts: evaluator lease taken', { holder });
    leader = true;
    report.leader = true;
    if (!loaded) await load(now);
    disp.setSilences([...staticSilences, ...(await store.listSilences(now))]);
    phase('load');
    const snapshot = await readSnapshot(ctx.store, { rules, k, since: now - lookbackMs, now, logger: log });
    phase('read');
    const candidates = buildCandidates({ rules, snapshot, baselines });
    report.candidates = candidates.length;
    const changed = book.evaluate(candidates, rules, snapshot, now);
    phase('evaluate');
    await store.saveAlerts(changed);
    const dirty = baselines.takeDirty();
    if (dirty.length > 0) {
      await store.saveBaselines(
        dirty.flatMap((k) => {
          const b = baselines.entries.get(k);
          const [model = '', source = '', metric = ''] = k.split('\u0000');
          return b === undefined ? [] : [{ model, source, metric, baseline: b }];
        }),
        now,
      );
    }
    for (const a of changed) {
      report.changed.push({ id: a.id, rule: a.rule, model: a.model, state: a.state });
      if (a.state === 'firing' || a.state === 'resolved') {
        log.info(`alert ${a.state}`, { id: a.id, rule: a.rule, model: a.model, labels: a.labels, value: a.value });
      }
    }
    phase('persist');
    disp.sync(book.all(), now);
    report.notifications = disp.flush(now, book.all());
    updateGauge();
    phase('dispatch');
    report.durationMs = performance.now() - started;
    duration.observe(report.durationMs / 1000);
    return report;
  };

  const runOnce = (): Promise<CycleReport> => {
    if (inFlight) return inFlight;
    const p = cycle().finally(() => {
      inFlight = null;
    });
    inFlight = p;
    return p;
  };

  let evalTimer: NodeJS.Timeout | undefined;
  let flushTimer: NodeJS.Timeout | undefined;
  const schedule = (delayMs: number): void => {
    if (stopped) return;
    evalTimer = setTimeout(() => {
      runOnce()
        .catch((err: unknown) => log.error('alerts: evaluation failed', { error: errorMessage(err) }))
        .finally(() => schedule(evaluateIntervalMs));
    }, delayMs);
    evalTimer.unref();
  };
  const flushNow = (): FlushedNotification[] => {
    if (!leader || !loaded || inFlight) return [];
    return disp.flush(clock(), book.all());
  };
  if (options.timers ?? true) {
    // The first cycle one interval after start: the detect loop's first run lands first, and a
    // short-lived process does not compete with it for the store.
    schedule(evaluateIntervalMs);
    flushTimer = setInterval(
      () => {
        try {
          flushNow();
        } catch (err) {
          log.error('alerts: flush failed', { error: errorMessage(err) });
        }
      },
      options.flushTickMs ?? Math.min(1000, evaluateIntervalMs),
    );
    flushTimer.unref();
  }

  return {
    name: 'alerts',
    urls: [],
    rules,
    book,
    dispatcher: disp,
    delivery,
    alertStore: store,
    runOnce,
    flushNow,
    isLeader: () => leader,
    stop(): Promise<void> {
      stopping ??= (async () => {
        stopped = true;
        if (evalTimer) clearTimeout(evalTimer);
        if (flushTimer) clearInterval(flushTimer);
        if (inFlight) await inFlight.catch(() => undefined);
        await delivery.close(5000);
        await built?.close().catch(() => undefined);
        if (leader) await store.releaseLease(EVALUATOR_LEASE, holder, clock()).catch(() => undefined);
        leader = false;
      })();
      return stopping;
    },
  };
}

export type { AlertRecord };
