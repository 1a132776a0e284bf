import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import { configSchema, type Config } from './schema.js';
import { parseBoolean, parseList, parseListen, parseNumber } from './parse.js';

/** Environment variables read by {@link loadConfig} (DESIGN §2), each mapped onto a config path. */
export const EnvVars = {
  MODELWATCH_CONFIG: 'path of the YAML/JSON config file',
  MODELWATCH_LOG_LEVEL: 'logLevel',
  MODELWATCH_CLICKHOUSE_URL: 'clickhouse.url',
  MODELWATCH_CLICKHOUSE_USER: 'clickhouse.username',
  MODELWATCH_CLICKHOUSE_PASSWORD: 'clickhouse.password',
  MODELWATCH_CLICKHOUSE_DATABASE: 'clickhouse.database',
  MODELWATCH_CLICKHOUSE_CLUSTER: 'clickhouse.cluster',
  MODELWATCH_KAFKA_BROKERS: 'kafka.brokers',
  MODELWATCH_KAFKA_TOPIC: 'kafka.topic',
  MODELWATCH_KAFKA_GROUP: 'kafka.groupId',
  MODELWATCH_KAFKA_IDEMPOTENT: 'kafka.idempotent',
  MODELWATCH_API_LISTEN: 'api.listen',
  MODELWATCH_API_TOKEN: 'api.token',
  MODELWATCH_API_MAX_WINDOW_MS: 'api.maxWindowMs',
  MODELWATCH_SIDECAR_LISTEN: 'sidecar.listen',
  MODELWATCH_METRICS_LISTEN: 'metrics.listen',
  MODELWATCH_UPSTREAM: 'sidecar.upstream',
  MODELWATCH_GRPC_UPSTREAM: 'sidecar.grpcUpstream',
  MODELWATCH_GRPC_LISTEN: 'sidecar.grpcListen',
  MODELWATCH_SAMPLING: 'sidecar.sampling',
  MODELWATCH_MAX_CAPTURE_BYTES: 'sidecar.maxCaptureBytes',
  MODELWATCH_DETECT_INTERVAL_MS: 'detect.intervalMs',
  MODELWATCH_DETECT_WINDOW_MS: 'detect.windowMs',
  MODELWATCH_REFERENCE_ROWS: 'detect.reference.rows',
  MODELWATCH_REFERENCE_SPAN_MS: 'detect.reference.spanMs',
  MODELWATCH_DETECT_WARMUP: 'detect.warmup',
  MODELWATCH_METRICS_MAX_FEATURES: 'metrics.maxFeatures',
  MODELWATCH_SLACK_WEBHOOK_URL: 'alerts.slackWebhookUrl',
  MODELWATCH_SMTP_URL: 'alerts.smtpUrl',
  MODELWATCH_ALERT_EMAIL_TO: 'alerts.emailTo',
  MODELWATCH_ALERT_EMAIL_FROM: 'alerts.emailFrom',
  MODELWATCH_GRAFANA_URL: 'alerts.grafanaUrl',
  MODELWATCH_GRAFANA_TOKEN: 'alerts.grafanaToken',
  MODELWATCH_WEBHOOK_URLS: 'alerts.webhookUrls',
  MODELWATCH_OUTBOUND_ALLOW: 'alerts.outboundAllow',
  MODELWATCH_KSERVE_TOKEN: 'kserve.token',
  MODELWATCH_KSERVE_ALLOW: 'kserve.allow',
  MODELWATCH_PAYLOAD_DAYS: 'retention.payloadDays',
  MODELWATCH_SHADOW_MODEL_DIR: 'shadow.modelDir',
  MODELWATCH_SHADOW_EXECUTION_PROVIDERS: 'shadow.executionProviders',
  MODELWATCH_ALERTMANAGER_URL: 'alerts.alertmanagerUrl',
  MODELWATCH_ALERTS_EVALUATE_INTERVAL_MS: 'alerts.evaluateIntervalMs',
} as const;

type Env = Record<string, string | undefined>;

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const p of parts.slice(0, -1)) {
    const next = node[p];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[p] = {};
    node = node[p] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] as string] = value;
}

