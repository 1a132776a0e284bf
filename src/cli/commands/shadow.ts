import { createLogger } from '../../common/logger.js';
import { loadConfig } from '../../config/load.js';
import { createRuntime } from '../../runtime/create.js';
import { ShadowPool } from '../../shadow/pool.js';
import { runReplay, type ShadowReport } from '../../shadow/replay.js';
import { createShadowMetrics } from '../../shadow/results.js';
import { poolOptionsOf } from '../../shadow/service.js';
import { parseFlags, UsageError, type Command } from '../command.js';

const usage = `modelwatch shadow --model NAME --candidate FILE.onnx [--from ISO --to ISO] [--limit N] [--sample F] [--format table|json] [--config FILE]
  --model NAME        model whose stored traffic is replayed
  --candidate FILE    candidate ONNX model (a local file)
  --from ISO          range start (default: to minus retention.payloadDays)
  --to ISO            range end, exclusive (default: now)
  --limit N           most rows replayed (default 100000)
  --sample F          fraction of calls replayed, 0 < F <= 1 (default 1)
  --format FMT        table (default) or json
  --config FILE       YAML or JSON config file (default: $MODELWATCH_CONFIG)
Replays the stored inputs through the candidate, compares with production's stored outputs and prints the
comparison and a verdict (promote, hold, reject). Progress goes to stderr. Exit 0 whatever the verdict.`;

function time(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw new UsageError(`--${flag}: not an ISO 8601 time: ${v}`, usage);
  return ms;
}

function positive(v: string | undefined, flag: string, integer: boolean): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!(Number.isFinite(n) && n > 0 && (!integer || Number.isSafeInteger(n))))
    throw new UsageError(`--${flag}: expected a positive ${integer ? 'integer' : 'number'}, got ${v}`, usage);
  return n;
}

const f = (v: number | null | undefined, d = 4): string =>
  v === null || v === undefined ? '-' : Number(v.toPrecision(d)).toString();

/** The comparison as a human-readable table. */
export function formatShadowTable(r: ShadowReport): string {
  const lines: string[] = [];
  const kv = (k: string, v: string): void => void lines.push(`${k.padEnd(22)} ${v}`);
  kv('run', r.run_id);
  kv('model', r.model);
  kv('candidate', `${r.candidate} (sha256 ${r.candidate_sha256.slice(0, 12)})`);
  kv(
    'execution provider',
    r.execution_provider +
      (r.execution_fallbacks.length > 0
        ? ` (fell back: ${r.execution_fallbacks.map((x) => x.provider).join(', ')})`
        : ''),
  );
  kv('window', `${r.window.from} → ${r.window.to}`);
  kv(
    'rows',
    `${r.rows} compared, ${r.skipped} skipped (${
      Object.entries(r.skipped_by_reason)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ') || 'none'
    })`,
  );
  kv('inputs', `payload ${r.inputs.payload}, rebuilt from features ${r.inputs.features}`);
  if (r.agreement !== null) kv('agreement', f(r.agreement, 6));
  if (r.classification && r.classification.flips.length > 0)
    kv(
      'top flips',
      r.classification.flips
        .slice(0, 5)
        .map((x) => `${x.from}→${x.to} ${x.count}`)
        .join(', '),
    );
  if (r.differences)
    kv(
      '|diff| p50/p95/max',
      `${f(r.differences.absolute.p50)} / ${f(r.differences.absolute.p95)} / ${f(r.differences.absolute.max)}`,
    );
  for (const d of r.output_drift) kv(`drift ${d.column}`, `KS ${f(d.ks)} (p ${f(d.p_value, 3)}), PSI ${f(d.psi)}`);
  const m = r.performance.measured;
  if (m?.classification)
    kv(
      'accuracy prod → cand',
      `${f(m.classification.production.accuracy)} → ${f(m.classification.candidate.accuracy)} (McNemar p ${f(m.classification.mcnemar.pValue, 3)}, ${m.classification.rows} labelled)`,
    );
  if (m?.regression)
    kv(
      `${m.regression.metric} prod → cand`,
      `${f(m.regression.production)} → ${f(m.regression.candidate)} (CI ${f(m.regression.low)}..${f(m.regression.high)})`,
    );
  const e = r.performance.estimated;
  if (e?.candidate)
    kv('estimated accuracy', `prod ${f(e.production?.accuracy)} → cand ${f(e.candidate.accuracy)} (CBPE)`);
  const c = r.latency_ms.candidate;
  kv('candidate latency', `p50 ${f(c.p50Ms)} ms, p99 ${f(c.p99Ms)} ms per batch; ${f(c.rowsPerSecond)} rows/s`);
  kv(
    'production latency',
    `p50 ${f(r.latency_ms.production.p50)} ms, p99 ${f(r.latency_ms.production.p99)} ms per call`,
  );
  kv('verdict', r.verdict.toUpperCase());
  for (const reason of r.reasons) lines.push(`  - ${reason}`);
  return `${lines.join('\n')}\n`;
}

/** `modelwatch shadow`: replay stored traffic through a candidate and print the comparison. */
export const shadowCommand: Command = {
  summary: 'replay stored traffic through a candidate ONNX model and say whether it is safe to promote',
  usage,
  async run(argv) {
    const { help, values } = parseFlags(
      argv,
      {
        config: { type: 'string' },
        model: { type: 'string' },
        candidate: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        limit: { type: 'string' },
        sample: { type: 'string' },
        format: { type: 'string' },
      },
      usage,
    );
    if (help) {
      process.stdout.write(`usage: ${usage}\n`);
      return 0;
    }
    if (values.model === undefined) throw new UsageError('--model is required', usage);
    if (values.candidate === undefined) throw new UsageError('--candidate is required', usage);
    const format = values.format ?? 'table';
    if (format !== 'table' && format !== 'json') throw new UsageError(`--format: table or json, got ${format}`, usage);
    const fromMs = time(values.from, 'from');
    const toMs = time(values.to, 'to');
    const limit = positive(values.limit, 'limit', true);
    const sample = positive(values.sample, 'sample', false);
    const config = loadConfig({ file: values.config });
    const logger = createLogger(config.logLevel);
    const runtime = await createRuntime(config, { logger });
    const pool = new ShadowPool(poolOptionsOf(runtime));
    let lastLine = 0;
    try {
      const report = await runReplay(
        { store: runtime.store, config, pool, metrics: createShadowMetrics(runtime.metrics), logger },
        {
          model: values.model,
          candidate: { path: values.candidate },
          fromMs,
          toMs,
          limit,
          sample,
          onProgress: (p) => {
            if (Date.now() - lastLine < 1000 && p.fraction < 1) return;
            lastLine = Date.now();
            process.stderr.write(
              `shadow: ${(100 * p.fraction).toFixed(0)}% of calls read, ${p.rows} rows compared, ${p.skipped} skipped\n`,
            );
          },
        },
      );
      process.stdout.write(format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatShadowTable(report));
      return 0;
    } finally {
      await pool.close();
      await runtime.close();
    }
  },
};
