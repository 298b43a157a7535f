// Every service behind the WorkbenchApi, built over one store and one data folder. The front doors
// (Electron, `serve`, the CLI) and the tests build them here so that a new service is wired once.
import type { Worker } from 'node:worker_threads';
import { AdapterBank } from './adapter-bank.ts';
import { BenchmarkStore } from './benchmarks.ts';
import { AdapterImporter } from './adapter-import.ts';
import { DatasetRegistry } from './datasets.ts';
import { Deletion } from './deletion.ts';
import { EvalManager } from './evals.ts';
import { PytorchEnvironment } from './engines/pytorch-environment.ts';
import { ModelService } from './models.ts';
import type { WorkbenchPaths } from './paths.ts';
import { RunPreflight } from './preflight.ts';
import { QuickEvaluation } from './quick-eval.ts';
import { RunManager } from './runs.ts';
import { StudyService } from './studies.ts';
import { WorkerPool } from './worker-pool.ts';
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
  adapterImporter: AdapterImporter;
  /** Connected to the WorkbenchApi by createWorkbenchApi: its cells run through the same calls as the UI's. */
  studies: StudyService;
  /** Checks a run's model and dataset before runs.start creates it. */
  preflight: RunPreflight;
  /** runs/adapters/evals.delete and the data folder's size. */
  deletion: Deletion;
  /** "Get the data": the benchmarks' pinned sources, downloaded and checked. */
  benchmarks: BenchmarkStore;
  /** The evaluation that needs no download: perplexity on a run's held-out rows. */
  quickEval: QuickEvaluation;
  /** The pytorch engine's Python environment: its state, and the New run page's "Set up" (engines.pytorch). */
  pytorchEnvironment: PytorchEnvironment;
  /** Ends every worker (runs become resumable) and leaves the store open for its owner to close. */
  close(): Promise<void>;
}

export function createServices(options: ServiceOptions): Services {
  const manager = new RunManager(options);
  const evals = new EvalManager(options);
  // One capped pool of reused workers for every short job the view asks for (worker-pool.ts).
  const pool = new WorkerPool({ createWorker: options.createWorker });
  const services = {
    manager,
    evals,
    models: new ModelService({ ...options, pool }),
    datasets: new DatasetRegistry({ ...options, pool }),
    preflight: new RunPreflight({ ...options, pool }),
    benchmarks: new BenchmarkStore({ paths: options.paths }),
    quickEval: new QuickEvaluation({ ...options, pool, evals }),
    deletion: new Deletion({ ...options, isTraining: (id) => manager.isActive(id) }),
    adapterBank: new AdapterBank(options),
    adapterImporter: new AdapterImporter(options),
    studies: new StudyService(options),
    pytorchEnvironment: new PytorchEnvironment(options),
  };
  return {
    ...services,
    close: async () => {
      // studies first: it marks its studies interrupted before the managers interrupt their runs.
      await Promise.allSettled([
        services.studies.close(),
        manager.close(),
        evals.close(),
        services.models.close(),
        services.datasets.close(),
        services.adapterBank.close(),
        services.adapterImporter.close(),
      ]);
      await pool.close();
    },
  };
}
