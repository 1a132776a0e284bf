import { performance } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { nodeFlagGiven } from '../common/node-flags.js';

/** What {@link capYoungGeneration} did. */
export type YoungGenerationCap =
  /** The process was started with a flag that sizes the young generation: left as given. */
  | 'flag_given'
  /** The cap is 0: V8's own sizing. */
  | 'off'
  /** The young generation already stopped growing (this process capped it before). */
  | 'already_capped'
  /**
   * The young generation had grown past the cap before the sidecar started (V8 does not shrink it on
   * request): left as it is. `modelwatch sidecar` holds its growth from start-up (bin/modelwatch.js).
   */
  | 'already_larger'
  /** Growth stopped now, with the young generation at the cap (grown to it first when it was smaller). */
  | 'capped';

const MB = 1024 * 1024;
/** Flags that size V8's young generation; when one was given, the process keeps it. */
const SIZING_FLAG = /^--(max|min)[-_]semi[-_]space[-_]size|^--semi[-_]space[-_]growth[-_]factor|^--max[-_]young/;

let capped = false;
let held = false;
/** Longest {@link growTo} spends growing the young generation to its cap. */
const GROW_BUDGET_MS = 250;

/** One semi-space of the young generation, in bytes (V8 reports both semi-spaces as `new_space`). */
function semiSpaceBytes(): number {
  const space = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  return space === undefined ? 0 : space.space_size / 2;
}

/** The V8 flags this module set, by what they set; each is set again as a worker thread comes online. */
const kept = new Map<'growth' | 'scavenge', string>();
let workerHook = false;

/**
 * Sets a V8 flag and keeps it set: starting a worker thread puts V8's flags back to what the process
 * started with (measured: a capped main thread's young generation grew to the 16 MB maximum once a
 * worker had started, as under a Kafka tee, whose producer runs in a worker), so every kept flag is set
 * again as each worker comes online.
 */
function keepFlag(what: 'growth' | 'scavenge', flag: string): void {
  kept.set(what, flag);
  setFlagsFromString(flag);
  if (workerHook) return;
  workerHook = true;
  process.on('worker', (worker) => {
    const again = (): void => {
      for (const f of kept.values()) setFlagsFromString(f);
    };
    again();
    worker.once('online', again);
  });
}

/** Sets V8's young-generation growth factor, and keeps it set (see {@link keepFlag}). */
function setGrowthFactor(f: 1 | 2): void {
  keepFlag('growth', `--semi-space-growth-factor=${f}`);
}

function allowGrowth(): void {
  setGrowthFactor(2);
}

function stopGrowth(): void {
  // Read by V8 each time it grows the young generation (never cached): with 1, it keeps its size.
  setGrowthFactor(1);
  capped = true;
}

/**
 * Grows the young generation to `cap` bytes per semi-space now, then stops its growth. V8 grows it (by
 * its growth factor, 2) at a scavenge that finds enough survivors, so this keeps a few MB of small
 * objects alive across scavenges and reads the size after every small step: at most one scavenge
 * happens between two reads, so growth is stopped at the cap, never past it, before the sidecar serves
 * (rather than at some later scavenge seen by a GC observer, whenever the event loop got to it). Costs a
 * few ms at start-up; the survivors go with the next full collection. Gives up after
 * {@link GROW_BUDGET_MS}, growth stopped either way.
 */
function growTo(cap: number): void {
  allowGrowth();
  const until = performance.now() + GROW_BUDGET_MS;
  let keep: { i: number; s: string }[] = [];
  try {
    while (semiSpaceBytes() * 2 <= cap && performance.now() < until) {
      // ~64 KB of young objects per step, well under one semi-space (≥ 1 MB).
      for (let i = 0; i < 1_000; i++) keep.push({ i, s: `y${i}` });
      if (keep.length > 200_000) keep = [];
    }
  } finally {
    keep = [];
    stopGrowth();
  }
}

/**
 * Holds V8's young generation at its current size until {@link capYoungGeneration} lets it grow to
 * its cap: for a process that embeds the sidecar, called before it loads its other modules (loading
 * code grows the young generation, and V8 does not shrink it on request). `modelwatch sidecar` does
 * the same from bin/modelwatch.js. Nothing is done when a young-generation flag was given.
 * @returns whether growth is now held.
 */
export function holdYoungGeneration(): boolean {
  if (youngGenerationFlagGiven() || capped) return false;
  setGrowthFactor(1);
  held = true;
  return true;
}

/** True when the process's own command line or `NODE_OPTIONS` sizes the young generation. */
export function youngGenerationFlagGiven(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env.NODE_OPTIONS ?? '',
): boolean {
  return nodeFlagGiven(SIZING_FLAG, execArgv, nodeOptions);
}

