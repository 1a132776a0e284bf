// Alert delivery: the notification model, channels (Slack, email, Grafana, webhook, Alertmanager,
// log), the outbound address policy and the per-receiver delivery queues.
export {
  AlertStatuses,
  buildNotificationGroup,
  firingCount,
  groupModel,
  groupRules,
  groupTitle,
  alertSetHash,
  toAlertmanagerWebhook,
  toPostableAlerts,
} from './notification.js';
export type {
  AlertStatus,
  AlertEvidence,
  AlertNotification,
  EvidenceWindow,
  FeatureEvidence,
  NotificationGroup,
  BuildGroupInput,
  AlertmanagerWebhookAlert,
  AlertmanagerWebhookBody,
  PostableAlert,
} from './notification.js';
export type { Notifier, NotifyContext, NotifyResult } from './notifier.js';
export { NotificationDelivery, DeliveryOutcomes } from './delivery.js';
export type { NotificationDeliveryOptions, Receiver, ReceiverQueueStats, DeliveryOutcome } from './delivery.js';
export {
  NotificationOutcomes,
  MW_NOTIFICATIONS_TABLE,
  MW_NOTIFICATIONS_DDL,
  notificationLogRow,
} from './notification-log.js';
export type { NotificationLog, NotificationLogEntry, NotificationOutcome } from './notification-log.js';
export { OutboundPolicy, createOutboundAgent, parseOutboundAllow, parseHttpUrl } from './outbound.js';
export type { OutboundPolicyOptions, OutboundAgentOptions } from './outbound.js';
export { Redactor, REDACTED } from './redact.js';
export { SlackNotifier, renderSlackMessage, escapeMrkdwn, SlackLimits } from './channels/slack.js';
export type { SlackNotifierOptions, SlackMessage } from './channels/slack.js';
export { EmailNotifier, renderEmail, parseSmtpUrl } from './channels/email.js';
export type { EmailNotifierOptions, EmailMessage, SmtpTarget } from './channels/email.js';
export { GrafanaNotifier, MemoryAnnotationStore, MW_ALERT_ANNOTATIONS_DDL } from './channels/grafana.js';
export type { GrafanaNotifierOptions, AnnotationStore } from './channels/grafana.js';
export { WebhookNotifier } from './channels/webhook.js';
export type { WebhookNotifierOptions } from './channels/webhook.js';
export { AlertmanagerNotifier } from './channels/alertmanager.js';
export type { AlertmanagerNotifierOptions } from './channels/alertmanager.js';
export { LogNotifier } from './channels/log.js';
export { createReceivers } from './receivers.js';
export type { ReceiversOptions, BuiltReceivers } from './receivers.js';

// Rules, evaluation, lifecycle, grouping/routing and persistence.
export {
  Comparisons,
  Severities,
  DefaultRules,
  ErrorMetrics,
  ruleSchema,
  selectorSchema,
  configRuleSchema,
  resolveRules,
  compare,
  fillTemplate,
  runsNeeded,
} from './rules.js';
export type { Comparison, Severity, Selector, ForSpec, Rule, RuleInput, ConfigRule } from './rules.js';
export { matcherSchema, compileMatchers, formatMatchers } from './matchers.js';
export type { Matcher, MatcherInput, LabelPredicate } from './matchers.js';
export { routeSchema, inhibitSchema, configSilenceSchema, DefaultInhibitRules, alertingConfigShape } from './config.js';
export type { Route, InhibitRule, ConfigSilence } from './config.js';
export { readSnapshot, DETECT_RUNS_TABLE } from './signals.js';
export type {
  Snapshot,
  DriftPoint,
  PerformancePoint,
  SeriesSample,
  RunPoint,
  ChangePointSample,
  ReadSnapshotOptions,
} from './signals.js';
export { buildCandidates, fingerprintOf, BaselineBook } from './candidates.js';
export type { Candidate, CandidatePoint, Baseline, BuildCandidatesOptions } from './candidates.js';
export { AlertBook, AlertStates } from './lifecycle.js';
export type { AlertRecord, AlertState, StoredEvidence, AlertBookOptions } from './lifecycle.js';
export { Dispatcher, toNotification } from './dispatcher.js';
export type { DispatcherOptions, NotificationSink, FlushedNotification } from './dispatcher.js';
export { AlertStore, silenceState } from './alert-store.js';
export type { Silence, AlertQuery, NflogEntry } from './alert-store.js';
export { AlertTables, ALERT_TABLES_DDL } from './tables.js';
export { startAlerting, externalUrlOf, EVALUATOR_LEASE } from './evaluator.js';
export type { AlertingOptions, CycleReport, RunningAlerting } from './evaluator.js';
export { activeAlerts } from './alert-store.js';
export type { ActiveAlertSummary } from './alert-store.js';
export { renderAlertReport } from './report.js';
export type { AlertReportOptions } from './report.js';
