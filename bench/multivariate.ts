// `npm run bench -- multivariate`: time and peak RSS of each multivariate / embedding drift method on
// 100k × 20 numeric rows per side and on 10k × 384 embeddings per side, against NumPy / SciPy /
// scikit-learn doing the same computation (same caps, fold count, permutations and model settings;
// bench/multivariate_sklearn.py) in the same run, plus one full detection window of the default method
// set against the detect loop's 60 s cadence. Each measurement is its own child process under
// /usr/bin/time -v (peak RSS); ours is this file re-run as `--child`, loading the compiled dist/
// through bench/shipped.ts and calling the worker-thread entry points; the compute time is timed
// inside each child (data loading excluded on both sides). The load average is sampled throughout.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { assertFreshBuild, shipped } from './shipped.js';
import { seededRng } from '../src/drift/multivariate/random.js';

type Mv = typeof import('../src/drift/multivariate/index.js');
type Method = 'reconstruction' | 'domain_classifier' | 'mmd' | 'component_share' | 'mean_distance';
type Dataset = 'numeric' | 'embedding';

const root = join(import.meta.dirname, '..');
const SHAPES: Record<Dataset, [number, number]> = { numeric: [100_000, 20], embedding: [10_000, 384] };
const METHODS: Method[] = ['reconstruction', 'domain_classifier', 'mmd', 'component_share', 'mean_distance'];
/** The default set per feature group (src/drift/multivariate defaultMultivariateMethods). */
const DEFAULT_SET: Record<Dataset, Method[]> = {
  numeric: ['reconstruction', 'domain_classifier'],
  embedding: ['mmd', 'component_share', 'domain_classifier'],
};
const CADENCE_S = 60;
/** Parameters both sides use (ours: the defaults, spelled out so the baseline gets the same). */
const PARAMS = {
  seed: 42,
  varianceShare: 0.65,
  maxRowsPerSide: { domain_classifier: 5000, mmd: 1000 },
  folds: 5,
  nEstimators: 50,
  learningRate: 0.1,
  maxDepth: 3,
  minSamplesLeaf: 20,
  maxBins: 64,
  l2: 0,
  permutations: 100,
  alpha: 0.05,
};

function paramsOf(method: Method): Record<string, unknown> {
  const { maxRowsPerSide, ...rest } = PARAMS;
  const capped = method === 'domain_classifier' || method === 'mmd' ? { maxRowsPerSide: maxRowsPerSide[method] } : {};
  return { ...rest, ...capped };
}

// ---- data: seeded, written once as little-endian float64 for both runtimes ----

