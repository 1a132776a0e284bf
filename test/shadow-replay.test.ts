// Replay end to end: production traffic (answers of the real ONNX model) → the real ingest pipeline →
// chdb → runReplay on the shadow pool. Identical candidates agree 100% with zero differences; perturbed
// ones disagree at exactly the rate NumPy computed (fixtures); expired payloads fall back to the stored
// feature rows, or are skipped and counted when the schema no longer maps them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShadowPool, buildLogisticRegression, buildMlp, mcnemarExact } from '../src/shadow/index.js';
import { runReplay, type ShadowReport } from '../src/shadow/replay.js';
import { createShadowMetrics, listRuns, readRun } from '../src/shadow/results.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { modelsFixture } from './fixtures/shadow/load.js';
import { counterValue, newRegistry, testConfig } from './support/ingest.js';
import { openTestStore } from './support/store.js';
import { CALL_SIZES, ingestCalls, productionCalls } from './support/shadow.js';

const fx = modelsFixture();
const rows = fx.inputs.rows;
const models = {
  lr: buildLogisticRegression(fx.params.lr),
  lr_perturbed: buildLogisticRegression(fx.params.lr_perturbed),
  mlp: buildMlp(fx.params.mlp),
  mlp_perturbed: buildMlp(fx.params.mlp_perturbed),
};
const SIZES = CALL_SIZES;
const DAY = 86_400_000;
const LABELLED = 400;

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let pool: ShadowPool;
const registry = newRegistry();
const metrics = createShadowMetrics(registry);

async function produce(
  model: string,
  bytes: Uint8Array,
  t0: number,
  schemaModels: Record<string, unknown> = {},
  payloadDays = 7,
): Promise<string[]> {
  const { calls, labels } = await productionCalls(model, bytes, rows, t0);
  await ingestCalls(store, calls, { models: schemaModels as never, payloads: { days: payloadDays } });
  return labels;
}

const config = testConfig({ shadow: { verdict: { minRows: 100 } } });
const deps = () => ({ store, config, pool, metrics });
const now = Date.now();
let lrLabels: string[] = [];

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  pool = new ShadowPool({ workers: 2 });
  lrLabels = await produce('lr', models.lr, now - 3_600_000);
  await produce('mlp', models.mlp, now - 3_600_000);
  // Payloads kept one day, captured two days ago: expired.
  await produce('lr-old', models.lr, now - 2 * DAY, {}, 1);
  const renamed = {
    features: [0, 1, 2, 3].map((j) => ({ name: `f${j}`, tensor: 'input', index: j })),
    categorical: [],
  };
  await produce('lr-renamed', models.lr, now - 2 * DAY, { 'lr-renamed': renamed }, 1);
  // Ground truth on the first calls of lr: production's own labels (so production is right on them).
  const truth: { request_id: string; row: number; label: string }[] = [];
  for (let i = 0, k = 0; i < LABELLED; k++) {
    const n = Math.min(SIZES[k % SIZES.length] as number, rows.length - i);
    for (let r = 0; r < n; r++) truth.push({ request_id: `lr-req-${k}`, row: r, label: lrLabels[i + r] as string });
    i += n;
  }
  await store.insertLabels(truth);
}, 120_000);

afterAll(async () => {
  await pool.close();
  await cleanup();
});

