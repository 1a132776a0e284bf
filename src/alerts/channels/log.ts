import type { Logger } from '../../common/logger.js';
import { groupModel, groupRules, type NotificationGroup } from '../notification.js';
import type { Notifier, NotifyResult } from '../notifier.js';
import { describeCrossing } from '../render.js';

/** The log channel, always on: one structured line per notification, never anything secret. */
export class LogNotifier implements Notifier {
  readonly kind = 'log';
  constructor(private readonly logger: Logger) {}

  send(group: NotificationGroup): Promise<NotifyResult> {
    const fields = this.fields(group);
    const msg = `alert ${group.status}: model ${groupModel(group)}: ${groupRules(group).join(', ')}`;
    if (group.status === 'firing') this.logger.warn(msg, fields);
    else this.logger.info(msg, fields);
    return Promise.resolve({ ok: true });
  }

  private fields(group: NotificationGroup): Record<string, unknown> {
    return {
      groupKey: group.groupKey,
      status: group.status,
      model: groupModel(group),
      alerts: group.alerts.map((a) => ({
        rule: a.labels['alertname'],
        status: a.status,
        fingerprint: a.fingerprint,
        ...(a.evidence ? { value: describeCrossing(a.evidence) } : {}),
        ...(a.evidence?.topFeatures?.length
          ? { features: a.evidence.topFeatures.slice(0, 5).map((f) => f.feature) }
          : {}),
      })),
      truncatedAlerts: group.truncatedAlerts,
    };
  }
}
