import { describe, expect, it } from 'vitest';
import { isModelwatchError } from '../src/common/errors.js';
import {
  Adwin,
  Cusum,
  DEFAULT_MONITOR_DETECTORS,
  PageHinkley,
  SeriesMonitor,
  type ChangeDetector,
} from '../src/drift/streaming/index.js';
import { gaussian, mulberry32 } from './support/seeded-prng.js';

// River is not installable here (no PyPI), so there are no value-for-value reference outputs: these tests check
// the properties that matter — detection delay after a planted change and the false-alarm count on long
// stationary series, measured over seeded streams.

const SEEDS = Array.from({ length: 20 }, (_v, i) => i + 1);
const STATIONARY = 10_000;
const CHANGE_AT = 1_000;

function falseAlarms(make: () => ChangeDetector, scale = 1, offset = 0): number {
  let alarms = 0;
  for (const seed of SEEDS) {
    const g = gaussian(mulberry32(seed));
    const d = make();
    for (let i = 0; i < STATIONARY; i++) if (d.update(offset + scale * g())) alarms++;
  }
  return alarms;
}

/** Per seed: values after the change until the first alarm (−1 = never within 2 000); and alarms before it. */
function delays(make: () => ChangeDetector, shift: number): { delays: number[]; early: number } {
  const out: number[] = [];
  let early = 0;
  for (const seed of SEEDS) {
    const g = gaussian(mulberry32(10_000 + seed));
    const d = make();
    let found = -1;
    for (let i = 0; i < CHANGE_AT + 2_000; i++) {
      const hit = d.update(g() + (i >= CHANGE_AT ? shift : 0));
      if (hit && i < CHANGE_AT) early++;
      if (hit && i >= CHANGE_AT) {
        found = i - CHANGE_AT;
        break;
      }
    }
    out.push(found);
  }
  return { delays: out, early };
}

const configured = {
  page_hinkley: () => new PageHinkley({ delta: 0.5, threshold: 25 }),
  adwin: () => new Adwin({ delta: 0.002, clock: 1, grace_period: 30 }),
  cusum: () => new Cusum({ min_instances: 200, slack: 0.5, threshold: 12 }),
};
// Stated maximum delays (values after the change) over the 20 seeds.
const maxDelay = {
  page_hinkley: { 1: 80, 3: 15 },
  adwin: { 1: 60, 3: 15 },
  cusum: { 1: 60, 3: 10 },
};

describe.each(Object.entries(configured))('%s at the monitor parameters', (name, make) => {
  it('raises no alarm on 20 stationary series of 10 000 values', () => {
    expect(falseAlarms(make)).toBe(0);
  });

  it.each([1, 3] as const)('detects a %iσ mean shift within the stated delay, never before it', (shift) => {
    const r = delays(make, shift);
    const bound = maxDelay[name as keyof typeof maxDelay][shift];
    expect(r.early).toBe(0);
    for (const d of r.delays) {
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(bound);
    }
  });

  it('detects a downward shift too (mode both)', () => {
    const r = delays(make, -3);
    expect(r.delays.every((d) => d >= 0 && d <= 15)).toBe(true);
  });
});

describe('false-alarm rates at other settings behave as the theory says', () => {
  it('CUSUM at River defaults (k = 0.5, h = 5) alarms about every few hundred values', () => {
    // Siegmund: two-sided ARL₀ ≈ 469 with known σ, plus the 30-value warm-up after each reset → ≈ 20 per
    // 10 000; σ estimated from 30 values makes it more frequent, never rarer by much.
    const perSeries = falseAlarms(() => new Cusum()) / SEEDS.length;
    expect(perSeries).toBeGreaterThan(10);
    expect(perSeries).toBeLessThan(80);
  });

  it('Page–Hinkley at River defaults is scale-bound: quiet on small-variance data, noisy on unit variance', () => {
    expect(falseAlarms(() => new PageHinkley(), 0.05)).toBe(0);
    expect(falseAlarms(() => new PageHinkley(), 1)).toBeGreaterThan(0);
  });

  it('ADWIN with a larger δ alarms more often than with a smaller one', () => {
    const loose = falseAlarms(() => new Adwin({ delta: 0.5, clock: 1 }));
    const strict = falseAlarms(() => new Adwin({ delta: 0.002, clock: 1 }));
    expect(loose).toBeGreaterThan(strict);
  });

  it('one-sided modes ignore the other direction', () => {
    expect(delays(() => new Cusum({ min_instances: 200, threshold: 12, mode: 'up' }), -3).delays.every((d) => d === -1)).toBe(true);
    expect(delays(() => new PageHinkley({ delta: 0.5, threshold: 25, mode: 'down' }), 3).delays.every((d) => d === -1)).toBe(true);
    expect(delays(() => new PageHinkley({ delta: 0.5, threshold: 25, mode: 'up' }), 3).delays.every((d) => d >= 0)).toBe(true);
  });
});