function normals(rng: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

/** 20 numeric features; the current side flips corr(f0, f1) from 0.8 to −0.8 and shifts f2 by 0.1. */
function numeric(n: number, current: boolean, seed: number): Float64Array {
  const z = normals(seededRng(seed));
  const out = new Float64Array(n * 20);
  const rho = current ? -0.8 : 0.8;
  for (let i = 0; i < n; i++) {
    const a = z();
    out[i * 20] = 10 + 3 * a;
    out[i * 20 + 1] = rho * a + 0.6 * z();
    out[i * 20 + 2] = z() + (current ? 0.1 : 0);
    for (let j = 3; j < 20; j++) out[i * 20 + j] = j < 10 ? z() * j : Math.exp(0.5 * z());
  }
  return out;
}

/** Unit-norm 384-d embeddings of one cluster whose long axis the current side rotates by 90°. */
function embedding(n: number, current: boolean, seed: number): Float64Array {
  const d = 384;
  const zc = normals(seededRng(99));
  const mu = Float64Array.from({ length: d }, () => zc() / Math.sqrt(d));
  const z = normals(seededRng(seed));
  const out = new Float64Array(n * d);
  const axis = current ? 8 : 0;
  for (let i = 0; i < n; i++) {
    const s = 0.5 * z();
    let norm = 0;
    for (let j = 0; j < d; j++) {
      const v = (mu[j] as number) + (j >= axis && j < axis + 8 ? s / Math.sqrt(8) : 0) + 0.02 * z();
      out[i * d + j] = v;
      norm += v * v;
    }
    norm = Math.sqrt(norm);
    for (let j = 0; j < d; j++) out[i * d + j] = (out[i * d + j] as number) / norm;
  }
  return out;
}

function writeData(dir: string): void {
  const [nn] = SHAPES.numeric;
  const [ne] = SHAPES.embedding;
  const put = (name: string, a: Float64Array): void =>
    writeFileSync(join(dir, name), new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  put('numeric_ref.f64', numeric(nn, false, 1));
  put('numeric_cur.f64', numeric(nn, true, 2));
  put('embedding_ref.f64', embedding(ne, false, 3));
  put('embedding_cur.f64', embedding(ne, true, 4));
  writeFileSync(join(dir, 'shapes.json'), JSON.stringify(SHAPES));
}

function readRows(dir: string, dataset: Dataset, side: 'ref' | 'cur'): number[][] {
  const [n, p] = SHAPES[dataset];
  const buf = readFileSync(join(dir, `${dataset}_${side}.f64`));
  const a = new Float64Array(buf.buffer, buf.byteOffset, n * p);
  return Array.from({ length: n }, (_, i) => Array.from(a.subarray(i * p, (i + 1) * p)));
}

// ---- child: one method (or the default set) of ours, timed inside ----

async function child(what: string, dataset: string, dir: string): Promise<void> {
  const mv = await shipped<Mv>('drift/multivariate/index.js');
  const groups: Dataset[] = what === 'window' ? ['numeric', 'embedding'] : [dataset as Dataset];
  const data = groups.map((g) => ({ g, ref: readRows(dir, g, 'ref'), cur: readRows(dir, g, 'cur') }));
  const started = performance.now();
  const out: Record<string, unknown> = {};
  if (what === 'window') {
    // One detection window of a model with 20 numeric features and one 384-d embedding: the default
    // methods of each group, one after another (the detect loop runs a model's methods in sequence).
    for (const { g, ref, cur } of data) {
      for (const m of DEFAULT_SET[g]) {
        const r = await mv.runMultivariateDrift(m, ref, cur, { timeoutMs: 600_000 });
        out[`${g}.${m}`] = { statistic: r.statistic, drift: r.drift, seconds: r.duration_ms / 1000 };
      }
    }
  } else if (what !== 'load') {
    const d = data[0];
    if (d === undefined) throw new Error('no data');
    const r = await mv.runMultivariateDrift(what as Method, d.ref, d.cur, { timeoutMs: 600_000 });
    out.statistic = r.statistic;
    out.p_value = r.p_value;
    out.drift = r.drift;
    if (r.method === 'domain_classifier') {
      const det = r.details as { importance: { feature: string }[]; trees: number[]; budgetExhausted: boolean };
      out.top_feature = Number(det.importance[0]?.feature.slice(1));
      out.trees = det.trees;
      out.budget_exhausted = det.budgetExhausted;
    }
  }
  out.seconds = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

// ---- parent ----

interface Measured {
  seconds: number;
  peak_rss_mb: number;
  out: Record<string, unknown>;
  /** Stopped at the time limit: `seconds` is a lower bound. */
  cut?: boolean;
}

/** A baseline child still running after this is stopped and reported as "more than" (keeps the bench bounded). */
const BASELINE_LIMIT_S = Number(process.env.MV_BENCH_BASELINE_LIMIT_S ?? 120);

/**
 * Runs a command under /usr/bin/time -v (asynchronously, so the load sampler keeps ticking). With
 * `limitS`, a child still running then is killed and reported with `seconds` = the limit and `cut` set.
 */
function timed(cmd: string, args: string[], limitS?: number): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const p = spawn('/usr/bin/time', ['-v', cmd, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let cut = false;
    const timer =
      limitS === undefined
        ? undefined
        : setTimeout(() => {
            cut = true;
            // /usr/bin/time forwards nothing: signal its child (the measured process) directly.
            spawn('pkill', ['-TERM', '-P', String(p.pid)]);
          }, limitS * 1000);
    p.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    p.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      if (cut) {
        const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
        resolve({ seconds: limitS ?? 0, peak_rss_mb: Number(rss?.[1] ?? 0) / 1024, out: {}, cut: true });
        return;
      }
      if (code !== 0) {
        reject(new Error(`${cmd} ${args.slice(0, 4).join(' ')} failed (${code}): ${stderr.slice(-2000)}`));
        return;
      }
      const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
      const out = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
      resolve({ seconds: Number(out.seconds), peak_rss_mb: Number(rss?.[1] ?? 0) / 1024, out });
    });
  });
}

