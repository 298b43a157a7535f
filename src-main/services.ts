// Every service behind the WorkbenchApi, built over one store and one data folder. The front doors
// (Electron, `serve`, the CLI) and the tests build them here so that a new service is wired once.
import type { Worker } from 'node:worker_threads';
import { AdapterBank } from './adapter-bank.ts';
import { DatasetRegistry } from './datasets.ts';
import { EvalManager } from './evals.ts';
import { ModelService } from './models.ts';
import type { WorkbenchPaths } from './paths.ts';
import { RunManager } from './runs.ts';
import { StudyService } from './studies.ts';
import type { Store } from './store/index.ts';

export interface ServiceOptions {
  store: Store;
  paths: WorkbenchPaths;
  /** Tests pass fake workers; everything else starts the engine (src-worker/main.ts). */
  createWorker?: () => Worker;
}

export interface Services {
  manager: RunManager;
  evals: EvalManager;
  models: ModelService;
  datasets: DatasetRegistry;
  adapterBank: AdapterBank;
  /** Connected to the WorkbenchApi by createWorkbenchApi: its cells run through the same calls as the UI's. */
  studies: StudyService;
  /** Ends every worker (runs become resumable) and leaves the store open for its owner to close. */
  close(): Promise<void>;
}

export function createServices(options: ServiceOptions): Services {
  const manager = new RunManager(options);
  const evals = new EvalManager(options);
  const models = new ModelService(options);
  const datasets = new DatasetRegistry(options);
  const adapterBank = new AdapterBank(options);
  const studies = new StudyService(options);
  return {
    manager, evals, models, datasets, adapterBank, studies,
    close: async () => {
      // studies first: it marks its studies interrupted before the managers interrupt their runs.
      await Promise.allSettled([studies.close(), manager.close(), evals.close(), models.close(), datasets.close(), adapterBank.close()]);
    },
  };
}