function envValue(key: string, raw: string): unknown {
  switch (key) {
    case 'MODELWATCH_KAFKA_BROKERS':
    case 'MODELWATCH_ALERT_EMAIL_TO':
    case 'MODELWATCH_WEBHOOK_URLS':
    case 'MODELWATCH_OUTBOUND_ALLOW':
    case 'MODELWATCH_KSERVE_ALLOW':
      return parseList(raw);
    case 'MODELWATCH_SHADOW_EXECUTION_PROVIDERS':
      return raw.trim() === 'auto' ? 'auto' : parseList(raw);
    case 'MODELWATCH_KAFKA_IDEMPOTENT':
      return parseBoolean({ key, value: raw });
    case 'MODELWATCH_SAMPLING':
      return parseNumber({ key, value: raw, min: 0, max: 1 });
    case 'MODELWATCH_MAX_CAPTURE_BYTES':
    case 'MODELWATCH_DETECT_INTERVAL_MS':
    case 'MODELWATCH_DETECT_WINDOW_MS':
    case 'MODELWATCH_API_MAX_WINDOW_MS':
    case 'MODELWATCH_REFERENCE_ROWS':
    case 'MODELWATCH_REFERENCE_SPAN_MS':
    case 'MODELWATCH_PAYLOAD_DAYS':
    case 'MODELWATCH_ALERTS_EVALUATE_INTERVAL_MS':
      return parseNumber({ key, value: raw, min: 1, integer: true });
    case 'MODELWATCH_DETECT_WARMUP':
    case 'MODELWATCH_METRICS_MAX_FEATURES':
      return parseNumber({ key, value: raw, min: 0, integer: true });
    case 'MODELWATCH_API_LISTEN':
    case 'MODELWATCH_SIDECAR_LISTEN':
    case 'MODELWATCH_METRICS_LISTEN':
      parseListen({ key, value: raw });
      return raw.trim();
    default:
      return raw;
  }
}

function formatIssues(error: z.ZodError, origin: string): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.map(String).join('.');
      if (issue.code === 'unrecognized_keys') {
        const keys = issue.keys.map((k) => (path ? `${path}.${k}` : k));
        return `unknown key${keys.length > 1 ? 's' : ''} ${keys.join(', ')}`;
      }
      return `${path || '(root)'}: ${issue.message}`;
    })
    .map((m) => `${origin}: ${m}`)
    .join('; ');
}

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** Config file path; overrides `MODELWATCH_CONFIG`. */
  file?: string | undefined;
  /** Environment to read. @default process.env */
  env?: Env;
  /** Values applied last (CLI flags), as a partial config object. */
  overrides?: Record<string, unknown>;
}

/**
 * Loads the configuration: file (YAML or JSON), then environment variables, then CLI overrides.
 * Throws {@link ModelwatchError} `config_invalid` naming each bad or unknown key.
 */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const file = options.file ?? env.MODELWATCH_CONFIG;
  let raw: Record<string, unknown> = {};
  if (file !== undefined && file !== '') {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ModelwatchError(ErrorCodes.configInvalid, `config file ${file}: ${errorMessage(err)}`, {
        field: 'MODELWATCH_CONFIG',
        cause: err,
      });
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text) ?? {};
    } catch (err) {
      throw new ModelwatchError(ErrorCodes.configInvalid, `config file ${file}: not valid YAML: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ModelwatchError(ErrorCodes.configInvalid, `config file ${file}: must be a mapping of keys`);
    }
    raw = parsed as Record<string, unknown>;
    const fileCheck = configSchema.safeParse(raw);
    if (!fileCheck.success) {
      throw new ModelwatchError(ErrorCodes.configInvalid, formatIssues(fileCheck.error, `config file ${file}`));
    }
  }
  for (const [key, path] of Object.entries(EnvVars)) {
    if (key === 'MODELWATCH_CONFIG') continue;
    const value = env[key];
    if (value === undefined || value === '') continue;
    setPath(raw, path, envValue(key, value));
  }
  for (const [path, value] of Object.entries(options.overrides ?? {})) {
    if (value !== undefined) setPath(raw, path, value);
  }
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ModelwatchError(ErrorCodes.configInvalid, formatIssues(result.error, 'config'));
  return result.data;
}
