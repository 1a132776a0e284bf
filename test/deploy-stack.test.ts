import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { EnvVars } from '../src/config/index.js';

// docker-compose.yml, docker-compose.cluster.yml, deploy/ (Prometheus, ClickHouse cluster, Kubernetes):
// validated by docker-compose itself, then checked against what the code reads and serves.

const ROOT = resolve('.');
const work = mkdtempSync(join(tmpdir(), 'mw-deploy-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Service {
  image?: string;
  command?: string[];
  environment?: Record<string, string | number | null>;
  ports?: (string | { published?: number | string; target?: number; host_ip?: string })[];
  volumes?: (string | { source?: string; target?: string })[];
}
interface Compose {
  services: Record<string, Service>;
}

/** .env.example as a user fills it in: the variables marked REQUIRED given values, the others as shipped. */
function envFile(): string {
  let required = false;
  const lines = readFileSync('.env.example', 'utf8')
    .split('\n')
    .map((l) => {
      if (l.startsWith('#')) required ||= l.includes('REQUIRED');
      if (!/^[A-Z_]+=/.test(l)) return l;
      const key = l.slice(0, l.indexOf('='));
      const out = required ? `${key}=${key.toLowerCase()}-value` : l;
      required = false;
      return out;
    });
  const file = join(work, 'env');
  writeFileSync(file, lines.join('\n'));
  return file;
}

const cleanEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work };

function composeConfig(file: string): Compose {
  const out = execFileSync(
    'docker-compose',
    ['--env-file', envFile(), '--project-directory', ROOT, '-f', file, 'config'],
    {
      encoding: 'utf8',
      env: cleanEnv,
    },
  );
  return parseYaml(out) as Compose;
}

const single = composeConfig('docker-compose.yml');
const cluster = composeConfig('docker-compose.cluster.yml');
const known = new Set(Object.keys(EnvVars));
const isModelwatch = (s: Service): boolean => s.image === 'modelwatch:local';
const ROLE_COMMANDS = ['sidecar', 'ingest', 'detect', 'api'];

/** Port of a `HOST:PORT` value. */
const portOf = (listen: string | number | null | undefined): number => Number(String(listen).split(':').pop());

/** The ports on which a modelwatch service answers `GET /metrics`. */
function metricsPorts(s: Service): number[] {
  const env = s.environment ?? {};
  const ports: number[] = [];
  if (s.command?.[0] === 'api') ports.push(portOf(env.MODELWATCH_API_LISTEN ?? '127.0.0.1:9400'));
  if (s.command?.[0] === 'sidecar') ports.push(portOf(env.MODELWATCH_SIDECAR_LISTEN ?? '127.0.0.1:9401'));
  if (env.MODELWATCH_METRICS_LISTEN) ports.push(portOf(env.MODELWATCH_METRICS_LISTEN));
  return ports;
}

