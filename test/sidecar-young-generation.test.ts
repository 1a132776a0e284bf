import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runTsxChild } from './support/tsx-child.js';
import { scavengeOnCollectingThread, youngGenerationFlagGiven } from '../src/sidecar/young-generation.js';

const child = join(import.meta.dirname, 'support', 'young-generation-child.ts');
const scavengeChild = join(import.meta.dirname, 'support', 'scavenge-threads-child.ts');

interface ChildResult {
  held: boolean;
  cap: string;
  atStartMb: number;
  afterCapMb: number;
  peakMb: number;
}

/** Runs the allocation load in a fresh process (the young generation's sizing is process-wide). */
async function runChild(args: string[], nodeFlags: string[] = []): Promise<ChildResult> {
  return JSON.parse(await runTsxChild(child, args, nodeFlags)) as ChildResult;
}

// V8 reports both semi-spaces as `new_space`: a 4 MB cap per semi-space is at most 8 MB here.
describe('capYoungGeneration', () => {
  it('held at start-up, then capped: grown to the cap at once, and no further under load', async () => {
    const r = await runChild(['held', '4']);
    expect(r.held).toBe(true);
    expect(r.cap).toBe('capped');
    // Grown to the cap before capYoungGeneration returned (4 MB per semi-space), not left to a later
    // scavenge, and the allocation load after it grew it no further.
    expect(r.atStartMb).toBeLessThan(8);
    expect(r.afterCapMb).toBe(8);
    expect(r.peakMb).toBe(8);
  }, 120_000);

  it('stays at the cap after a worker thread started (which resets V8’s flags)', async () => {
    const r = await runChild(['held', '2', 'worker']);
    expect(r.cap).toBe('capped');
    expect(r.afterCapMb).toBe(4);
    expect(r.peakMb).toBe(4);
  }, 120_000);

  it("the same load without a cap grows V8's young generation to its maximum", async () => {
    const r = await runChild(['free', '0']);
    expect(r.cap).toBe('off');
    expect(r.peakMb).toBeGreaterThan(8);
  }, 120_000);

  it('a cap of 0 gives growth held at start-up back to V8', async () => {
    const r = await runChild(['held', '0']);
    expect(r.held).toBe(true);
    expect(r.cap).toBe('off');
    expect(r.peakMb).toBeGreaterThan(8);
  }, 120_000);

  it('leaves a young generation already past the cap as it is', async () => {
    // Loading tsx alone takes the young generation past 1 MB per semi-space.
    const r = await runChild(['held', '1']);
    expect(r.cap).toBe('already_larger');
  }, 120_000);

  it('leaves a process started with its own young-generation flag alone', async () => {
    const r = await runChild(['held', '4'], ['--max-semi-space-size=1']);
    expect(r.held).toBe(false);
    expect(r.cap).toBe('flag_given');
    expect(r.peakMb).toBeLessThanOrEqual(2);
  }, 120_000);

  it('recognises the sizing flags on the command line and in NODE_OPTIONS', () => {
    expect(youngGenerationFlagGiven(['--max-semi-space-size=2'], '')).toBe(true);
    expect(youngGenerationFlagGiven([], '--max-old-space-size=512 --semi_space_growth_factor=1')).toBe(true);
    expect(youngGenerationFlagGiven([], '--min-semi-space-size=1')).toBe(true);
    expect(youngGenerationFlagGiven(['--max-old-space-size=512', '--enable-source-maps'], '--trace-gc')).toBe(false);
  });
});

interface Scavenges {
  threads: string;
  /** Per scavenge during the load: ms its helper threads worked (`background.scavenge.parallel`). */
  background: number[];
  /** Per scavenge during the load: ms of its copying phase, on every thread (`scavenge.parallel`). */
  copying: number[];
}

/** Runs the scavenge load in a fresh process with V8's per-collection trace, and reads its scavenges. */
async function runScavenges(args: string[], nodeFlags: string[] = []): Promise<Scavenges> {
  const out = (await runTsxChild(scavengeChild, args, ['--trace-gc-nvp', ...nodeFlags])).split('\n');
  const field = (line: string, name: string): number => Number(new RegExp(` ${name}=([0-9.]+)`).exec(line)?.[1]);
  const load = out.slice(out.indexOf('load') + 1).filter((l) => l.includes(' gc=s '));
  const last = out.filter((l) => l.startsWith('{')).at(-1) ?? '{}';
  return {
    threads: (JSON.parse(last) as { threads: string }).threads,
    background: load.map((l) => field(l, 'background\\.scavenge\\.parallel')),
    copying: load.map((l) => field(l, 'scavenge\\.parallel')),
  };
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

describe('scavengeOnCollectingThread', () => {
  it("V8's default: scavenges with survivors hand part of their copying to helper threads", async () => {
    const r = await runScavenges(['parallel']);
    expect(r.threads).toBe('parallel');
    expect(r.background.length).toBeGreaterThan(10);
    expect(sum(r.background)).toBeGreaterThan(0);
  }, 120_000);

  it('single: every scavenge copies on the collecting thread alone, also after a worker thread started', async () => {
    for (const args of [['single'], ['single', 'worker']]) {
      const r = await runScavenges(args);
      expect(r.threads).toBe('single');
      expect(r.background.length).toBeGreaterThan(10);
      // The copying happened (survivors at every scavenge), and none of it on a helper thread.
      expect(sum(r.copying)).toBeGreaterThan(0);
      expect(r.background.every((ms) => ms === 0)).toBe(true);
    }
  }, 120_000);

  it('leaves a process started with its own scavenge flag alone', async () => {
    const r = await runScavenges(['single'], ['--parallel-scavenge']);
    expect(r.threads).toBe('flag_given');
    expect(sum(r.background)).toBeGreaterThan(0);
    expect(scavengeOnCollectingThread(false, ['--single-threaded-gc'], '')).toBe('flag_given');
    expect(scavengeOnCollectingThread(false, [], '--max-old-space-size=512 --no-parallel-scavenge')).toBe('flag_given');
    expect(scavengeOnCollectingThread(true, ['--max-old-space-size=512'], '--trace-gc')).toBe('parallel');
  }, 120_000);
});
