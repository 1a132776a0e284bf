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
