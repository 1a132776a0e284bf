// A process that runs ingest bounds V8's old-generation growth between full collections (config
// `ingest.heapGrowingPercent`, default 50): a steady live set plus short-lived garbage, as in a backlog, then
// peaks at a small multiple of what is live instead of V8's up-to-4× factor. Measured in child processes
// (the flag is process-wide), against a child that does not start ingest.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { boundHeapGrowth, heapGrowingFlagGiven, widenHeapGrowth } from '../src/common/index.js';
import { configSchema } from '../src/config/index.js';

const run = promisify(execFile);
const child = join(import.meta.dirname, 'support', 'heap-churn.ts');

async function churn(mode: 'plain' | 'ingest'): Promise<{ liveBytes: number; peakBytes: number }> {
  const { stdout } = await run(process.execPath, ['--expose-gc', '--import', 'tsx', child, mode], {
    cwd: join(import.meta.dirname, '..'),
    // The child decides its own V8 flags: none inherited from the test runner's environment.
    env: { ...process.env, NODE_OPTIONS: '' },
    timeout: 60_000,
  });
  const line = stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line) as { liveBytes: number; peakBytes: number };
}

describe('ingest bounds the JavaScript heap growth of its process', () => {
  it('keeps the heap peak within 3× the live size, where V8 alone lets it grow further', async () => {
    const plain = await churn('plain');
    const ingest = await churn('ingest');
    // Growth of 50 % on ~75 MB live (plus the young generation and the junk alive at the collection):
    // measured 2.2–2.3× here; V8's own factor: 5.5×.
    expect(ingest.peakBytes).toBeLessThan(3 * ingest.liveBytes);
    expect(plain.peakBytes).toBeGreaterThan(1.5 * ingest.peakBytes);
  }, 120_000);

  it('defaults to 50 %, leaves V8 alone at 0 and when the process was started with the flag', () => {
    expect(configSchema.parse({}).ingest.heapGrowingPercent).toBe(50);
    expect(() => configSchema.parse({ ingest: { heapGrowingPercent: -1 } })).toThrow();
    expect(boundHeapGrowth(0)).toBe('off');
    expect(() => boundHeapGrowth(1.5)).toThrow(RangeError);
    expect(heapGrowingFlagGiven(['--heap-growing-percent=20'], '')).toBe(true);
    expect(heapGrowingFlagGiven([], '--max-old-space-size=512 --heap_growing_percent=30')).toBe(true);
    expect(heapGrowingFlagGiven(['--max-semi-space-size=4'], '')).toBe(false);
  });

  it('lets the sidecar widen the growth (default 100 %) unless ingest bounded it, whichever starts first', () => {
    expect(configSchema.parse({}).sidecar.heapGrowingPercent).toBe(100);
    expect(() => configSchema.parse({ sidecar: { heapGrowingPercent: 1.5 } })).toThrow();
    expect(() => widenHeapGrowth(-1)).toThrow(RangeError);
    try {
      // Sidecar first, then ingest: ingest's bound replaces the sidecar's setting.
      expect(widenHeapGrowth(100)).toBe('widened');
      expect(boundHeapGrowth(50)).toBe('bounded');
      // Ingest first (or already running): the sidecar leaves the bound alone.
      expect(widenHeapGrowth(100)).toBe('bounded_by_ingest');
      expect(widenHeapGrowth(0)).toBe('bounded_by_ingest');
    } finally {
      expect(boundHeapGrowth(0)).toBe('off');
    }
    expect(widenHeapGrowth(0)).toBe('off');
  });
});
