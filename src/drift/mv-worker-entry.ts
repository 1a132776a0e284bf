// Worker-thread entry of runKernelsInWorker: rebuilds one group's rows, runs the synchronous methods and
// posts their results or the error. Started by mv-worker.ts; not imported anywhere else.
import { parentPort, workerData } from 'node:worker_threads';
import { ModelwatchError, errorMessage } from '../common/errors.js';
import { runSyncMethod } from './mv-kernels.js';
import type { KernelWorkerData, KernelWorkerMessage } from './mv-worker.js';

const port = parentPort;
if (!port) throw new Error('mv-worker-entry must run in a worker thread');

function rows(flat: Float64Array, width: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < flat.length; i += width) out.push(Array.from(flat.subarray(i, i + width)));
  return out;
}

const data = workerData as KernelWorkerData;
let message: KernelWorkerMessage;
try {
  const group = {
    group: data.group,
    columns: data.columns,
    reference: rows(data.reference, data.width),
    current: rows(data.current, data.width),
  };
  message = { ok: true, result: data.methods.map((m) => runSyncMethod(m, group, data.settings)) };
} catch (err) {
  message = { ok: false, message: errorMessage(err), code: err instanceof ModelwatchError ? err.code : 'internal' };
}
port.postMessage(message);
