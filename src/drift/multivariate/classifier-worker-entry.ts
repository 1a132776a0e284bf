// Worker-thread entry of runDomainClassifier: rebuilds the capped rows, runs the domain classifier and
// posts the result or the error. Started by classifier-worker.ts; not imported anywhere else.
import { parentPort, workerData } from 'node:worker_threads';
import { ModelwatchError, errorMessage } from '../../common/errors.js';
import type { ClassifierWorkerData, ClassifierWorkerMessage } from './classifier-worker.js';
import { domainClassifierDrift } from './domain-classifier.js';

const port = parentPort;
if (!port) throw new Error('classifier-worker-entry must run in a worker thread');

function rows(flat: Float64Array, width: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < flat.length; i += width) out.push(Array.from(flat.subarray(i, i + width)));
  return out;
}

const data = workerData as ClassifierWorkerData;
let message: ClassifierWorkerMessage;
try {
  const result = domainClassifierDrift(rows(data.reference, data.width), rows(data.current, data.width), data.options);
  message = { ok: true, result };
} catch (err) {
  message = { ok: false, message: errorMessage(err), code: err instanceof ModelwatchError ? err.code : 'internal' };
}
port.postMessage(message);
