/**
 * A small fixed-size pool of long-lived `worker_threads` that run tasks one at a time each: the exact drift
 * engine's sort pool and the fleet's comparison pool. A worker may hold up to `depth` tasks (it runs them in
 * order), so it starts its next task without waiting for this thread to hear of the last one. Workers start on
 * first use and stay unreferenced while idle, so a CLI process exits without closing the pool. A task's transferables (typed-array buffers) are
 * moved to the worker, not copied: the caller must not use them afterwards. The worker side is
 * {@link serveTasks}.
 */
import { availableParallelism } from 'node:os';
import { parentPort, type Worker } from 'node:worker_threads';
import { ErrorCodes, ModelwatchError } from './errors.js';
import { startWorker } from './worker.js';

/** What a pool worker posts back for a task. */
type TaskReply<Out> = { id: number; ok: true; output: Out } | { id: number; ok: false; message: string };

interface Task<In, Out> {
  id: number;
  input: In;
  resolve: (o: Out) => void;
  reject: (e: Error) => void;
}

interface Slot<In, Out> {
  worker: Worker;
  /** Tasks posted to the worker and not answered yet, in the order it runs them. */
  tasks: Task<In, Out>[];
}

/** Options of a {@link TaskPool}. */
export interface TaskPoolOptions<In> {
  /** The worker entry module (it calls {@link serveTasks}). */
  entry: URL;
  /** What the workers are, for error messages, e.g. `'drift worker'`. */
  what: string;
  /** The buffers of a task's input to move to the worker. */
  transferables: (input: In) => ArrayBuffer[];
  /** Workers. @default min(2, available parallelism) */
  size?: number | undefined;
  /**
   * Tasks posted to a worker at once (it runs them one after the other): above 1, a worker's next task waits in
   * its port while it runs the current one, so it never idles while this thread is busy. A task goes to a worker
   * holding fewer tasks first (an idle one before a second task to a busy one). @default 1
   */
  depth?: number | undefined;
}

/**
 * Runs tasks in up to `size` workers, queued while every worker holds `depth` tasks; each worker runs one task
 * at a time.
 */
export class TaskPool<In, Out> {
  readonly size: number;
  readonly depth: number;
  private readonly slots: Slot<In, Out>[] = [];
  private readonly queue: Task<In, Out>[] = [];
  private nextId = 1;

  constructor(private readonly options: TaskPoolOptions<In>) {
    this.size = options.size ?? Math.max(1, Math.min(2, availableParallelism()));
    this.depth = Math.max(1, Math.floor(options.depth ?? 1));
  }

  /** Runs `input` in a worker; rejects with an `internal` error when the task or its worker fails. */
  run(input: In): Promise<Out> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, input, resolve, reject });
      this.pump();
    });
  }

  /** Per worker (in start order), the tasks posted to it and not answered yet: at most {@link depth} each. */
  held(): number[] {
    return this.slots.map((s) => s.tasks.length);
  }

  /** Terminates the workers; tasks in flight reject. */
  async close(): Promise<void> {
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private spawn(): Slot<In, Out> {
    const what = this.options.what;
    const worker = startWorker(this.options.entry, {});
    const slot: Slot<In, Out> = { worker, tasks: [] };
    const remove = (): void => {
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
    };
    worker.on('message', (msg: TaskReply<Out>) => {
      const task = slot.tasks[0];
      if (task === undefined || task.id !== msg.id) return;
      slot.tasks.shift();
      if (slot.tasks.length === 0) worker.unref();
      if (msg.ok) task.resolve(msg.output);
      else task.reject(new ModelwatchError(ErrorCodes.internal, `${what}: ${msg.message}`));
      this.pump();
    });
    const fail = (err: Error): void => {
      remove();
      for (const task of slot.tasks.splice(0))
        task.reject(new ModelwatchError(ErrorCodes.internal, `${what} failed: ${err.message}`, { cause: err }));
      this.pump();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (slot.tasks.length > 0) fail(new Error(`exited with code ${code}`));
      else remove();
    });
    worker.unref();
    this.slots.push(slot);
    return slot;
  }

  private pump(): void {
    while (this.queue.length > 0) {
      // The worker holding the fewest tasks (the first of them on a tie); a new one rather than a second task.
      let slot: Slot<In, Out> | undefined;
      for (const s of this.slots) if (slot === undefined || s.tasks.length < slot.tasks.length) slot = s;
      if ((slot === undefined || slot.tasks.length > 0) && this.slots.length < this.size) slot = this.spawn();
      if (slot === undefined || slot.tasks.length >= this.depth) return;
      const task = this.queue.shift()!;
      slot.tasks.push(task);
      slot.worker.ref();
      try {
        slot.worker.postMessage({ id: task.id, input: task.input }, this.options.transferables(task.input));
      } catch (err) {
        // The input could not be posted (e.g. not cloneable): this task fails, the worker keeps its others.
        slot.tasks.pop();
        if (slot.tasks.length === 0) slot.worker.unref();
        task.reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }
}

/**
 * The worker side of a {@link TaskPool}: runs `handler` on each task posted to this worker thread and posts its
 * output (moving the buffers `transferables` names), or the message of the error it threw.
 */
export function serveTasks<In, Out>(
  handler: (input: In) => Out | Promise<Out>,
  transferables: (output: Out) => ArrayBuffer[] = () => [],
): void {
  const port = parentPort;
  if (port === null) throw new Error('serveTasks must run in a worker thread');
  port.on('message', (msg: { id: number; input: In }) => {
    void (async () => {
      let reply: TaskReply<Out>;
      let transfer: ArrayBuffer[] = [];
      try {
        const output = await handler(msg.input);
        reply = { id: msg.id, ok: true, output };
        transfer = transferables(output);
      } catch (err) {
        reply = { id: msg.id, ok: false, message: err instanceof Error ? err.message : String(err) };
      }
      port.postMessage(reply, transfer);
    })();
  });
}
