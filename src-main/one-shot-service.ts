// What the services whose work is a one-shot worker job share (SG-LoRA generation, the PEFT import):
// the store and folders they record into, the jobs they run, and closing: it ends the running jobs
// and refuses new work.
import type { Worker } from 'node:worker_threads';
import { WorkbenchError } from '../src-shared/errors.ts';
import type { WorkbenchPaths } from './paths.ts';
import type { Store } from './store/index.ts';
import { OneShotJobs, startEngineWorker } from './worker-thread.ts';

export abstract class OneShotService {
  protected readonly store: Store;
  protected readonly paths: WorkbenchPaths;
  protected readonly jobs: OneShotJobs;
  private closed = false;

  constructor(options: { store: Store; paths: WorkbenchPaths; createWorker?: () => Worker }) {
    this.store = options.store;
    this.paths = options.paths;
    this.jobs = new OneShotJobs(options.createWorker ?? startEngineWorker);
  }

  /** Refuses new work once closing, with the service's own words for it. */
  protected assertOpen(message: string): void {
    if (this.closed) throw new WorkbenchError('conflict', message);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.jobs.close();
  }
}
