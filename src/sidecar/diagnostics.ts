import { createHistogram, PerformanceObserver, constants, type RecordableHistogram } from 'node:perf_hooks';
import type { Logger } from '../common/logger.js';

/** What the process did over one diagnostics interval (since the previous reading). */
export interface DiagnosticsReading {
  /** Length of the interval, ms. */
  intervalMs: number;
  /**
   * Event-loop delay percentiles over the interval, ms: the time between ticks of a `resolutionMs`
   * timer, as `monitorEventLoopDelay` measures it (an idle loop reads about `resolutionMs`).
   */
  eldP50Ms: number;
  eldP99Ms: number;
  eldMaxMs: number;
  eldMeanMs: number;
  /** Garbage collections that ended in the interval, by kind. */
  gcCount: number;
  gcMinor: number;
  gcMajor: number;
  gcIncremental: number;
  gcWeakCallbacks: number;
  /** Sum and longest of their pauses, ms. */
  gcTotalMs: number;
  gcMaxMs: number;
  /** Longest young-generation (scavenge) pause, ms. */
  gcMinorMaxMs: number;
  /** CPU time of the whole process (every thread) in the interval, µs. */
  cpuUserUs: number;
  cpuSystemUs: number;
  rssMb: number;
  heapUsedMb: number;
}

/** Options of {@link LoopDiagnostics}. */
export interface LoopDiagnosticsOptions {
  /** Sampling resolution of the event-loop delay monitor, ms. @default 10 */
  resolutionMs?: number;
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const nsToMs = (ns: number): number => (Number.isFinite(ns) ? r3(ns / 1e6) : 0);

/**
 * Event-loop delay, GC pauses and CPU of this process, read in intervals: each {@link read} reports
 * what happened since the previous one and starts a new interval. Costs one unref'd timer at
 * `resolutionMs` and one performance entry per collection.
 *
 * The delay is sampled by our own timer rather than `monitorEventLoopDelay`: resetting that monitor
 * drops the first sample after the reset, so a stall that ends with the reading's own timer firing
 * first was never reported. Here {@link read} first records the stall still in progress (the time
 * since the last tick, when it is already longer than the resolution), so no delay falls between
 * two intervals.
 */
export class LoopDiagnostics {
  private readonly eld: RecordableHistogram = createHistogram();
  private readonly resolutionNs: bigint;
  private readonly ticker: NodeJS.Timeout;
  private lastTick = process.hrtime.bigint();
  private readonly observer: PerformanceObserver;
  private gcCount = 0;
  private gcMinor = 0;
  private gcMajor = 0;
  private gcIncremental = 0;
  private gcWeak = 0;
  private gcTotal = 0;
  private gcMax = 0;
  private gcMinorMax = 0;
  private cpu = process.cpuUsage();
  private t0 = performance.now();
  private stopped = false;

  constructor(options: LoopDiagnosticsOptions = {}) {
    const resolution = options.resolutionMs ?? 10;
    if (!(Number.isInteger(resolution) && resolution >= 1)) {
      throw new RangeError(`LoopDiagnosticsOptions.resolutionMs must be a positive integer, got ${resolution}`);
    }
    this.resolutionNs = BigInt(resolution) * 1_000_000n;
    this.ticker = setInterval(() => this.tick(false), resolution);
    this.ticker.unref();
    this.observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0;
        const ms = e.duration;
        this.gcCount++;
        this.gcTotal += ms;
        if (ms > this.gcMax) this.gcMax = ms;
        switch (kind) {
          case constants.NODE_PERFORMANCE_GC_MINOR:
            this.gcMinor++;
            if (ms > this.gcMinorMax) this.gcMinorMax = ms;
            break;
          case constants.NODE_PERFORMANCE_GC_MAJOR:
            this.gcMajor++;
            break;
          case constants.NODE_PERFORMANCE_GC_INCREMENTAL:
            this.gcIncremental++;
            break;
          case constants.NODE_PERFORMANCE_GC_WEAKCB:
            this.gcWeak++;
            break;
        }
      }
    });
    this.observer.observe({ entryTypes: ['gc'] });
  }

  /** Records the time since the last tick; `pending`: only if it already exceeds the resolution. */
  private tick(pending: boolean): void {
    const t = process.hrtime.bigint();
    const delta = t - this.lastTick;
    if (pending && delta <= this.resolutionNs) return;
    if (delta > 0n) this.eld.record(delta);
    this.lastTick = t;
  }

  /** What happened since the previous reading (or the start); starts a new interval. */
  read(): DiagnosticsReading {
    if (!this.stopped) this.tick(true);
    const now = performance.now();
    const cpu = process.cpuUsage(this.cpu);
    const mem = process.memoryUsage();
    const eld = this.eld;
    const sampled = eld.count > 0;
    const reading: DiagnosticsReading = {
      intervalMs: Math.round(now - this.t0),
      eldP50Ms: sampled ? nsToMs(eld.percentile(50)) : 0,
      eldP99Ms: sampled ? nsToMs(eld.percentile(99)) : 0,
      eldMaxMs: sampled ? nsToMs(eld.max) : 0,
      eldMeanMs: sampled ? nsToMs(eld.mean) : 0,
      gcCount: this.gcCount,
      gcMinor: this.gcMinor,
      gcMajor: this.gcMajor,
      gcIncremental: this.gcIncremental,
      gcWeakCallbacks: this.gcWeak,
      gcTotalMs: r3(this.gcTotal),
      gcMaxMs: r3(this.gcMax),
      gcMinorMaxMs: r3(this.gcMinorMax),
      cpuUserUs: cpu.user,
      cpuSystemUs: cpu.system,
      rssMb: Math.round(mem.rss / 2 ** 20),
      heapUsedMb: Math.round(mem.heapUsed / 2 ** 20),
    };
    eld.reset();
    this.gcCount = this.gcMinor = this.gcMajor = this.gcIncremental = this.gcWeak = 0;
    this.gcTotal = this.gcMax = this.gcMinorMax = 0;
    this.cpu = process.cpuUsage();
    this.t0 = now;
    return reading;
  }

  /** Stops the monitor and the GC observer. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.ticker);
    this.observer.disconnect();
  }
}

/** The environment variable that turns on the sidecar's diagnostics log (interval in ms; unset or 0: off). */
export const DIAGNOSTICS_ENV = 'MODELWATCH_DIAGNOSTICS_INTERVAL_MS';

/** The diagnostics interval asked for by {@link DIAGNOSTICS_ENV}; 0 when unset, invalid or not positive. */
export function diagnosticsIntervalFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[DIAGNOSTICS_ENV];
  if (raw === undefined || raw.trim() === '') return 0;
  const n = Number(raw);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

/**
 * Logs a `diagnostics` line (a {@link DiagnosticsReading}, at level info) every `intervalMs`, and one
 * last line for the partial interval when stopped. The timer is unref'd: it never keeps the process up.
 */
export function startDiagnosticsLog(logger: Logger, intervalMs: number): { stop(): void } {
  if (!(Number.isInteger(intervalMs) && intervalMs > 0)) {
    throw new RangeError(`diagnostics interval must be a positive integer of ms, got ${intervalMs}`);
  }
  const diag = new LoopDiagnostics();
  const timer = setInterval(() => logger.info('diagnostics', { ...diag.read() }), intervalMs);
  timer.unref();
  let stopped = false;
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      logger.info('diagnostics', { ...diag.read() });
      diag.stop();
    },
  };
}
