/** Worker-thread entry of the exact drift engine's pool: runs numeric feature jobs posted by {@link SortPool}. */
import { serveTasks } from '../../common/task-pool.js';
import { runNumericJob, warmUpNumericJob } from './job.js';
import { transferablesOf } from './transfer.js';

// Type feedback for every path of a job before the first real one (see `warmUpNumericJob`).
warmUpNumericJob();
serveTasks(runNumericJob, transferablesOf);
