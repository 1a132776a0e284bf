/** Worker-thread entry of the fleet's comparison pool: runs batches of model comparisons ({@link compareModel}). */
import { serveTasks } from '../../common/task-pool.js';
import { compareModel, type ModelComparison } from './compare-job.js';
import { failedAnswer, type BatchAnswer } from './compare-pool.js';

serveTasks(async (batch: ModelComparison[]): Promise<BatchAnswer[]> => {
  const answers: BatchAnswer[] = [];
  for (const c of batch) {
    try {
      answers.push({ ok: true, report: await compareModel(c) });
    } catch (err) {
      answers.push(failedAnswer(err));
    }
  }
  return answers;
});
