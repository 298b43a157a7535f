// What a study's cells call, apart from the study runner so that the runner and its generation cells share it.
import type { WorkbenchApi } from '../src-shared/api.ts';

/** The calls a study makes: the same ones the UI makes for one run and its evaluations (and SG-LoRA's generation). */
export interface StudyJobs {
  runs: Pick<WorkbenchApi['runs'], 'get' | 'start' | 'resume' | 'stop'>;
  evals: Pick<WorkbenchApi['evals'], 'get' | 'start' | 'stop'>;
  /** Only generation recipes use the bank. */
  adapters?: Pick<WorkbenchApi['adapters'], 'describe' | 'generate'>;
}