describe('detector mechanics', () => {
  it('ADWIN shrinks its window to the new regime and its mean follows', () => {
    const g = gaussian(mulberry32(99));
    const a = new Adwin({ clock: 1 });
    for (let i = 0; i < 2000; i++) a.update(g());
    expect(a.n).toBe(2000);
    for (let i = 0; i < 500; i++) a.update(5 + g());
    expect(a.nDetections).toBeGreaterThan(0);
    expect(a.n).toBeLessThan(700);
    expect(Math.abs(a.estimation - 5)).toBeLessThan(0.5);
  });

  it('ignores non-finite values', () => {
    for (const d of [new PageHinkley(), new Adwin(), new Cusum()]) {
      expect(d.update(Number.NaN)).toBe(false);
      expect(d.update(Number.POSITIVE_INFINITY)).toBe(false);
      expect(d.n).toBe(0);
    }
  });

  it('resets after a detection', () => {
    const c = new Cusum({ min_instances: 5, threshold: 1 });
    for (const x of [0, 1, 0, 1, 0]) c.update(x);
    let hit = false;
    for (let i = 0; i < 20 && !hit; i++) hit = c.update(10);
    expect(hit).toBe(true);
    c.update(10);
    expect(c.driftDetected).toBe(false);
    expect(c.n).toBe(1);
  });

  it('rejects bad parameters with config_invalid naming the field', () => {
    const bad: Array<() => unknown> = [
      () => new PageHinkley({ threshold: 0 }),
      () => new PageHinkley({ alpha: 1.5 }),
      () => new Adwin({ delta: 0 }),
      () => new Adwin({ clock: 0 }),
      () => new Cusum({ slack: -1 }),
      () => new Cusum({ mode: 'sideways' as 'up' }),
    ];
    for (const f of bad) {
      let err: unknown;
      try {
        f();
      } catch (e: unknown) {
        err = e;
      }
      expect(isModelwatchError(err, 'config_invalid')).toBe(true);
    }
  });
});

describe('SeriesMonitor (what the detect loop runs per metric series)', () => {
  it('uses the documented parameters by default', () => {
    const m = new SeriesMonitor();
    const g = gaussian(mulberry32(5));
    const alarms = [];
    for (let i = 0; i < 400; i++) alarms.push(...m.update(g() + (i >= 300 ? 10 : 0)));
    const kinds = new Set(alarms.map((a) => a.detector));
    expect(kinds).toEqual(new Set(['page_hinkley', 'adwin', 'cusum']));
    const ph = alarms.find((a) => a.detector === 'page_hinkley');
    expect(ph?.params).toMatchObject({ ...DEFAULT_MONITOR_DETECTORS.page_hinkley, warmup: 100 });
    expect(Math.min(...alarms.map((a) => a.index))).toBeGreaterThanOrEqual(300);
  });

  it('is unit-free: no alarm on 20 × 10 000 stationary values of latency-like scale, finds a 3σ shift within 15', () => {
    for (const seed of SEEDS) {
      const g = gaussian(mulberry32(seed));
      const m = new SeriesMonitor();
      let alarms = 0;
      for (let i = 0; i < STATIONARY; i++) alarms += m.update(250 + 40 * g()).length;
      expect(alarms).toBe(0);
      const seen = new Map<string, number>();
      for (let i = 0; i < 100; i++) for (const a of m.update(250 + 40 * (g() + 3))) if (!seen.has(a.detector)) seen.set(a.detector, i);
      expect(seen.size).toBe(3);
      for (const d of seen.values()) expect(d).toBeLessThanOrEqual(15);
    }
  });

  it('handles a constant series (zero spread) and then a jump', () => {
    const m = new SeriesMonitor();
    for (let i = 0; i < 300; i++) expect(m.update(0.02)).toEqual([]);
    const alarms = [];
    for (let i = 0; i < 50; i++) alarms.push(...m.update(0.5));
    expect(alarms.length).toBeGreaterThan(0);
  });
});