describe('replay', () => {
  it('production answers match the NumPy fixture (the reference the rates below come from)', () => {
    expect(lrLabels.map(Number)).toEqual(fx.outputs.lr.labels);
  });

  for (const name of ['lr', 'mlp'] as const) {
    it(`${name}: an identical candidate agrees 100% with zero differences, and the run is stored`, async () => {
      const report = await runReplay(deps(), { model: name, candidate: { bytes: models[name], name: `${name}.onnx` } });
      expect(report.rows).toBe(rows.length);
      expect(report.skipped).toBe(0);
      expect(report.inputs).toEqual({ payload: rows.length, features: 0 });
      expect(report.agreement).toBe(1);
      expect(report.classification?.flips).toEqual([]);
      expect(report.differences?.absolute.max).toBe(0);
      expect(report.differences?.nonFinite).toBe(0);
      expect(report.output_drift.every((d) => d.ks === 0)).toBe(true);
      expect(report.execution_provider).toBe('cpu');
      expect(report.verdict).toBe('promote');
      expect(report.latency_ms.candidate.rows).toBe(rows.length);
      expect(report.latency_ms.production.p50).toBeGreaterThanOrEqual(2);
      const stored = await readRun(store, report.run_id);
      expect(stored?.status).toBe('done');
      expect(stored?.agreement).toBe(1);
      expect((JSON.parse(stored?.result ?? '{}') as ShadowReport).rows).toBe(rows.length);
      const out = await store.query<{ n: number; agree: number }>(
        `SELECT count() AS n, countIf(agree) AS agree FROM mw_shadow_outputs WHERE run_id = {id:String}`,
        { params: { id: report.run_id } },
      );
      expect(Number(out[0]?.n)).toBe(rows.length);
      expect(Number(out[0]?.agree)).toBe(rows.length);
    });

    it(`${name}: a perturbed candidate disagrees at exactly the NumPy rate`, async () => {
      const expected = fx.compare[name];
      const report = await runReplay(deps(), {
        model: name,
        candidate: { bytes: models[`${name}_perturbed`], name: `${name}-perturbed.onnx` },
        batchRows: 64,
      });
      expect(report.rows).toBe(rows.length);
      expect(report.rows - (report.classification?.agreements ?? 0)).toBe(expected.disagreements);
      expect(report.agreement).toBeCloseTo(expected.agreement, 12);
      expect(report.classification?.flipMatrix).toEqual(expected.flip_matrix);
      expect(report.differences?.absolute.max).toBeCloseTo(expected.abs_diff_max, 5);
      expect(report.verdict).toBe('reject');
      expect(report.reasons[0]).toMatch(/^agreement .* below 0.98$/);
      // Segments: by version, lowest agreement first, and rows add up.
      const seg = report.classification?.segments.version ?? [];
      expect(seg.map((s) => s.value).sort()).toEqual(['v1', 'v2']);
      expect(seg.reduce((n, s) => n + s.rows, 0)).toBe(rows.length);
    });
  }

  it('labelled rows: McNemar on the discordant pairs; the label-free estimate for the candidate', async () => {
    const report = await runReplay(deps(), { model: 'lr', candidate: { bytes: models.lr_perturbed, name: 'p.onnx' } });
    const perf = report.performance;
    expect(perf.labelled_rows).toBe(LABELLED);
    const cls = perf.measured?.classification;
    expect(cls?.production.accuracy).toBe(1);
    const b = cls?.mcnemar.b ?? -1;
    expect(cls?.mcnemar.c).toBe(0);
    expect(cls?.mcnemar.pValue).toBe(mcnemarExact(b, 0).pValue);
    const out = await store.query<{ n: number }>(
      `SELECT count() AS n FROM mw_shadow_outputs o
       INNER JOIN mw_labels l ON l.request_id = o.request_id AND l.row = o.row
       WHERE o.run_id = {id:String} AND NOT o.agree`,
      { params: { id: report.run_id } },
    );
    expect(b).toBe(Number(out[0]?.n));
    expect(perf.estimated?.candidate?.method).toBe('cbpe');
    expect(perf.estimated?.candidate?.rows).toBe(rows.length);
  });

  it('row limit and sampling', async () => {
    const limited = await runReplay(deps(), { model: 'lr', candidate: { bytes: models.lr, name: 'lr' }, limit: 250 });
    expect(limited.rows).toBe(250);
    const sampled = await runReplay(deps(), { model: 'lr', candidate: { bytes: models.lr, name: 'lr' }, sample: 0.3 });
    expect(sampled.rows).toBeGreaterThan(150);
    expect(sampled.rows).toBeLessThan(450);
  });

  it('expired payloads fall back to the stored feature rows', async () => {
    const report = await runReplay(deps(), { model: 'lr-old', candidate: { bytes: models.lr, name: 'lr' } });
    expect(report.rows).toBe(rows.length);
    expect(report.inputs).toEqual({ payload: 0, features: rows.length });
    expect(report.skipped).toBe(0);
    expect(report.agreement).toBe(1);
    expect(report.differences?.absolute.max).toBe(0);
  });

  it('expired payloads the schema no longer maps are skipped and counted', async () => {
    const before = await counterValue(registry, 'modelwatch_shadow_skipped_rows_total', {
      model: 'lr-renamed',
      reason: 'expired',
    });
    // TTL merges may already have deleted the rows: a call older than retention.payloadDays counts as expired.
    const oneDay = testConfig({ shadow: { verdict: { minRows: 100 } }, retention: { payloadDays: 1 } });
    const report = await runReplay(
      { ...deps(), config: oneDay },
      { model: 'lr-renamed', candidate: { bytes: models.lr, name: 'lr' }, fromMs: now - 3 * DAY },
    );
    expect(report.rows).toBe(0);
    expect(report.skipped).toBe(rows.length);
    expect(report.skipped_by_reason.expired).toBe(rows.length);
    expect(report.verdict).toBe('hold');
    const after = await counterValue(registry, 'modelwatch_shadow_skipped_rows_total', {
      model: 'lr-renamed',
      reason: 'expired',
    });
    expect(after - before).toBe(rows.length);
    // With the schema that maps them, the same rows are rebuilt.
    const mapped = testConfig({
      shadow: { verdict: { minRows: 100 } },
      models: { 'lr-renamed': { features: [0, 1, 2, 3].map((j) => ({ name: `f${j}`, tensor: 'input', index: j })) } },
    });
    const again = await runReplay(
      { ...deps(), config: mapped },
      { model: 'lr-renamed', candidate: { bytes: models.lr, name: 'lr' } },
    );
    expect(again.inputs.features).toBe(rows.length);
    expect(again.agreement).toBe(1);
  });

  it('a corrupt candidate fails the run cleanly and the failure is stored', async () => {
    const runId = 'corrupt-run';
    await expect(
      runReplay(deps(), { model: 'lr', candidate: { bytes: models.lr.subarray(0, 40), name: 'bad' }, runId }),
    ).rejects.toMatchObject({ code: 'input_invalid' });
    const stored = await readRun(store, runId);
    expect(stored?.status).toBe('failed');
    expect(stored?.error).toMatch(/could not be loaded/);
    expect((await listRuns(store, 'lr')).some((r) => r.run_id === runId)).toBe(true);
  });
});