function ours(what: string, dataset: string, dir: string): Promise<Measured> {
  return timed(process.execPath, [...process.execArgv, import.meta.filename, '--child', what, dataset, dir]);
}
function sklearn(method: string, dataset: string, dir: string): Promise<Measured> {
  return timed(
    '/usr/bin/python3',
    [
      join(import.meta.dirname, 'multivariate_sklearn.py'),
      method,
      dataset,
      dir,
      JSON.stringify(paramsOf(method as Method)),
    ],
    method === 'load' ? undefined : BASELINE_LIMIT_S,
  );
}

interface Row {
  dataset: Dataset;
  method: Method;
  ours_s: number;
  ours_peak_rss_mb: number;
  baseline_s: number;
  baseline_peak_rss_mb: number;
  ratio: number;
  meets_target: boolean;
  ours_statistic: unknown;
  baseline_statistic: unknown;
  /** The baseline was stopped at the time limit: its time is a lower bound and the ratio an upper bound. */
  baseline_cut_at_limit: boolean;
  note?: string;
}

/** Runs the multivariate benchmark and writes bench/results/multivariate.json and .md. */
export async function run(): Promise<void> {
  assertFreshBuild();
  const dir = mkdtempSync(join(tmpdir(), 'mw-bench-mv-'));
  const loads: number[] = [loadavg()[0] ?? 0];
  const sampler = setInterval(() => loads.push(loadavg()[0] ?? 0), 5000);
  sampler.unref();
  const only = (process.env.MV_BENCH_METHODS ?? '').split(',').filter(Boolean);
  try {
    console.error('multivariate: writing data (100k × 20 numeric, 10k × 384 embeddings per side)');
    writeData(dir);
    const loadOnly = {
      numeric: { ours: await ours('load', 'numeric', dir), baseline: await sklearn('load', 'numeric', dir) },
      embedding: { ours: await ours('load', 'embedding', dir), baseline: await sklearn('load', 'embedding', dir) },
    };
    const rows: Row[] = [];
    for (const dataset of ['numeric', 'embedding'] as const) {
      for (const method of METHODS) {
        if (only.length > 0 && !only.includes(method)) continue;
        console.error(`multivariate: ${dataset} ${method}: ours …`);
        const a = await ours(method, dataset, dir);
        console.error(`  ours ${a.seconds.toFixed(2)} s, ${a.peak_rss_mb.toFixed(0)} MB; baseline …`);
        const b = await sklearn(method, dataset, dir);
        const ratio = a.seconds / b.seconds;
        console.error(
          `  baseline ${b.seconds.toFixed(2)} s, ${b.peak_rss_mb.toFixed(0)} MB; ratio ${ratio.toFixed(2)}`,
        );
        rows.push({
          dataset,
          method,
          ours_s: a.seconds,
          ours_peak_rss_mb: a.peak_rss_mb,
          baseline_s: b.seconds,
          baseline_peak_rss_mb: b.peak_rss_mb,
          ratio,
          meets_target: ratio <= 1,
          ours_statistic: a.out.statistic,
          baseline_statistic: b.out.statistic,
          baseline_cut_at_limit: b.cut === true,
          ...(method === 'domain_classifier'
            ? { note: `top feature ours ${String(a.out.top_feature)}, baseline ${String(b.out.top_feature)}` }
            : {}),
        });
      }
    }
    console.error('multivariate: one detection window of the default set (numeric + embedding) …');
    const window = await ours('window', 'all', dir);
    console.error(`  ${window.seconds.toFixed(2)} s (cadence ${CADENCE_S} s)`);
    clearInterval(sampler);
    loads.push(loadavg()[0] ?? 0);
    const result = {
      bench: 'multivariate',
      date: new Date().toISOString(),
      node: process.version,
      load_average_1m: {
        min: Math.min(...loads),
        max: Math.max(...loads),
        mean: loads.reduce((s, v) => s + v, 0) / loads.length,
      },
      shapes: SHAPES,
      params: PARAMS,
      baseline:
        'NumPy / SciPy / scikit-learn (HistGradientBoostingClassifier, PCA, cdist), bench/multivariate_sklearn.py',
      load_only: {
        numeric: {
          ours_peak_rss_mb: loadOnly.numeric.ours.peak_rss_mb,
          baseline_peak_rss_mb: loadOnly.numeric.baseline.peak_rss_mb,
        },
        embedding: {
          ours_peak_rss_mb: loadOnly.embedding.ours.peak_rss_mb,
          baseline_peak_rss_mb: loadOnly.embedding.baseline.peak_rss_mb,
        },
      },
      methods: rows,
      window: {
        methods: DEFAULT_SET,
        seconds: window.seconds,
        peak_rss_mb: window.peak_rss_mb,
        cadence_s: CADENCE_S,
        meets_target: window.seconds <= CADENCE_S,
        per_method: window.out,
      },
    };
    mkdirSync(join(root, 'bench', 'results'), { recursive: true });
    writeFileSync(join(root, 'bench', 'results', 'multivariate.json'), `${JSON.stringify(result, null, 2)}\n`);
    const md = [
      '# Multivariate and embedding drift benchmark',
      '',
      `${result.date}, Node ${result.node}; 1-minute load average during the run: min ${result.load_average_1m.min.toFixed(2)}, mean ${result.load_average_1m.mean.toFixed(2)}, max ${result.load_average_1m.max.toFixed(2)}.`,
      '',
      'Per side: 100,000 × 20 numeric rows (corr(f0, f1) flips 0.8 → −0.8, f2 shifts by 0.1) and 10,000 × 384 unit-norm embeddings (a cluster rotated by 90°).',
      "Ours: the compiled build (dist/) through `runMultivariateDrift` (worker threads), default options. Baseline: NumPy / SciPy / scikit-learn with the same caps, fold count, permutations and model settings (`bench/multivariate_sklearn.py`). Time = compute only, inside each child process; RSS = the child's peak (including its data).",
      '',
      '| data | method | ours (s) | baseline (s) | ratio | ≤ 1× | ours peak RSS (MB) | baseline peak RSS (MB) | statistic ours / baseline |',
      '|---|---|---:|---:|---:|:-:|---:|---:|---|',
      ...rows.map(
        (r) =>
          `| ${r.dataset} | ${r.method} | ${r.ours_s.toFixed(2)} | ${r.baseline_cut_at_limit ? '> ' : ''}${r.baseline_s.toFixed(2)} | ${r.baseline_cut_at_limit ? '< ' : ''}${r.ratio.toFixed(2)} | ${r.meets_target ? 'yes' : 'no'} | ${r.ours_peak_rss_mb.toFixed(0)} | ${r.baseline_peak_rss_mb.toFixed(0)} | ${fmt(r.ours_statistic)} / ${fmt(r.baseline_statistic)}${r.note ? ` (${r.note})` : ''} |`,
      ),
      '',
      `Data loading alone (peak RSS): numeric ours ${result.load_only.numeric.ours_peak_rss_mb.toFixed(0)} MB, baseline ${result.load_only.numeric.baseline_peak_rss_mb.toFixed(0)} MB; embedding ours ${result.load_only.embedding.ours_peak_rss_mb.toFixed(0)} MB, baseline ${result.load_only.embedding.baseline_peak_rss_mb.toFixed(0)} MB (ours holds rows as JS arrays of numbers, the API's input).`,
      '',
      `One detection window of the default set (numeric: ${DEFAULT_SET.numeric.join(', ')}; embedding: ${DEFAULT_SET.embedding.join(', ')}): ${window.seconds.toFixed(1)} s against the ${CADENCE_S} s cadence (${result.window.meets_target ? 'within' : 'OVER'}), peak RSS ${window.peak_rss_mb.toFixed(0)} MB.`,
      '',
    ].join('\n');
    writeFileSync(join(root, 'bench', 'results', 'multivariate.md'), md);
    console.error(md);
  } finally {
    clearInterval(sampler);
    rmSync(dir, { recursive: true, force: true });
  }
}

function fmt(v: unknown): string {
  return typeof v === 'number' ? v.toPrecision(4) : String(v);
}

if (process.argv[2] === '--child') await child(process.argv[3] ?? '', process.argv[4] ?? '', process.argv[5] ?? '');
