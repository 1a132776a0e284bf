import { readFileSync, readdirSync } from 'node:fs';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { InProcessBus } from '../src/bus/index.js';
import type { Logger } from '../src/common/logger.js';
import { configSchema } from '../src/config/schema.js';
import { runDetectionOnce, type DriftDetectFn } from '../src/drift/detector.js';
import { computeDrift } from '../src/drift/stats/engine.js';
import { storedFeatureSpecs, trafficSample, type StoredFeature } from '../src/drift/stats/sample.js';
import type { RuntimeContext } from '../src/runtime/context.js';
import { registerDefaultMetrics } from '../src/runtime/metrics.js';
import type { ClickHouseStore, PredictionRow, RequestRow } from '../src/store/index.js';
import { gaussian, mulberry32 } from './support/seeded-prng.js';
import { openTestStore } from './support/store.js';

// Grafana dashboards and provisioning under grafana/: structure, references, and every ClickHouse query
// (panels, template variables, annotations) run against the migrated schema holding real detector output.

const DASH_DIR = 'grafana/dashboards';
const GRID_WIDTH = 24;
const MIN = 60_000;
const HOUR = 3_600_000;
/** Grafana's built-in datasource (annotations from the Grafana database, annotation list panel). */
const GRAFANA_BUILTIN = '-- Grafana --';

interface DsRef {
  type?: string;
  uid?: string;
}
interface Target {
  refId?: string;
  datasource?: DsRef;
  rawSql?: string;
  expr?: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: DsRef;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  datasource?: DsRef;
  query?: string;
  includeAll?: boolean;
  allValue?: string;
}
interface Annotation {
  name: string;
  datasource?: DsRef;
  target?: Target & { type?: string };
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
  annotations: { list: Annotation[] };
}

const files = readdirSync(DASH_DIR).filter((f) => f.endsWith('.json'));
const dashboards = files.map((f) => ({
  file: f,
  dash: JSON.parse(readFileSync(`${DASH_DIR}/${f}`, 'utf8')) as Dashboard,
}));
const datasources = (
  parseYaml(readFileSync('grafana/provisioning/datasources/datasources.yaml', 'utf8')) as {
    datasources: { uid: string; type: string; name: string }[];
  }
).datasources;

function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Every datasource reference in a dashboard, with where it is. */
function dsRefs(d: Dashboard): { where: string; ref: DsRef }[] {
  const out: { where: string; ref: DsRef }[] = [];
  for (const p of allPanels(d)) {
    if (p.datasource) out.push({ where: `panel ${p.title}`, ref: p.datasource });
    for (const t of p.targets ?? [])
      if (t.datasource) out.push({ where: `panel ${p.title} target ${t.refId}`, ref: t.datasource });
  }
  for (const v of d.templating.list) if (v.datasource) out.push({ where: `variable ${v.name}`, ref: v.datasource });
  for (const a of d.annotations.list) {
    if (a.datasource) out.push({ where: `annotation ${a.name}`, ref: a.datasource });
    if (a.target?.datasource) out.push({ where: `annotation ${a.name} target`, ref: a.target.datasource });
  }
  return out;
}

const isClickHouse = (ref: DsRef | undefined): boolean => ref?.type === 'grafana-clickhouse-datasource';
const isPrometheus = (ref: DsRef | undefined): boolean => ref?.type === 'prometheus';

