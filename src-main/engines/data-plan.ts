// The pytorch engine's data plan is computed by the tfjs engine's own data code (src-worker/data/data-plan.ts)
// in a worker thread: the main process stays free of tokenizers and tfjs, and its event loop is not held
// while a large dataset is tokenized.
import type { WriteDataPlanJob } from '../../src-shared/worker-protocol.ts';
import { OneShotJobs } from '../worker-thread.ts';

/** Writes the plan of `job` to `outFile` from a fresh worker; answers the number of steps it holds. */
export async function writeDataPlanInWorker(job: Omit<WriteDataPlanJob, 'type' | 'outFile'>, outFile: string): Promise<number> {
  const { steps } = await new OneShotJobs().run({ type: 'write-data-plan', ...job, outFile }, 'data-plan-written');
  return steps;
}
