/** Worker-thread entry of the exact drift engine's pool: runs numeric feature jobs posted by {@link SortPool}. */
import { serveTasks } from '../../common/task-pool.js';
import { runNumericJob } from './job.js';
import { transferablesOf } from './transfer.js';

serveTasks(runNumericJob, transferablesOf);
