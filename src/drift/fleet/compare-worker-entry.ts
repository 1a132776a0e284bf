/** Worker-thread entry of the fleet's comparison pool: runs batches of model comparisons ({@link compareModel}). */
import { parentPort } from 'node:worker_threads';
import { compareModel, type ModelComparison } from './compare-job.js';
import { failedAnswer, type BatchAnswer } from './compare-pool.js';

const port = parentPort;
if (port === null) throw new Error('compare-worker-entry must run in a worker thread');
port.on('message', (msg: { id: number; batch: ModelComparison[] }) => {
  void (async () => {
    const answers: BatchAnswer[] = [];
    for (const c of msg.batch) {
      try {
        answers.push({ ok: true, report: await compareModel(c) });
      } catch (err) {
        answers.push(failedAnswer(err));
      }
    }
    port.postMessage({ id: msg.id, answers });
  })();
});
