/**
 * A small pool of `worker_threads` for the fleet's comparisons: each task is a batch of models (window and
 * sorted reference each), compared in the worker by {@link compareModel}; the answers are the models' drift
 * reports. Workers start on first use and stay unreferenced while idle (a CLI process exits without closing
 * the pool). The windows' arrays are transferred (consumed, as the engine's contract says); the sorted
 * references should be backed by a `SharedArrayBuffer` (shared with the worker, not copied).
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { ErrorCodes, ModelwatchError } from '../../common/errors.js';
import { startWorker, workerEntryUrl } from '../../common/worker.js';
import type { DriftReport } from '../stats/types.js';
import type { ModelComparison } from './compare-job.js';

/** One model's answer from a worker. */
export type BatchAnswer = { ok: true; report: DriftReport } | { ok: false; message: string; code?: string | undefined };

/** A failed comparison as a batch answer (its message and, when it has one, its error code). */
export function failedAnswer(err: unknown): BatchAnswer {
  const code = (err as { code?: unknown } | null)?.code;
  return {
    ok: false,
    message: err instanceof Error ? err.message : String(err),
    ...(typeof code === 'string' ? { code } : {}),
  };
}

interface Task {
  id: number;
  batch: ModelComparison[];
  resolve: (a: BatchAnswer[]) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  task: Task | null;
}

/** The array buffers a batch hands over to the worker: the windows' numeric arrays (not shared memory). */
function transferables(batch: readonly ModelComparison[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const c of batch)
    for (const v of c.current.numeric.values()) if (v.buffer instanceof ArrayBuffer) out.add(v.buffer);
  return [...out];
}

/** A fixed-size pool running batches of model comparisons. */
export class FleetComparePool {
  private readonly slots: Slot[] = [];
  private readonly queue: Task[] = [];
  private nextId = 1;

  /** @param size workers. @default min(2, available parallelism) */
  constructor(readonly size = Math.max(1, Math.min(2, availableParallelism()))) {}

  /** Compares a batch of models in a worker (queued while all are busy); answers in batch order. */
  run(batch: ModelComparison[]): Promise<BatchAnswer[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, batch, resolve, reject });
      this.pump();
    });
  }

  private spawn(): Slot {
    const worker = startWorker(workerEntryUrl(import.meta.url, './compare-worker-entry'), {});
    const slot: Slot = { worker, task: null };
    worker.on('message', (msg: { id: number; answers: BatchAnswer[] }) => {
      const task = slot.task;
      if (task === null || task.id !== msg.id) return;
      slot.task = null;
      worker.unref();
      task.resolve(msg.answers);
      this.pump();
    });
    const fail = (err: Error): void => {
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      const task = slot.task;
      slot.task = null;
      task?.reject(
        new ModelwatchError(ErrorCodes.internal, `fleet compare worker failed: ${err.message}`, { cause: err }),
      );
      this.pump();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (slot.task !== null) fail(new Error(`exited with code ${code}`));
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
      let slot = this.slots.find((s) => s.task === null);
      if (slot === undefined && this.slots.length < this.size) slot = this.spawn();
      if (slot === undefined) return;
      const task = this.queue.shift()!;
      slot.task = task;
      slot.worker.ref();
      try {
        slot.worker.postMessage({ id: task.id, batch: task.batch }, transferables(task.batch));
      } catch (err) {
        slot.task = null;
        slot.worker.unref();
        task.reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  /** Terminates the workers; tasks in flight reject. */
  async close(): Promise<void> {
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}

let shared: FleetComparePool | undefined;

/** The process-wide fleet comparison pool (created on first use). */
export function sharedFleetPool(): FleetComparePool {
  shared ??= new FleetComparePool();
  return shared;
}
