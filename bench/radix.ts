// `npm run bench -- radix`: the exact drift engine's radix sort (src/drift/exact/radix.ts, compiled) in
// isolation, on 1M float64 values of four shapes, against `Float64Array.prototype.sort` on the same values
// in the same run. Times are CPU milliseconds of this thread (process.cpuUsage: on a shared machine, wall
// time counts other processes' slices), median of RADIX_BENCH_ROUNDS (default 9) rounds, sorts interleaved.
// Each radix result is checked against the built-in order (−0 before +0 included).
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { seededRng } from '../src/drift/multivariate/random.js';
import { shipped } from './shipped.js';

const { filterSortFloat64 } = await shipped<typeof import('../src/drift/exact/radix.js')>('drift/exact/radix.js');

const N = 1_000_000;
const ROUNDS = Number(process.env.RADIX_BENCH_ROUNDS ?? 9);

/** Deterministic uniforms in (0, 1) (mulberry32, moved off 0 by half a step so that log(u) is finite). */
function uniforms(seed: number): () => number {
  const next = seededRng(seed);
  return () => next() + 0.5 / 4294967296;
}

const SHAPES: Record<string, (u: () => number) => number> = {
  normal: (u) => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()),
  lognormal: (u) => Math.exp(0.75 * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u())),
  'uniform ×100': (u) => u() * 100,
  '10 integers (ties)': (u) => Math.floor(u() * 10) - 5,
};

function cpuMs(fn: () => void): number {
  const t = process.cpuUsage();
  fn();
  const d = process.cpuUsage(t);
  return (d.user + d.system) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Runs the radix micro-benchmark and writes bench/results/radix.json and radix.md. */
export function run(): Promise<void> {
  const loads = [loadavg()[0] ?? 0];
  const rows: { shape: string; radix_cpu_ms: number; builtin_cpu_ms: number; speedup: number }[] = [];
  for (const [shape, draw] of Object.entries(SHAPES)) {
    const u = uniforms(shape.length * 7919);
    const src = new Float64Array(N);
    for (let i = 0; i < N; i++) src[i] = draw(u);
    const expected = src.slice().sort();
    const radix: number[] = [];
    const builtin: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const a = src.slice();
      let sorted: Float64Array | undefined;
      radix.push(cpuMs(() => (sorted = filterSortFloat64(a).sorted)));
      if (r === 0) {
        for (let i = 0; i < N; i++) {
          if (!Object.is(sorted![i], expected[i])) throw new Error(`radix bench: ${shape}: wrong order at ${i}`);
        }
      }
      const b = src.slice();
      builtin.push(cpuMs(() => b.sort()));
      loads.push(loadavg()[0] ?? 0);
    }
    const row = {
      shape,
      radix_cpu_ms: median(radix),
      builtin_cpu_ms: median(builtin),
      speedup: median(builtin) / median(radix),
    };
    rows.push(row);
    process.stderr.write(
      `radix bench: ${shape}: radix ${row.radix_cpu_ms.toFixed(1)} ms, built-in ${row.builtin_cpu_ms.toFixed(1)} ms (load ${(loadavg()[0] ?? 0).toFixed(1)})\n`,
    );
  }
  const load = {
    min: Math.min(...loads),
    mean: loads.reduce((s, x) => s + x, 0) / loads.length,
    max: Math.max(...loads),
  };
  const at = new Date().toISOString();
  const dir = join(import.meta.dirname, 'results');
  writeFileSync(
    join(dir, 'radix.json'),
    `${JSON.stringify({ at, values: N, rounds: ROUNDS, cpus: cpus().length, node: process.version, load_1m: load, rows }, null, 2)}\n`,
  );
  writeFileSync(
    join(dir, 'radix.md'),
    [
      '# radix sort benchmark',
      '',
      `${at} · ${cpus().length} CPUs (shared) · Node ${process.version} · ${N.toLocaleString('en-US')} float64 values per sort, median of ${ROUNDS} rounds.`,
      '',
      `1-minute load average during the run: min ${load.min.toFixed(2)}, mean ${load.mean.toFixed(2)}, max ${load.max.toFixed(2)}.`,
      '',
      'CPU time of `filterSortFloat64` (the engine: filter, histograms, radix passes) against `Float64Array.prototype.sort` on the same values, measured in the same run.',
      '',
      '| values | radix CPU ms | built-in sort CPU ms | built-in / radix |',
      '|---|---:|---:|---:|',
      ...rows.map(
        (r) =>
          `| ${r.shape} | ${r.radix_cpu_ms.toFixed(1)} | ${r.builtin_cpu_ms.toFixed(1)} | ${r.speedup.toFixed(1)} |`,
      ),
      '',
    ].join('\n'),
  );
  return Promise.resolve();
}
