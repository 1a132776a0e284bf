// When detection starts the exact engine's sort workers (src/drift/detect-drift.ts): against a stored reference
// large enough that every numeric job runs in the pool (INLINE_MAX_VALUES values or more), its workers start
// right after the reference's record is read, before the window's keys are counted (their start-up then overlaps
// the count and the cache lookup, not the window's read); against a small reference, none start.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../src/config/index.js';
import { createReference, detectDrift } from '../src/drift/index.js';
import { INLINE_MAX_VALUES, sharedPool } from '../src/drift/exact/index.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { countingStore } from './support/counting-store.js';
import { fixtureTrafficRows } from './support/drift-fixtures.js';
import { mulberry32 } from './support/seeded-prng.js';
import { openTestStore } from './support/store.js';

const T0 = Date.UTC(2026, 0, 1);
const HOUR = 3_600_000;
const config = configSchema.parse({});
let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let files: string;

/** A CSV of one numeric column `x` with `rows` seeded values. */
function csv(name: string, rows: number, seed: number): string {
  const u = mulberry32(seed);
  const path = join(files, name);
  writeFileSync(path, `x\n${Array.from({ length: rows }, () => (u() * 100).toFixed(3)).join('\n')}\n`);
  return path;
}

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  files = mkdtempSync(join(tmpdir(), 'mw-pool-start-'));
  const kinds = new Map([['x', 'numeric']]);
  await store.insertPredictions([
    ...fixtureTrafficRows(csv('large.csv', 500, 1), kinds, { model: 'large', start: T0, idPrefix: 'l' }),
    ...fixtureTrafficRows(csv('small.csv', 500, 2), kinds, { model: 'small', start: T0, idPrefix: 's' }),
  ]);
}, 120_000);

afterAll(async () => {
  await cleanup();
  rmSync(files, { recursive: true, force: true });
});

/** The sort pool's workers when detection counts the window's keys, and after it. */
async function workersAtCount(model: string, referenceRows: number, seed: number): Promise<[number, number]> {
  const ref = await createReference(
    store,
    { model, file: csv(`${model}-reference.csv`, referenceRows, seed) },
    { activate: false },
  );
  // Creating the reference sorted its values in the pool: its workers are stopped, so that only the detection's
  // own start the next ones.
  await sharedPool().close();
  expect(sharedPool().held()).toEqual([]);
  let atCount = -1;
  const { store: watched } = countingStore(store, (e) => {
    if (e.label === 'count window keys') atCount = sharedPool().held().length;
  });
  const d = await detectDrift(watched, {
    model,
    from: T0,
    to: T0 + HOUR,
    reference: { id: ref.id },
    config,
    now: T0 + 2 * HOUR,
    referenceCache: { dir: false },
  });
  expect(d.current.rows).toBe(500);
  return [atCount, sharedPool().held().length];
}

describe('sort workers at detection', () => {
  it('a small reference starts none: its jobs run inline', async () => {
    expect(await workersAtCount('small', 1_000, 3)).toEqual([0, 0]);
  }, 120_000);

  it('a reference of INLINE_MAX_VALUES rows starts every worker before the window is counted', async () => {
    const [atCount] = await workersAtCount('large', INLINE_MAX_VALUES, 4);
    expect(atCount).toBe(sharedPool().size);
  }, 120_000);
});
