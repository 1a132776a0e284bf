/**
 * A small pool of `worker_threads` for the exact drift engine's numeric jobs (radix sorts and merge passes).
 * Workers start on first use and stay unreferenced while idle, so a CLI process exits without closing the
 * pool. Typed arrays in a job's input are transferred (their buffers become unusable to the caller): pass
 * arrays that own their buffers.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { ErrorCodes, ModelwatchError } from '../../common/errors.js';
import { startWorker, workerEntryUrl } from '../../common/worker.js';
import { runNumericJob, type NumericJobInput, type NumericJobOutput } from './job.js';
import { transferablesOf } from './transfer.js';

/** Jobs with fewer values than this (both sides together) run inline: no worker start-up, no transfer. */
export const INLINE_MAX_VALUES = 200_000;

interface Pending {
  resolve: (o: NumericJobOutput) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: number;
  pending: Map<number, Pending>;
}

/** A fixed-size worker pool for {@link runNumericJob}. */
export class SortPool {
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private readonly queue: Array<{ id: number; input: NumericJobInput; p: Pending }> = [];

  /** @param size workers. @default min(2, available parallelism) */
  constructor(readonly size = Math.max(1, Math.min(2, availableParallelism()))) {}

  /** Runs a job in a worker (queued when all are busy). */
  run(input: NumericJobInput): Promise<NumericJobOutput> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, input, p: { resolve, reject } });
      this.pump();
    });
  }

  private spawn(): Slot {
    const worker = startWorker(workerEntryUrl(import.meta.url, './worker-entry'), {});
    const slot: Slot = { worker, busy: 0, pending: new Map() };
    worker.on('message', (msg: { id: number; ok: boolean; output?: NumericJobOutput; message?: string }) => {
      const p = slot.pending.get(msg.id);
      if (p === undefined) return;
      slot.pending.delete(msg.id);
      slot.busy--;
      if (slot.busy === 0) worker.unref();
      if (msg.ok && msg.output !== undefined) p.resolve(msg.output);
      else p.reject(new ModelwatchError(ErrorCodes.internal, `drift worker: ${msg.message ?? 'failed'}`));
      this.pump();
    });
    const fail = (err: Error): void => {
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      for (const p of slot.pending.values())
        p.reject(new ModelwatchError(ErrorCodes.internal, `drift worker failed: ${err.message}`, { cause: err }));
      slot.pending.clear();
      this.pump();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (slot.pending.size > 0) fail(new Error(`exited with code ${code}`));
      else {
        const i = this.slots.indexOf(slot);
        if (i >= 0) this.slots.splice(i, 1);
      }
    });
    worker.unref();
    this.slots.push(slot);
    return slot;
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let slot = this.slots.find((s) => s.busy === 0);
      if (slot === undefined && this.slots.length < this.size) slot = this.spawn();
      if (slot === undefined) return;
      const job = this.queue.shift()!;
      slot.busy++;
      slot.worker.ref();
      slot.pending.set(job.id, job.p);
      slot.worker.postMessage({ id: job.id, input: job.input }, transferablesOf(job.input));
    }
  }

  /** Terminates the workers; pending jobs reject. */
  async close(): Promise<void> {
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}

let shared: SortPool | undefined;

/** The process-wide pool (created on first use). */
export function sharedPool(): SortPool {
  shared ??= new SortPool();
  return shared;
}

/** Runs a numeric job inline when small (below `inlineMax` values, both sides), else in `pool`. */
export function runJob(
  input: NumericJobInput,
  pool: SortPool | 'inline' = sharedPool(),
  inlineMax = INLINE_MAX_VALUES,
): Promise<NumericJobOutput> {
  const size = (s: NumericJobInput['reference'] | undefined): number =>
    s === undefined ? 0 : 'raw' in s ? s.raw.length : s.sorted.length;
  if (pool === 'inline' || size(input.reference) + size(input.current) < inlineMax) {
    return Promise.resolve(runNumericJob(input));
  }
  return pool.run(input);
}
