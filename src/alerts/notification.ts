import { createHash } from 'node:crypto';

/**
 * The notification payload model every channel renders from. It carries what an Alertmanager
 * webhook body carries (so {@link toAlertmanagerWebhook} is a pure mapping) plus the evidence that
 * made each alert fire.
 *
 * Label conventions, as in Prometheus: `alertname` is the rule name, `model` the monitored model,
 * `severity` is `warning` or `critical`. Annotations: `summary`, `description`, `runbook_url`.
 */

/** `firing` or `resolved`, as Alertmanager spells them. */
export const AlertStatuses = ['firing', 'resolved'] as const;
/** One of {@link AlertStatuses}. */
export type AlertStatus = (typeof AlertStatuses)[number];

/** A time window of stored data (ISO-8601 bounds). */
export interface EvidenceWindow {
  from: string;
  to: string;
}

/** One feature's detector result, as listed under "top drifted features". */
export interface FeatureEvidence {
  feature: string;
  /** Detector method, e.g. `ks`, `psi`, `chi2`, `wasserstein`. */
  method?: string;
  /** The drift score / statistic compared with the threshold. */
  score: number;
  pValue?: number;
  threshold?: number;
  drifted: boolean;
}

/** The detector results that made an alert fire, enough to replay why. */
export interface AlertEvidence {
  /** The signal the rule reads, e.g. `dataset_drift_share`, `feature_drift_score`, `accuracy_drop`. */
  signal: string;
  /** The observed value. */
  value: number;
  /** The comparison of the rule. */
  comparison: '>' | '>=' | '<' | '<=' | '==' | '!=';
  /** The threshold the value was compared with. */
  threshold: number;
  /** The current (analysed) window. */
  window?: EvidenceWindow;
  /** The reference the current window was compared with. */
  reference?: { id: string; window?: EvidenceWindow };
  /** Sample sizes of the reference and current windows. */
  sampleSizes?: { reference?: number; current?: number };
  /** Detector method and parameters of the dataset-level result, when there is one. */
  method?: string;
  parameters?: Record<string, string | number | boolean>;
  /** Drifted features, highest score first (channels show the first few). */
  topFeatures?: FeatureEvidence[];
  /** Link to the self-contained HTML evidence page. */
  reportURL?: string;
}

/** One alert inside a notification. */
export interface AlertNotification {
  status: AlertStatus;
  /** Stable id of (rule, label set), hex. */
  fingerprint: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** ISO-8601 start of the incident. */
  startsAt: string;
  /** ISO-8601 end; absent while firing. */
  endsAt?: string;
  /** Link back to this alert in the modelwatch API (`/api/v1/alerts/{id}`). */
  generatorURL?: string;
  evidence?: AlertEvidence;
}

/** One notification: the alerts of one aggregation group, sent to each of its receivers. */
export interface NotificationGroup {
  /** Identifies the aggregation group (Alertmanager's `groupKey`), e.g. `{}:{model="fraud"}`. */
  groupKey: string;
  /** `firing` when at least one alert fires, else `resolved`. */
  status: AlertStatus;
  /** The labels the group is formed by (`groupBy`). */
  groupLabels: Record<string, string>;
  /** Labels every alert of the group has with the same value. */
  commonLabels: Record<string, string>;
  /** Annotations every alert of the group has with the same value. */
  commonAnnotations: Record<string, string>;
  /** Base URL of the modelwatch API/UI. */
  externalURL: string;
  alerts: AlertNotification[];
  /** Alerts left out of `alerts` to bound the payload. */
  truncatedAlerts: number;
}

/** Input of {@link buildNotificationGroup}. */
export interface BuildGroupInput {
  groupKey: string;
  groupLabels: Record<string, string>;
  externalURL: string;
  alerts: AlertNotification[];
  /** Keep at most this many alerts (firing first); 0 keeps all. @default 0 */
  maxAlerts?: number;
}

/** Builds a {@link NotificationGroup}: status, common labels/annotations and truncation from the alerts. */
export function buildNotificationGroup(input: BuildGroupInput): NotificationGroup {
  // Firing first, otherwise in the order given (a stable sort): the evaluator decides what leads.
  const all = [...input.alerts].sort((a, b) => (a.status === b.status ? 0 : a.status === 'firing' ? -1 : 1));
  const max = input.maxAlerts ?? 0;
  const alerts = max > 0 ? all.slice(0, max) : all;
  return {
    groupKey: input.groupKey,
    status: all.some((a) => a.status === 'firing') ? 'firing' : 'resolved',
    groupLabels: { ...input.groupLabels },
    commonLabels: common(all.map((a) => a.labels)),
    commonAnnotations: common(all.map((a) => a.annotations)),
    externalURL: input.externalURL,
    alerts,
    truncatedAlerts: all.length - alerts.length,
  };
}

