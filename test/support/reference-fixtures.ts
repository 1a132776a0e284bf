import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PredictionRow, RequestRow } from '../../src/store/index.js';
import { callRows } from './call-rows.js';

/** Directory of the reference fixtures (made by test/fixtures/references/make_fixtures.py). */
export const referenceFixtureDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'references');

/** SciPy values of one feature against the current sample. */
export interface ExpectedFeature {
  method: string;
  threshold: number;
  statistic: number;
  p_value: number;
  drifted: boolean;
}

/** `expected.json`. */
export interface ReferenceExpectations {
  default_rows: number;
  current_rows: number;
  references: Record<
    'default' | 'window' | 'upload' | 'cli' | 'config',
    { rows: number; x: ExpectedFeature; c: ExpectedFeature }
  >;
}

/** Reads `expected.json`. */
export function referenceExpectations(): ReferenceExpectations {
  return JSON.parse(readFileSync(join(referenceFixtureDir, 'expected.json'), 'utf8')) as ReferenceExpectations;
}

/** Rows `{x, c}` of a fixture CSV (`traffic_base`, `traffic_shift`, `current`, …). */
export function fixtureRows(name: string): Array<{ x: number; c: string }> {
  const lines = readFileSync(join(referenceFixtureDir, `${name}.csv`), 'utf8')
    .trim()
    .split('\n')
    .slice(1);
  return lines.map((l) => {
    const [x, c] = l.split(',');
    return { x: Number(x), c: c ?? '' };
  });
}

/** One successful call (prediction row + 200 request) per fixture row, `stepMs` apart from `start`. */
export function trafficRows(
  model: string,
  rows: ReadonlyArray<{ x: number; c: string }>,
  start: number,
  stepMs: number,
  tag: string,
): { predictions: PredictionRow[]; requests: RequestRow[] } {
  const predictions: PredictionRow[] = [];
  const requests: RequestRow[] = [];
  rows.forEach((r, i) => {
    const ts = start + i * stepMs;
    const id = `${model}-${tag}-${i}`;
    const { prediction, request } = callRows(model, ts, id, {
      features_num: { x: r.x },
      features_cat: { c: r.c },
      latency_ms: 5,
    });
    predictions.push(prediction);
    requests.push(request);
  });
  return { predictions, requests };
}
