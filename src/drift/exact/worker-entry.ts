/** Worker-thread entry of the exact drift engine's pool: runs numeric feature jobs posted by {@link SortPool}. */
import { parentPort } from 'node:worker_threads';
import { runNumericJob, type NumericJobInput } from './job.js';
import { transferablesOf } from './transfer.js';

const port = parentPort;
if (port === null) throw new Error('worker-entry must run in a worker thread');
port.on('message', (msg: { id: number; input: NumericJobInput }) => {
  try {
    const output = runNumericJob(msg.input);
    port.postMessage({ id: msg.id, ok: true, output }, transferablesOf(output));
  } catch (err) {
    port.postMessage({ id: msg.id, ok: false, message: err instanceof Error ? err.message : String(err) });
  }
});
