// `npm run bench -- alerts`: one evaluation cycle of the default alert rules over stored results of
// 1,000 models × 20 features (3 detection runs each: drift results, performance results, metric series
// and run records), on embedded ClickHouse, timed against the 2 s target and the evaluation interval.
// The first cycle takes the lease, loads state and fires what is drifted (~100 models with dataset drift,
// 1,200 drifting features, 20 error-rate alerts); the next ones are the steady state. Peak RSS is the
// process's, load average is recorded because the machine is shared.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { shipped } from './shipped.js';

const { createStore } = await shipped<typeof import('../src/store/index.js')>('store/index.js');
const { startAlerting } = await shipped<typeof import('../src/alerts/index.js')>('alerts/index.js');
const { loadConfig } = await shipped<typeof import('../src/config/index.js')>('config/index.js');
const { InProcessBus } = await shipped<typeof import('../src/bus/index.js')>('bus/index.js');
const { silentLogger } = await shipped<typeof import('../src/common/index.js')>('common/index.js');

const MODELS = Number(process.env.ALERTS_BENCH_MODELS ?? 1000);
const FEATURES = 20;
const RUNS = 3;
const TARGET_S = 2;
const CYCLES = 5;

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mw-bench-alerts-'));
  const store = createStore({ url: `chdb:${dir}` });
  try {
    await store.migrate();
    const now = Date.now();
    const t = (r: string) => `fromUnixTimestamp64Milli(toInt64(${now})) - toIntervalSecond((${RUNS - 1} - ${r}) * 60)`;
    const perModel = RUNS * (FEATURES + 1);
    const loadStart = performance.now();
    // Drift results: every 10th model drifts in 12 of 20 features (dataset share 0.6 ≥ 0.5).
    await store.command(
      `INSERT INTO mw_drift_results (run_id, model, ts, window_from, window_to, reference_id, segment, feature, kind, output,
         method, parameters, n_ref, n_cur, statistic, p_value, score, threshold, drifted, stats, quality)
       SELECT concat('run-', toString(m), '-', toString(r)), concat('model-', toString(m)), ${t('r')}, ${t('r')} - INTERVAL 1 HOUR, ${t('r')},
              'ref-1', '', if(f = ${FEATURES}, '', concat('f', toString(f))), if(f = ${FEATURES}, 'dataset', 'numeric'), false,
              if(f = ${FEATURES}, 'share', 'psi'), '{}', 5000, 1000, score, NULL, score, if(f = ${FEATURES}, 0.5, 0.2), drifted, '{}', '{}'
       FROM (SELECT intDiv(number, ${perModel}) AS m, intDiv(number % ${perModel}, ${FEATURES + 1}) AS r, number % ${FEATURES + 1} AS f,
                    (m % 10 = 0 AND f < 12) AS d,
                    if(f = ${FEATURES}, if(m % 10 = 0, 0.6, 0.0), if(d, 0.5, 0.05)) AS score,
                    if(f = ${FEATURES}, m % 10 = 0, d) AS drifted
             FROM numbers(${MODELS * perModel}))`,
    );
    // Performance: estimated and measured accuracy and f1, flat (no drop).
    await store.command(
      `INSERT INTO mw_performance_results (run_id, model, ts, window_from, window_to, task, source, metric, value, rows, labelled_rows, details)
       SELECT concat('run-', toString(m), '-', toString(r)), concat('model-', toString(m)), ${t('r')}, ${t('r')} - INTERVAL 1 HOUR, ${t('r')},
              'classification', if(s = 0, 'estimated', 'measured'), if(k = 0, 'accuracy', 'f1'), 0.9, 1000, 800, '{}'
       FROM (SELECT intDiv(number, ${RUNS * 4}) AS m, intDiv(number % ${RUNS * 4}, 4) AS r, intDiv(number % 4, 2) AS s, number % 2 AS k
             FROM numbers(${MODELS * RUNS * 4}))`,
    );
    // Series: traffic (requests, error rate: every 50th model at 10%) and four quality rates per feature.
    const series = `['traffic.requests', 'traffic.error_rate', 'quality.quarantine_rate']`;
    await store.command(
      `INSERT INTO mw_metric_series (run_id, model, ts, series, value, feature)
       SELECT concat('run-', toString(m), '-', toString(r)), concat('model-', toString(m)), ${t('r')},
              ${series}[i + 1], multiIf(i = 0, 100, i = 1, if(m % 50 = 0, 0.1, 0.001), 0.0), ''
       FROM (SELECT intDiv(number, ${RUNS * 3}) AS m, intDiv(number % ${RUNS * 3}, 3) AS r, number % 3 AS i FROM numbers(${MODELS * RUNS * 3}))`,
    );
    const quality = `['quality.missing_rate', 'quality.non_finite_rate', 'quality.out_of_range_rate', 'quality.unseen_rate']`;
    await store.command(
      `INSERT INTO mw_metric_series (run_id, model, ts, series, value, feature)
       SELECT concat('run-', toString(m), '-', toString(r)), concat('model-', toString(m)), ${t('r')}, ${quality}[q + 1], 0.01, concat('f', toString(f))
       FROM (SELECT intDiv(number, ${RUNS * 4 * FEATURES}) AS m, intDiv(number % ${RUNS * 4 * FEATURES}, ${4 * FEATURES}) AS r,
                    intDiv(number % ${4 * FEATURES}, ${FEATURES}) AS q, number % ${FEATURES} AS f
             FROM numbers(${MODELS * RUNS * 4 * FEATURES}))`,
    );
    await store.command(
      `INSERT INTO mw_detect_runs SELECT concat('run-', toString(m), '-', toString(r)), concat('model-', toString(m)), ${t('r')},
         ${t('r')} - INTERVAL 1 HOUR, ${t('r')}, 60000, 'ref-1', 'ok', '', 100, 1000
       FROM (SELECT intDiv(number, ${RUNS}) AS m, number % ${RUNS} AS r FROM numbers(${MODELS * RUNS}))`,
    );
    const rows = await store.query<{ t: string; n: number }>(
      `SELECT 'drift' AS t, count() AS n FROM mw_drift_results UNION ALL SELECT 'performance', count() FROM mw_performance_results
       UNION ALL SELECT 'series', count() FROM mw_metric_series UNION ALL SELECT 'runs', count() FROM mw_detect_runs`,
    );
    const loadS = (performance.now() - loadStart) / 1000;
    const config = loadConfig({ env: {}, overrides: {} });
    const ctx = { config, store, bus: new InProcessBus(), logger: silentLogger, metrics: new Registry() };
    const alerting = await startAlerting(ctx, { timers: false, leaseSettleMs: 0, clock: () => now });
    const cycles: { s: number; candidates: number; changed: number; phases_ms: Record<string, number> }[] = [];
    try {
      for (let i = 0; i < CYCLES; i++) {
        const r = await alerting.runOnce();
        cycles.push({
          s: Number((r.durationMs / 1000).toFixed(3)),
          candidates: r.candidates,
          changed: r.changed.length,
          phases_ms: Object.fromEntries(Object.entries(r.phases).map(([k, v]) => [k, Math.round(v)])),
        });
        console.error(
          `cycle ${i + 1}: ${(r.durationMs / 1000).toFixed(3)} s, ${r.candidates} candidates, ${r.changed.length} changed`,
        );
      }
      await alerting.delivery.idle(10_000);
    } finally {
      await alerting.stop();
    }
    const firing = [...alerting.book.active.values()].filter((a) => a.state === 'firing').length;
    const steady = cycles
      .slice(1)
      .map((c) => c.s)
      .sort((a, b) => a - b);
    const result = {
      bench: 'alerts',
      date: new Date().toISOString(),
      machine: { cpus: 2, node: process.version },
      models: MODELS,
      features: FEATURES,
      runs_per_model: RUNS,
      stored_rows: Object.fromEntries(rows.map((r) => [r.t, Number(r.n)])),
      data_load_s: Number(loadS.toFixed(2)),
      first_cycle_s: Number((cycles[0]?.s ?? 0).toFixed(3)),
      steady_cycle_median_s: Number((steady[Math.floor(steady.length / 2)] ?? 0).toFixed(3)),
      steady_cycle_max_s: Number((steady[steady.length - 1] ?? 0).toFixed(3)),
      candidates_per_cycle: cycles[0]?.candidates ?? 0,
      alerts_changed_first_cycle: cycles[0]?.changed ?? 0,
      firing_after: firing,
      evaluate_interval_s: config.alerts.evaluateIntervalMs / 1000,
      target_s: TARGET_S,
      peak_rss_mb: Number((process.resourceUsage().maxRSS / 1024).toFixed(1)),
      load_average_1m_at_end: Number((loadavg()[0] ?? 0).toFixed(2)),
      cycles,
    };
    const out = join(import.meta.dirname, 'results');
    writeFileSync(join(out, 'alerts.json'), JSON.stringify(result, null, 2) + '\n');
    writeFileSync(
      join(out, 'alerts.md'),
      `# Alert evaluation bench\n\n${MODELS} models × ${FEATURES} features, ${RUNS} stored runs each, default rules, embedded ClickHouse.\n\n` +
        `| | value |\n|---|---|\n| candidates per cycle | ${result.candidates_per_cycle} |\n| first cycle (fires ${result.alerts_changed_first_cycle} alerts) | ${result.first_cycle_s} s |\n` +
        `| steady cycle, median / max | ${result.steady_cycle_median_s} / ${result.steady_cycle_max_s} s |\n| target | ≤ ${TARGET_S} s (evaluation interval ${result.evaluate_interval_s} s) |\n` +
        `| peak RSS | ${result.peak_rss_mb} MB |\n| load average (1 min) at end | ${result.load_average_1m_at_end} |\n`,
    );
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