describe('Grafana provisioning and dashboards: structure', () => {
  it('provisions the ClickHouse and Prometheus datasources with fixed uids, and the dashboards folder', () => {
    expect(datasources.map((d) => d.type).sort()).toEqual(['grafana-clickhouse-datasource', 'prometheus']);
    expect(new Set(datasources.map((d) => d.uid)).size).toBe(datasources.length);
    const provider = parseYaml(readFileSync('grafana/provisioning/dashboards/modelwatch.yaml', 'utf8')) as {
      providers: { type: string; options: { path: string } }[];
    };
    expect(provider.providers[0]?.type).toBe('file');
    expect(provider.providers[0]?.options.path).toBe('/var/lib/grafana/dashboards');
  });

  it('has the fleet, model and pipeline dashboards with unique uids and titles', () => {
    expect(files.sort()).toEqual(['modelwatch-fleet.json', 'modelwatch-model.json', 'modelwatch-pipeline.json']);
    const uids = dashboards.map((d) => d.dash.uid);
    expect(new Set(uids).size).toBe(uids.length);
    for (const uid of uids) expect(uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
    expect(new Set(dashboards.map((d) => d.dash.title)).size).toBe(dashboards.length);
  });

  it.each(dashboards)('$file: unique panel ids, a valid non-overlapping grid, known datasources', ({ dash }) => {
    expect(dash.schemaVersion).toBeGreaterThanOrEqual(36);
    const panels = allPanels(dash);
    const ids = panels.map((p) => p.id);
    expect(ids.every((id) => Number.isInteger(id) && id > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of panels) {
      const g = p.gridPos;
      for (const n of [g.x, g.y, g.w, g.h]) expect(Number.isInteger(n) && n >= 0, `${p.title} gridPos`).toBe(true);
      expect(g.w, p.title).toBeGreaterThan(0);
      expect(g.h, p.title).toBeGreaterThan(0);
      expect(g.x + g.w, `${p.title} fits in ${GRID_WIDTH} columns`).toBeLessThanOrEqual(GRID_WIDTH);
      for (let x = g.x; x < g.x + g.w; x++)
        for (let y = g.y; y < g.y + g.h; y++) {
          expect(cells.has(`${x},${y}`), `${p.title} overlaps another panel at ${x},${y}`).toBe(false);
          cells.add(`${x},${y}`);
        }
      if (p.type !== 'row' && p.type !== 'annolist')
        expect(p.targets?.length ?? 0, `${p.title} has queries`).toBeGreaterThan(0);
    }
    const uids = new Set(datasources.map((d) => d.uid));
    for (const { where, ref } of dsRefs(dash)) {
      if (ref.uid === GRAFANA_BUILTIN) {
        expect(ref.type, where).toBe('grafana');
        continue;
      }
      expect(uids.has(ref.uid ?? ''), `${where}: datasource ${ref.uid}`).toBe(true);
      expect(datasources.find((d) => d.uid === ref.uid)?.type, where).toBe(ref.type);
    }
  });

  it('has the model and version template variables on the model dashboard, used by its panels', () => {
    const model = dashboards.find((d) => d.dash.uid === 'modelwatch-model')?.dash;
    expect(model?.templating.list.map((v) => v.name)).toEqual(expect.arrayContaining(['model', 'version']));
    const sql = allPanels(model as Dashboard).flatMap((p) => (p.targets ?? []).map((t) => t.rawSql ?? ''));
    expect(sql.filter((s) => s.includes("model = '${model}'")).length).toBeGreaterThan(8);
    expect(sql.filter((s) => s.includes('${version}')).length).toBeGreaterThanOrEqual(3);
  });

  it('names only metrics the code registers in its Prometheus queries', () => {
    const registry = new Registry();
    registerDefaultMetrics(registry);
    const known = new Set(registry.getMetricsAsArray().map((m) => m.name));
    const src = readdirSync('src', { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    for (const f of src)
      for (const m of readFileSync(`src/${f}`, 'utf8').matchAll(/name: '(modelwatch_[a-z0-9_]+)'/g))
        known.add(m[1] as string);
    for (const m of readFileSync('src/ingest/metrics.ts', 'utf8').matchAll(/'(modelwatch_[a-z0-9_]+)'/g))
      known.add(m[1] as string);
    let exprs = 0;
    for (const { dash } of dashboards)
      for (const p of allPanels(dash))
        for (const t of p.targets ?? []) {
          if (!isPrometheus(t.datasource ?? p.datasource)) continue;
          exprs++;
          const names = [...(t.expr ?? '').matchAll(/\bmodelwatch_[a-z0-9_]+/g)].map((m) => m[0]);
          expect(names.length, `${p.title}: ${t.expr}`).toBeGreaterThan(0);
          for (const n of names)
            expect(known.has(n.replace(/_(bucket|sum|count)$/, '')), `${p.title}: ${n}`).toBe(true);
        }
    expect(exprs).toBeGreaterThanOrEqual(12);
  });
});

function recordingLogger(): Logger {
  const noop = (): void => undefined;
  return { debug: noop, info: noop, warn: noop, error: noop };
}

describe('Grafana dashboards: every ClickHouse query against the migrated schema with data', () => {
  let store: ClickHouseStore;
  let cleanup: () => Promise<void>;
  // Whole hours before now, so rows stamped by the server at insert time (inserted_at, received_at) fall in range too.
  const T0 = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
  const range = { from: T0, to: Date.now() + 10 * MIN };

  beforeAll(async () => {
    ({ store, cleanup } = await openTestStore());
    const rnd = mulberry32(7);
    const g = gaussian(rnd);
    const features: StoredFeature[] = [
      { name: 'x_0', kind: 'numeric' },
      { name: 'x_1', kind: 'numeric' },
    ];
    const traffic = async (model: string, version: string, start: number, n: number, shift: number): Promise<void> => {
      const preds: PredictionRow[] = [];
      const reqs: RequestRow[] = [];
      const labels: { request_id: string; row: number; label: string }[] = [];
      for (let i = 0; i < n; i++) {
        const ts = start + Math.floor((i * HOUR) / n);
        const id = `${model}-${ts}-${i}`;
        const p = rnd();
        preds.push({
          model,
          version,
          ts,
          event_id: id,
          request_id: id,
          row: 0,
          features_num: { x_0: shift + g(), x_1: g() },
          features_cat: {},
          outputs_num: { prob_0: p },
          outputs_cat: {},
        });
        reqs.push({
          model,
          version,
          ts,
          event_id: id,
          request_id: id,
          source: 'rest',
          route: `/v2/models/${model}/infer`,
          status: i % 40 === 0 ? 500 : 200,
          latency_ms: 20 * (1 + 0.1 * g()),
          request_bytes: 100,
          response_bytes: 50,
          request_truncated: false,
          response_truncated: false,
          rows: 1,
          error: '',
        });
        if (i % 2 === 0) labels.push({ request_id: id, row: 0, label: rnd() < p ? '1' : '0' });
      }
      await store.insertPredictions(preds);
      await store.insertRequests(reqs);
      await store.insertLabels(labels);
    };
    await traffic('m1', '1', T0, 600, 0);
    await traffic('m1', '2', T0 + HOUR, 600, 1.5);
    await traffic('m2', '1', T0 + HOUR, 300, 0);
    await store.insertQuarantine([
      {
        event_id: 'q1',
        request_id: 'q1',
        model: 'm1',
        source: 'rest',
        origin: 'inprocess/1',
        code: 'decode_invalid',
        field: 'inputs',
        reason: 'bad',
        payload: '',
      },
    ]);

    const ctx: RuntimeContext = {
      config: configSchema.parse({ models: { m1: { task: 'binary', prediction: { tensor: 'prob' } } } }),
      store,
      bus: new InProcessBus(),
      logger: recordingLogger(),
      metrics: new Registry(),
    };
    const drift: DriftDetectFn = (s, { model, from, to }) =>
      computeDrift(s, {
        reference: trafficSample({ model, fromMs: T0, toMs: T0 + HOUR, features, paramPrefix: 'r_' }),
        current: trafficSample({ model, fromMs: from, toMs: to, features, paramPrefix: 'c_' }),
        features: storedFeatureSpecs(features),
      });
    for (const now of [T0 + 2 * HOUR - 10 * MIN, T0 + 2 * HOUR]) {
      await runDetectionOnce(ctx, { model: 'm1', now, detectDrift: drift });
    }
  }, 120_000);

  afterAll(async () => cleanup());

  /**
   * Grafana's macros as the ClickHouse datasource expands them (its pkg/macros: second-precision
   * `toDateTime(<unix>)` bounds, `toStartOfInterval(toDateTime(col), INTERVAL n second)`), then the
   * dashboard's variables.
   */
  function expand(sql: string, vars: Record<string, string>): string {
    const s = (ms: number): string => String(Math.floor(ms / 1000));
    const interval = 60;
    let out = sql
      .replace(
        /\$__timeFilter_ms\(([^)]+)\)/g,
        (_m, c: string) =>
          `${c} >= fromUnixTimestamp64Milli(${range.from}) AND ${c} <= fromUnixTimestamp64Milli(${range.to})`,
      )
      .replace(
        /\$__timeFilter\(([^)]+)\)/g,
        (_m, c: string) => `${c} >= toDateTime(${s(range.from)}) AND ${c} <= toDateTime(${s(range.to)})`,
      )
      .replace(
        /\$__timeInterval_ms\(([^)]+)\)/g,
        (_m, c: string) => `toStartOfInterval(toDateTime64(${c}, 3), INTERVAL ${interval * 1000} millisecond)`,
      )
      .replace(
        /\$__timeInterval\(([^)]+)\)/g,
        (_m, c: string) => `toStartOfInterval(toDateTime(${c}), INTERVAL ${interval} second)`,
      )
      .replace(/\$__fromTime_ms\b/g, `fromUnixTimestamp64Milli(${range.from})`)
      .replace(/\$__toTime_ms\b/g, `fromUnixTimestamp64Milli(${range.to})`)
      .replace(/\$__fromTime\b/g, `toDateTime(${s(range.from)})`)
      .replace(/\$__toTime\b/g, `toDateTime(${s(range.to)})`)
      .replace(/\$__interval_s\b/g, String(interval));
    for (const [name, value] of Object.entries(vars)) {
      out = out.replace(new RegExp(`\\$\\{${name}(?::[a-z]+)?\\}|\\$${name}\\b`, 'g'), value);
    }
    expect(out, `unexpanded macro or variable in: ${out}`).not.toMatch(/\$/);
    return out;
  }

  async function rowsOf(sql: string): Promise<Record<string, unknown>[]> {
    return store.query(sql, { role: 'api' });
  }

  /** Resolves the dashboard's variables in order, as Grafana does on load (All for multi/includeAll ones). */
  async function resolveVars(d: Dashboard): Promise<Record<string, string>> {
    const vars: Record<string, string> = {};
    for (const v of d.templating.list) {
      if (v.type !== 'query' || !isClickHouse(v.datasource)) continue;
      const rows = await rowsOf(expand(v.query ?? '', vars));
      expect(rows.length, `${d.uid}: variable ${v.name} has values`).toBeGreaterThan(0);
      vars[v.name] = v.includeAll ? (v.allValue ?? '') : String(Object.values(rows[0] ?? {})[0]);
    }
    return vars;
  }

  it.each(dashboards)('$file: every ClickHouse panel returns rows', async ({ dash }) => {
    const vars = await resolveVars(dash);
    let queries = 0;
    for (const p of allPanels(dash))
      for (const t of p.targets ?? []) {
        if (!isClickHouse(t.datasource ?? p.datasource)) continue;
        queries++;
        const rows = await rowsOf(expand(t.rawSql ?? '', vars));
        expect(rows.length, `${dash.uid}: "${p.title}" returned no rows`).toBeGreaterThan(0);
      }
    for (const a of dash.annotations.list) {
      if (!isClickHouse(a.datasource) || a.target?.rawSql === undefined) continue;
      const rows = await rowsOf(expand(a.target.rawSql, vars));
      expect(Array.isArray(rows), `${dash.uid}: annotation ${a.name}`).toBe(true);
    }
    expect(queries, dash.uid).toBeGreaterThanOrEqual(dash.uid === 'modelwatch-pipeline' ? 4 : 6);
  });

  it('filters the model dashboard by a concrete version as well as All', async () => {
    const dash = dashboards.find((d) => d.dash.uid === 'modelwatch-model')?.dash as Dashboard;
    const vars = await resolveVars(dash);
    const rps = allPanels(dash).find((p) => p.title === 'Requests / s');
    const versionsOf = async (version: string): Promise<string[]> =>
      [
        ...new Set(
          (await rowsOf(expand(rps?.targets?.[0]?.rawSql ?? '', { ...vars, version }))).map((r) => String(r.version)),
        ),
      ].sort();
    expect(vars.model).toBe('m1');
    expect(await versionsOf('__all')).toEqual(['1', '2']);
    expect(await versionsOf('2')).toEqual(['2']);
  });

  it('shows the injected drift and both performance sources for the drifted model', async () => {
    const dash = dashboards.find((d) => d.dash.uid === 'modelwatch-model')?.dash as Dashboard;
    const vars = await resolveVars(dash);
    const latest = allPanels(dash).find((p) => p.title === 'Latest drift per feature');
    const rows = await rowsOf(expand(latest?.targets?.[0]?.rawSql ?? '', vars));
    expect(rows[0]).toMatchObject({ feature: 'x_0', drifted: true });
    const perf = allPanels(dash).find((p) => p.title === '${metric}: measured vs estimated');
    const sources = new Set((await rowsOf(expand(perf?.targets?.[0]?.rawSql ?? '', vars))).map((r) => r.source));
    expect([...sources].sort()).toEqual(['estimated', 'measured']);
  });
});