describe.each([
  ['docker-compose.yml', single],
  ['docker-compose.cluster.yml', cluster],
])('%s', (file, doc) => {
  it('is accepted by docker-compose and runs every role as its own service, plus a V2 model server', () => {
    const roles = Object.values(doc.services)
      .filter(isModelwatch)
      .map((s) => s.command?.[0]);
    expect(roles.sort()).toEqual([...ROLE_COMMANDS, 'demo-server'].sort());
    for (const name of ['prometheus', 'grafana']) expect(doc.services[name], name).toBeDefined();
    expect(doc.services.sidecar?.environment?.MODELWATCH_UPSTREAM).toBe('http://model:8080');
    expect(doc.services.model?.command).toEqual(['demo-server', '--listen', '0.0.0.0:8080']);
  });

  it('gives modelwatch services only environment variables the config loader reads', () => {
    for (const [name, s] of Object.entries(doc.services).filter(([, s]) => isModelwatch(s))) {
      const keys = Object.keys(s.environment ?? {});
      expect(keys.length, name).toBeGreaterThan(0);
      for (const k of keys) expect(known.has(k), `${file} ${name}: ${k} is not read by src/config/load.ts`).toBe(true);
    }
  });

  it('publishes no port that has a default password or no authentication', () => {
    for (const [name, s] of Object.entries(doc.services)) {
      for (const p of s.ports ?? []) {
        const hostIp = typeof p === 'string' ? (p.split(':').length === 3 ? p.split(':')[0] : '') : (p.host_ip ?? '');
        // Public: the sidecar (inference traffic), the API (token required) and Grafana (admin password required).
        if (!['sidecar', 'api', 'grafana'].includes(name))
          expect(hostIp, `${file} ${name} ${JSON.stringify(p)}`).toBe('127.0.0.1');
      }
    }
    expect(doc.services.api?.environment?.MODELWATCH_API_TOKEN).toBe('modelwatch_api_token-value');
    expect(doc.services.grafana?.environment?.GF_SECURITY_ADMIN_PASSWORD).toBe('grafana_admin_password-value');
    for (const s of Object.values(doc.services).filter(isModelwatch)) {
      if (s.command?.[0] !== 'demo-server')
        expect(s.environment?.MODELWATCH_CLICKHOUSE_PASSWORD).toBe('clickhouse_password-value');
    }
  });

  it('refuses to start without the passwords and the API token', () => {
    const empty = join(work, 'empty.env');
    writeFileSync(empty, '');
    const r = spawnSync('docker-compose', ['--env-file', empty, '--project-directory', ROOT, '-f', file, 'config'], {
      encoding: 'utf8',
      env: cleanEnv,
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(
      /set (CLICKHOUSE_PASSWORD|MODELWATCH_API_TOKEN|GRAFANA_ADMIN_PASSWORD|CLICKHOUSE_CLUSTER_SECRET) in \.env/,
    );
  });

  it('has Prometheus scrape every role, each target a service that serves /metrics on that port', () => {
    const prom = parseYaml(readFileSync('deploy/prometheus.yml', 'utf8')) as {
      scrape_configs: {
        job_name: string;
        static_configs?: { targets: string[] }[];
        dns_sd_configs?: { names: string[]; port: number }[];
      }[];
    };
    const targets: { service: string; port: number }[] = [];
    for (const job of prom.scrape_configs) {
      for (const sc of job.static_configs ?? [])
        for (const t of sc.targets) targets.push({ service: t.split(':')[0] ?? '', port: portOf(t) });
      for (const dc of job.dns_sd_configs ?? []) for (const n of dc.names) targets.push({ service: n, port: dc.port });
    }
    for (const t of targets) {
      const s = doc.services[t.service];
      expect(s && isModelwatch(s), `${t.service} is a modelwatch service of ${file}`).toBe(true);
      expect(metricsPorts(s as Service), `${t.service}:${t.port} serves /metrics`).toContain(t.port);
    }
    const scraped = new Set(targets.map((t) => t.service));
    for (const [name, s] of Object.entries(doc.services))
      if (isModelwatch(s) && ROLE_COMMANDS.includes(s.command?.[0] ?? ''))
        expect(scraped.has(name), `${name} is scraped`).toBe(true);
  });

  it('mounts the Grafana provisioning and dashboards and gives the datasources their variables', () => {
    const g = doc.services.grafana as Service;
    const mounts = (g.volumes ?? []).map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`));
    expect(mounts.some((m) => m.includes('grafana/provisioning') && m.includes('/etc/grafana/provisioning'))).toBe(
      true,
    );
    expect(mounts.some((m) => m.includes('grafana/dashboards') && m.includes('/var/lib/grafana/dashboards'))).toBe(
      true,
    );
    const ds = readFileSync('grafana/provisioning/datasources/datasources.yaml', 'utf8');
    for (const v of ds.matchAll(/\$\{([A-Z_]+)\}/g))
      expect(g.environment?.[v[1] as string], `grafana env ${v[1]}`).toBeTruthy();
    const host = String(g.environment?.CLICKHOUSE_HOST);
    expect(doc.services[host]?.image).toMatch(/^clickhouse\/clickhouse-server:/);
  });
});

describe('docker-compose.cluster.yml: ClickHouse cluster', () => {
  it('runs 2 shards × 2 replicas with Keeper and 3 Kafka brokers, and modelwatch in cluster mode', () => {
    const xml = readFileSync('deploy/clickhouse/cluster.xml', 'utf8');
    const shards = [...xml.matchAll(/<shard>([\s\S]*?)<\/shard>/g)].map((m) =>
      [...(m[1] ?? '').matchAll(/<host>([^<]+)<\/host>/g)].map((h) => h[1] as string),
    );
    expect(shards.map((s) => s.length)).toEqual([2, 2]);
    const macros = readdirSync('deploy/clickhouse/macros');
    for (const host of shards.flat()) {
      const svc = cluster.services[host] as Service;
      expect(svc.image, host).toMatch(/^clickhouse\/clickhouse-server:/);
      const mounts = (svc.volumes ?? []).map((v) => (typeof v === 'string' ? v : `${v.source}:${v.target}`)).join('\n');
      expect(mounts).toContain(`deploy/clickhouse/macros/${host}.xml`);
      expect(mounts).toContain('deploy/clickhouse/cluster.xml');
      expect(macros).toContain(`${host}.xml`);
      const m = readFileSync(`deploy/clickhouse/macros/${host}.xml`, 'utf8');
      const shard = Number(/<shard>(\d+)<\/shard>/.exec(m)?.[1]);
      expect(shards[shard - 1], `${host} macro shard`).toContain(host);
      expect(/<replica>([^<]+)<\/replica>/.exec(m)?.[1]).toBe(host);
    }
    const keeperHost = /<zookeeper>[\s\S]*?<host>([^<]+)<\/host>/.exec(xml)?.[1] ?? '';
    expect(cluster.services[keeperHost]?.image).toMatch(/^clickhouse\/clickhouse-keeper:/);
    const clusterName = /<remote_servers[^>]*>\s*<([A-Za-z_][\w-]*)>/.exec(xml)?.[1];
    const kafka = Object.keys(cluster.services).filter((n) => cluster.services[n]?.image?.startsWith('apache/kafka'));
    expect(kafka).toHaveLength(3);
    for (const s of Object.values(cluster.services).filter(
      (s) => isModelwatch(s) && s.command?.[0] !== 'demo-server',
    )) {
      expect(s.environment?.MODELWATCH_CLICKHOUSE_CLUSTER).toBe(clusterName);
      expect(
        String(s.environment?.MODELWATCH_KAFKA_BROKERS)
          .split(',')
          .map((b) => b.split(':')[0])
          .sort(),
      ).toEqual(kafka.sort());
    }
  });
});

describe('deploy/k8s', () => {
  const docs = readdirSync('deploy/k8s')
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) =>
      parseAllDocuments(readFileSync(`deploy/k8s/${f}`, 'utf8')).map((d) => {
        expect(d.errors, f).toEqual([]);
        return d.toJS() as {
          kind: string;
          metadata: { name: string; namespace?: string };
          spec?: Record<string, unknown>;
          data?: Record<string, string>;
        };
      }),
    );
  interface Container {
    name: string;
    image: string;
    args?: string[];
    env?: { name: string; value?: string }[];
    ports?: { containerPort: number }[];
  }
  const containersOf = (d: (typeof docs)[number]): Container[] =>
    (d.spec?.template as { spec: { containers: Container[] } } | undefined)?.spec.containers ?? [];

  it('parses, with a pod running the sidecar beside an inference container', () => {
    const pod = docs.find((d) => d.kind === 'Deployment' && containersOf(d).some((c) => c.args?.[0] === 'sidecar'));
    const cs = containersOf(pod as (typeof docs)[number]);
    expect(cs).toHaveLength(2);
    const sidecar = cs.find((c) => c.args?.[0] === 'sidecar') as Container;
    const model = cs.find((c) => c !== sidecar) as Container;
    const upstream = sidecar.env?.find((e) => e.name === 'MODELWATCH_UPSTREAM')?.value ?? '';
    expect(upstream).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(model.ports?.map((p) => p.containerPort)).toContain(portOf(upstream));
  });

  it('has a KServe InferenceService whose logger posts to the API service at /ingest/kserve', () => {
    const isvc = docs.find((d) => d.kind === 'InferenceService');
    const logger = (isvc?.spec?.predictor as { logger: { mode: string; url: string } }).logger;
    expect(logger.mode).toBe('all');
    const url = new URL(logger.url);
    expect(url.pathname).toBe('/ingest/kserve');
    const [svcName, ns] = url.hostname.split('.');
    const svc = docs.find((d) => d.kind === 'Service' && d.metadata.name === svcName && d.metadata.namespace === ns);
    expect((svc?.spec?.ports as { port: number }[]).map((p) => p.port)).toContain(Number(url.port));
  });

  it('sets only environment variables the config loader reads', () => {
    const names: string[] = [];
    for (const d of docs) {
      if (d.kind === 'ConfigMap') names.push(...Object.keys(d.data ?? {}));
      for (const c of containersOf(d))
        if (c.image.startsWith('modelwatch')) names.push(...(c.env ?? []).map((e) => e.name));
    }
    for (const name of names) expect(known.has(name), name).toBe(true);
    const n = names.length;
    expect(n).toBeGreaterThan(10);
  });
});

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

describe('MODELWATCH_METRICS_LISTEN', () => {
  it.each(['ingest', 'detect'])(
    'the %s service, run with its compose environment on embedded parts, serves /metrics and /healthz',
    async (name) => {
      const svc = single.services[name] as Service;
      const port = await freePort();
      const dir = mkdtempSync(join(work, `${name}-`));
      const env: Record<string, string> = { ...cleanEnv };
      for (const [k, v] of Object.entries(svc.environment ?? {})) if (v !== null && v !== '') env[k] = String(v);
      // The compose network's servers are not here: the embedded store and the in-process bus stand in.
      Object.assign(env, {
        MODELWATCH_CLICKHOUSE_URL: `chdb:${join(dir, 'chdb')}`,
        MODELWATCH_KAFKA_BROKERS: '',
        MODELWATCH_CLICKHOUSE_USER: '',
        MODELWATCH_CLICKHOUSE_PASSWORD: '',
        MODELWATCH_METRICS_LISTEN: `127.0.0.1:${port}`,
        MODELWATCH_LOG_LEVEL: 'warn',
      });
      const child = spawn(process.execPath, [join(ROOT, 'bin/modelwatch.js'), ...(svc.command ?? [])], {
        cwd: dir,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
      try {
        let text = '';
        for (let i = 0; i < 240 && text === ''; i++) {
          try {
            const r = await fetch(`http://127.0.0.1:${port}/metrics`);
            if (r.ok) text = await r.text();
          } catch {
            await new Promise((r) => setTimeout(r, 500));
          }
        }
        expect(text, stderr).toContain(name === 'ingest' ? 'modelwatch_ingest_lag_records' : 'modelwatch_detect_run');
        expect(text).toContain('modelwatch_process_resident_memory_bytes');
        expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
        expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
      } finally {
        child.kill('SIGTERM');
      }
      expect(await exited, stderr).toBe(0);
    },
    180_000,
  );
});
