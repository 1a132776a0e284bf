import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isModelwatchError } from '../src/common/index.js';
import { loadConfig, type LoadConfigOptions } from '../src/config/index.js';

const dir = mkdtempSync(join(tmpdir(), 'mw-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** The config_invalid error loadConfig throws (fails the test when it does not throw one). */
function configError(options: LoadConfigOptions): { message: string; field: string | undefined } {
  try {
    loadConfig(options);
  } catch (err) {
    if (isModelwatchError(err, 'config_invalid')) return { message: err.message, field: err.field };
    throw err;
  }
  throw new Error('expected loadConfig to throw');
}

describe('config: defaults', () => {
  it('works with no file and no environment', () => {
    const c = loadConfig({ env: {} });
    expect(c.clickhouse.url).toBe('chdb:./.modelwatch/chdb');
    expect(c.kafka.brokers).toEqual([]);
    expect(c.kafka.topic).toBe('modelwatch.inference');
    expect(c.api.listen).toBe('127.0.0.1:9400');
    expect(c.api.token).toBeUndefined();
    expect(c.sidecar.listen).toBe('127.0.0.1:9401');
    expect(c.sidecar.upstream).toBeUndefined();
    expect(c.alerts.outboundAllow).toEqual([]);
    expect(c.logLevel).toBe('info');
    expect(c.models).toEqual({});
  });
});

describe('config: environment', () => {
  it('maps every documented variable onto its key', () => {
    const c = loadConfig({
      env: {
        MODELWATCH_CLICKHOUSE_URL: 'http://ch:8123',
        MODELWATCH_KAFKA_BROKERS: 'k1:9092, k2:9092',
        MODELWATCH_KAFKA_TOPIC: 'mw.t',
        MODELWATCH_API_LISTEN: '0.0.0.0:8080',
        MODELWATCH_API_TOKEN: 'tok',
        MODELWATCH_SIDECAR_LISTEN: '[::1]:9000',
        MODELWATCH_UPSTREAM: 'http://triton:8000',
        MODELWATCH_SLACK_WEBHOOK_URL: 'https://hooks.example/x',
        MODELWATCH_SMTP_URL: 'smtp://mail:25',
        MODELWATCH_ALERT_EMAIL_TO: 'a@x.io,b@x.io',
        MODELWATCH_GRAFANA_URL: 'http://grafana:3000',
        MODELWATCH_GRAFANA_TOKEN: 'gt',
        MODELWATCH_OUTBOUND_ALLOW: '127.0.0.1,10.0.0.0/8',
        MODELWATCH_SAMPLING: '0.25',
        MODELWATCH_KAFKA_IDEMPOTENT: 'yes',
        MODELWATCH_LOG_LEVEL: 'debug',
      },
    });
    expect(c.clickhouse.url).toBe('http://ch:8123');
    expect(c.kafka.brokers).toEqual(['k1:9092', 'k2:9092']);
    expect(c.kafka.topic).toBe('mw.t');
    expect(c.kafka.idempotent).toBe(true);
    expect(c.api).toMatchObject({ listen: '0.0.0.0:8080', token: 'tok' });
    expect(c.sidecar).toMatchObject({ listen: '[::1]:9000', upstream: 'http://triton:8000', sampling: 0.25 });
    expect(c.alerts).toMatchObject({
      slackWebhookUrl: 'https://hooks.example/x',
      smtpUrl: 'smtp://mail:25',
      emailTo: ['a@x.io', 'b@x.io'],
      grafanaUrl: 'http://grafana:3000',
      grafanaToken: 'gt',
      outboundAllow: ['127.0.0.1', '10.0.0.0/8'],
    });
    expect(c.logLevel).toBe('debug');
  });

  it('overrides the file, and CLI overrides override both', () => {
    const path = file('env-over.yaml', 'api:\n  listen: 127.0.0.1:1111\nkafka:\n  topic: from-file\n');
    const c = loadConfig({
      file: path,
      env: { MODELWATCH_API_LISTEN: '127.0.0.1:2222' },
      overrides: { 'kafka.topic': 'from-flag' },
    });
    expect(c.api.listen).toBe('127.0.0.1:2222');
    expect(c.kafka.topic).toBe('from-flag');
  });

  it('reads the file named by MODELWATCH_CONFIG; an explicit file wins', () => {
    const a = file('a.yaml', 'kafka:\n  topic: a\n');
    const b = file('b.yaml', 'kafka:\n  topic: b\n');
    expect(loadConfig({ env: { MODELWATCH_CONFIG: a } }).kafka.topic).toBe('a');
    expect(loadConfig({ file: b, env: { MODELWATCH_CONFIG: a } }).kafka.topic).toBe('b');
  });

  it.each([
    ['MODELWATCH_API_LISTEN', 'nope'],
    ['MODELWATCH_SIDECAR_LISTEN', 'host:99999'],
    ['MODELWATCH_SAMPLING', '1.5'],
    ['MODELWATCH_SAMPLING', 'lots'],
    ['MODELWATCH_KAFKA_IDEMPOTENT', 'maybe'],
    ['MODELWATCH_DETECT_INTERVAL_MS', '-5'],
    ['MODELWATCH_MAX_CAPTURE_BYTES', '1.5'],
  ])('rejects %s=%s naming the variable', (key, value) => {
    const e = configError({ env: { [key]: value } });
    expect(e.message).toContain(key);
    expect(e.message).toContain(value);
    expect(e.field).toBe(key);
  });

  it('names the config key for a bad value that only the schema catches', () => {
    expect(configError({ env: { MODELWATCH_LOG_LEVEL: 'loud' } }).message).toMatch(/^config: logLevel: /);
    expect(configError({ env: { MODELWATCH_UPSTREAM: 'not a url' } }).message).toMatch(/sidecar\.upstream/);
  });
});

describe('config: file', () => {
  it('reads YAML with nested sections and per-model schema', () => {
    const path = file(
      'full.yaml',
      `logLevel: warn
clickhouse:
  url: chdb:/tmp/mw-x
kafka:
  brokers: [b1:9092]
api:
  listen: 127.0.0.1:9999
  maxBodyBytes: 2048
detect:
  intervalMs: 5000
models:
  iris:
    task: multiclass
    features:
      - { name: sepal_length, tensor: input, index: 0 }
      - { name: species_hint, tensor: hint, kind: categorical }
    prediction: { tensor: probs, kind: probabilities }
    classes: [setosa, versicolor, virginica]
    sampling: 0.5
    drift:
      default: { method: psi, threshold: 0.2 }
`,
    );
    const c = loadConfig({ file: path, env: {} });
    expect(c.logLevel).toBe('warn');
    expect(c.clickhouse.url).toBe('chdb:/tmp/mw-x');
    expect(c.kafka.brokers).toEqual(['b1:9092']);
    expect(c.api).toMatchObject({ listen: '127.0.0.1:9999', maxBodyBytes: 2048 });
    expect(c.detect.intervalMs).toBe(5000);
    expect(c.detect.windowMs).toBe(3_600_000);
    const iris = c.models.iris;
    expect(iris?.task).toBe('multiclass');
    expect(iris?.features.map((f) => f.name)).toEqual(['sepal_length', 'species_hint']);
    expect(iris?.prediction).toEqual({ tensor: 'probs', kind: 'probabilities' });
    expect(iris?.drift?.default).toEqual({ method: 'psi', threshold: 0.2 });
  });

  it('reads JSON too (YAML is a superset)', () => {
    expect(loadConfig({ file: file('c.json', '{"kafka": {"topic": "j"}}'), env: {} }).kafka.topic).toBe('j');
  });

  it('treats an empty file as all defaults', () => {
    expect(loadConfig({ file: file('empty.yaml', ''), env: {} }).api.listen).toBe('127.0.0.1:9400');
  });

  it.each([
    ['top-level', 'colour: blue\n', 'colour'],
    ['nested', 'api:\n  listn: 127.0.0.1:1\n', 'api.listn'],
    ['deep', 'models:\n  iris:\n    featurez: []\n', 'models.iris.featurez'],
    [
      'in a list item',
      'models:\n  iris:\n    features:\n      - { name: a, tensor: t, idx: 1 }\n',
      'models.iris.features.0.idx',
    ],
  ])('rejects an unknown %s key, naming it', (_what, text, key) => {
    const e = configError({ file: file(`unknown-${key}.yaml`, text), env: {} });
    expect(e.message).toContain(`unknown key ${key}`);
  });

  it.each([
    ['api:\n  listen: localhost\n', 'api.listen'],
    ['api:\n  maxBodyBytes: -1\n', 'api.maxBodyBytes'],
    ['kafka:\n  brokers: b1:9092\n', 'kafka.brokers'],
    ['sidecar:\n  sampling: 2\n', 'sidecar.sampling'],
    ['logLevel: chatty\n', 'logLevel'],
    ['clickhouse:\n  database: "drop table"\n', 'clickhouse.database'],
    ['models:\n  iris:\n    task: clustering\n', 'models.iris.task'],
    ['models:\n  iris:\n    drift:\n      default: { method: magic }\n', 'models.iris.drift.default.method'],
  ])('rejects a bad value (%j), naming %s', (text, key) => {
    const e = configError({ file: file(`bad-${key}.yaml`, text), env: {} });
    expect(e.message).toContain(`${key}: `);
  });

  it('names the file when it is missing, not YAML, or not a mapping', () => {
    expect(configError({ file: join(dir, 'missing.yaml'), env: {} }).message).toContain('missing.yaml');
    expect(configError({ file: file('broken.yaml', 'a: [1, 2\n'), env: {} }).message).toMatch(
      /broken\.yaml: not valid YAML/,
    );
    expect(configError({ file: file('list.yaml', '- 1\n- 2\n'), env: {} }).message).toMatch(
      /list\.yaml: must be a mapping/,
    );
  });
});