/**
 * Stops V8's young generation of this process from growing past `semiSpaceMb` per semi-space (V8
 * starts at 1 MB and doubles it, up to 16 MB, when scavenges keep finding survivors).
 *
 * Why the proxy wants it: with large bodies most of what a request allocates is `ArrayBuffer` memory
 * outside the JavaScript heap (the body as read from the client, the body forwarded, the response
 * read from the upstream), and V8 counts that memory against the old generation's budget until a
 * scavenge frees it. A young generation grown to 16 MB is scavenged only every ~200 requests at 64 KB,
 * so tens of MB of dead bodies are counted at once; that starts a full (mark-compact) collection every
 * ~100 ms, which pauses the loop and costs CPU. With a small young generation the dead bodies go at
 * each frequent, cheap scavenge. The young generation of a busy proxy grows by itself (a burst of
 * small requests is enough), which is why this cannot be left to V8's defaults.
 *
 * V8 takes its heap sizes only at start-up, so this works through the one sizing flag it reads each
 * time it grows the young generation (`--semi-space-growth-factor`, set to 1 once the cap is
 * reached; the young generation is grown to the cap first, see {@link growTo}). The flag is
 * process-wide (worker threads started later keep their start-up size) and is never undone. A young
 * generation that is already larger is left as it is (V8 cannot be asked to shrink it): loading the
 * whole CLI grows it to the maximum, which is why `modelwatch sidecar` holds growth (factor 1) from the
 * first line of bin/modelwatch.js, and this lets it grow again up to the cap. A process started with
 * its own young-generation flag (on its command line or in `NODE_OPTIONS`) is left as it is.
 * Idempotent.
 *
 * @param semiSpaceMb the cap, MB per semi-space (1, 2, 4, 8 or 16 are the sizes V8 takes); 0 leaves
 *   V8's sizing alone.
 */
export function capYoungGeneration(semiSpaceMb: number): YoungGenerationCap {
  if (semiSpaceMb === 0) {
    // Growth held at start-up (holdYoungGeneration) is given back to V8's sizing.
    if (held && !capped) allowGrowth();
    return 'off';
  }
  if (youngGenerationFlagGiven()) return 'flag_given';
  if (capped) return 'already_capped';
  const cap = semiSpaceMb * MB;
  const now = semiSpaceBytes();
  if (now > cap) return 'already_larger';
  // V8 doubles: stop it at the size from which one more doubling would pass the cap.
  if (now * 2 > cap) {
    stopGrowth();
    return 'capped';
  }
  growTo(cap);
  return 'capped';
}

/** What {@link scavengeOnCollectingThread} did. */
export type ScavengeThreads =
  /** The process was started with a flag that says how V8 scavenges: left as given. */
  | 'flag_given'
  /** V8's default kept: scavenges split their work over V8's helper threads. */
  | 'parallel'
  /** Scavenges now run on the thread whose young generation they collect, alone. */
  | 'single';

/** Flags that say whether V8 scavenges in parallel; when one was given, the process keeps it. */
const SCAVENGE_FLAG = /^--(no-)?parallel[-_]scavenge$|^--single[-_]threaded(?:[-_]gc)?$/;

/**
 * Makes V8's scavenges (young-generation collections) of this process run on the collecting thread
 * alone instead of splitting their work over V8's helper threads, or gives them back to V8's default.
 *
 * Why the proxy wants it: what survives a proxy's scavenge is a few tens of KB (the requests in flight),
 * so a scavenge is mostly fixed cost, and in a parallel one the request thread waits for helper threads
 * that must first get a CPU. Where the other CPUs are busy (the inference server, the load, a Kafka
 * producer), that wait is the pause: in the sidecar benchmark the longest scavenge pause at 1,000 req/s
 * fell from 1.2-6.3 to 0.7-1.2 ms with single-threaded scavenges, and GC time and CPU per request fell
 * with it (bench/results/sidecar.notes.md). A process with much to copy per scavenge (ingest on a
 * backlog) gains from the helpers, which is why `modelwatch up` keeps V8's default.
 *
 * V8 reads the flag at each scavenge, so this works on a running process; the flag is process-wide and
 * kept across worker starts (see {@link keepFlag}). A process started with its own flag (on its command
 * line or in `NODE_OPTIONS`: `--parallel-scavenge`, `--no-parallel-scavenge`, `--single-threaded[-gc]`) is
 * left as it is.
 *
 * @param parallel true: V8's default (undoes an earlier call); false: single-threaded scavenges.
 */
export function scavengeOnCollectingThread(
  parallel: boolean,
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env.NODE_OPTIONS ?? '',
): ScavengeThreads {
  if (nodeFlagGiven(SCAVENGE_FLAG, execArgv, nodeOptions)) return 'flag_given';
  if (parallel) {
    if (kept.delete('scavenge')) setFlagsFromString('--parallel-scavenge');
    return 'parallel';
  }
  keepFlag('scavenge', '--no-parallel-scavenge');
  return 'single';
}
