// Worker-thread entry of the multivariate kernels (started by kernel-worker.ts; imported nowhere else):
// runs the task in workerData and posts the result or the error.
import { parentPort, workerData } from 'node:worker_threads';
import { ModelwatchError, errorMessage } from '../../common/errors.js';
import { classifierFolds, type CappedSamples, type ResolvedDomainClassifierOptions } from './domain-classifier.js';
import type { FlatRows } from './flat.js';
import type { KernelReply } from './kernel-worker.js';
import { computeMultivariateDriftFlat, type MultivariateMethod, type MultivariateMethodOptions } from './methods.js';

/** The tasks a kernel worker runs. */
type KernelTask =
  | { kind: 'classifier'; samples: CappedSamples; options: ResolvedDomainClassifierOptions; folds: number[] }
  | {
      kind: 'method';
      method: MultivariateMethod;
      reference: FlatRows;
      current: FlatRows;
      options: MultivariateMethodOptions[MultivariateMethod];
    };

const port = parentPort;
if (!port) throw new Error('kernel-worker-entry must run in a worker thread');

const task = workerData as KernelTask;
let reply: KernelReply;
try {
  const result =
    task.kind === 'classifier'
      ? classifierFolds(task.samples, task.options, task.folds)
      : computeMultivariateDriftFlat(task.method, task.reference, task.current, task.options);
  reply = { ok: true, result };
} catch (err) {
  reply =
    err instanceof ModelwatchError
      ? { ok: false, message: errorMessage(err), code: err.code, field: err.field }
      : { ok: false, message: errorMessage(err), code: 'internal' };
}
port.postMessage(reply);