function common(maps: Record<string, string>[]): Record<string, string> {
  const [first, ...rest] = maps;
  if (first === undefined) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(first)) if (rest.every((m) => m[k] === v)) out[k] = v;
  return out;
}

/** Number of firing alerts in the group (those listed plus none of the truncated, which are unknown). */
export function firingCount(group: NotificationGroup): number {
  return group.alerts.filter((a) => a.status === 'firing').length;
}

/** The model the group is about: the common `model` label, or the distinct models joined. */
export function groupModel(group: NotificationGroup): string {
  const common = group.commonLabels['model'] ?? group.groupLabels['model'];
  if (common !== undefined) return common;
  const models = [...new Set(group.alerts.map((a) => a.labels['model']).filter((m) => m !== undefined))];
  return models.length > 0 ? models.join(', ') : 'unknown';
}

/** Distinct rule names (`alertname`) of the group, in order of first appearance. */
export function groupRules(group: NotificationGroup): string[] {
  return [...new Set(group.alerts.map((a) => a.labels['alertname'] ?? 'alert'))];
}

/**
 * A hash of the alert set and each alert's status: what Alertmanager's notification log dedups on
 * together with (receiver, group key).
 */
export function alertSetHash(group: NotificationGroup): string {
  const h = createHash('sha256');
  for (const a of [...group.alerts].sort((x, y) => x.fingerprint.localeCompare(y.fingerprint))) {
    h.update(`${a.fingerprint}:${a.status}\n`);
  }
  return h.digest('hex').slice(0, 32);
}

/**
 * A one-line title, Alertmanager style: `[FIRING:2] model fraud: dataset_drift, feature_drift` or
 * `[RESOLVED] model fraud: dataset_drift`.
 */
export function groupTitle(group: NotificationGroup): string {
  const prefix = group.status === 'firing' ? `[FIRING:${firingCount(group)}]` : '[RESOLVED]';
  return `${prefix} model ${groupModel(group)}: ${groupRules(group).join(', ')}`;
}

// Alertmanager marshals a zero time.Time for alerts that have not ended.
const ZERO_TIME = '0001-01-01T00:00:00Z';

/** One alert of an Alertmanager webhook body (`version: "4"`), plus modelwatch's `evidence`. */
export interface AlertmanagerWebhookAlert {
  status: AlertStatus;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  generatorURL: string;
  fingerprint: string;
  evidence?: AlertEvidence;
}

/** The Alertmanager webhook body (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config). */
export interface AlertmanagerWebhookBody {
  version: '4';
  groupKey: string;
  truncatedAlerts: number;
  status: AlertStatus;
  receiver: string;
  groupLabels: Record<string, string>;
  commonLabels: Record<string, string>;
  commonAnnotations: Record<string, string>;
  externalURL: string;
  alerts: AlertmanagerWebhookAlert[];
}

/**
 * The Alertmanager-compatible webhook body of `group` for `receiver` (a receiver NAME, never a URL).
 * With `includeEvidence`, each alert also carries an `evidence` object; consumers of Alertmanager
 * webhooks ignore unknown fields.
 */
export function toAlertmanagerWebhook(
  group: NotificationGroup,
  receiver: string,
  includeEvidence = true,
): AlertmanagerWebhookBody {
  return {
    version: '4',
    groupKey: group.groupKey,
    truncatedAlerts: group.truncatedAlerts,
    status: group.status,
    receiver,
    groupLabels: group.groupLabels,
    commonLabels: group.commonLabels,
    commonAnnotations: group.commonAnnotations,
    externalURL: group.externalURL,
    alerts: group.alerts.map((a) => ({
      status: a.status,
      labels: a.labels,
      annotations: a.annotations,
      startsAt: a.startsAt,
      endsAt: a.endsAt ?? ZERO_TIME,
      generatorURL: a.generatorURL ?? '',
      fingerprint: a.fingerprint,
      ...(includeEvidence && a.evidence !== undefined ? { evidence: a.evidence } : {}),
    })),
  };
}

/** A postable alert of Alertmanager's API v2 (`POST /api/v2/alerts`). */
export interface PostableAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt?: string;
  generatorURL?: string;
}

/**
 * The postable alerts of `group`. A resolved alert carries its `endsAt`; a firing one carries
 * `now + activeForMs` so Alertmanager resolves it by itself if modelwatch stops re-sending it.
 */
export function toPostableAlerts(group: NotificationGroup, nowMs: number, activeForMs: number): PostableAlert[] {
  return group.alerts.map((a) => ({
    labels: a.labels,
    annotations: a.annotations,
    startsAt: a.startsAt,
    endsAt:
      a.status === 'resolved'
        ? (a.endsAt ?? new Date(nowMs).toISOString())
        : new Date(nowMs + activeForMs).toISOString(),
    ...(a.generatorURL ? { generatorURL: a.generatorURL } : {}),
  }));
}
