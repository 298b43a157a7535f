// The one WorkbenchApi implementation. Electron IPC, the WebSocket server and the CLI all reach it
// through `dispatch` (src-shared/api.ts), which validates what goes in and what comes out.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import type { Catalog, CatalogEntry, SystemInfo, WorkbenchApi } from '../src-shared/api.ts';
import { DEFAULT_MODEL, SAMPLE_DATASET, defaultRunConfig, type BackendName } from '../src-shared/config.ts';
import { installedBackends as sharedInstalledBackends, packageInstalled, type PackageProbe } from '../src-shared/backends.ts';
import { methodDescriptors } from '../src-shared/methods.ts';
import { WorkbenchError } from '../src-shared/errors.ts';
import { packageVersion, type WorkbenchPaths } from './paths.ts';
import { catalogEntry } from './datasets.ts';
import type { EvalManager } from './evals.ts';
import { modelFoldersOfRuns } from './models.ts';
import type { BenchmarkStore } from './benchmarks.ts';
import type { Deletion } from './deletion.ts';
import type { RunPreflight } from './preflight.ts';
import type { QuickEvaluation } from './quick-eval.ts';
import type { RunManager } from './runs.ts';
import type { StudyService } from './studies.ts';
import { PytorchEnvironment } from './engines/pytorch-environment.ts';

export interface WorkbenchApiOptions {
  manager: RunManager;
  evals: EvalManager;
  /** Model folder inspection (models.inspect) and the Playground's generation. */
  models: Pick<WorkbenchApi['models'], 'inspect' | 'import'> & Pick<WorkbenchApi['playground'], 'generate'>;
  datasets: WorkbenchApi['datasets'];
  /** SG-LoRA's adapter bank: task descriptions and zero-shot generation. */
  adapterBank: Pick<WorkbenchApi['adapters'], 'describe' | 'generate'>;
  /** adapters.import: PEFT LoRA folders trained elsewhere. */
  adapterImporter: Pick<WorkbenchApi['adapters'], 'import'>;
  paths: WorkbenchPaths;
  mode: SystemInfo['mode'];
  /** Studies; absent where a caller builds a partial API (some tests), whose studies calls then say so. */
  studies?: StudyService;
  /** Pre-flight of runs.start (preflight.ts); createServices provides it, tests of other calls may leave it out. */
  preflight?: Pick<RunPreflight, 'check'>;
  deletion: Deletion;
  benchmarks: Pick<BenchmarkStore, 'list' | 'fetch'>;
  quickEval: Pick<QuickEvaluation, 'start'>;
  /** engines.pytorch; absent (tests of other calls), one over `paths` is made. */
  pytorchEnvironment?: Pick<PytorchEnvironment, 'state' | 'subscribe'>;
}

/** Node's module resolution, for the installed-backends rule in src-shared/backends.ts (the worker applies the same). */
const probe: PackageProbe = {
  resolve: (specifier) => {
    try {
      return createRequire(import.meta.url).resolve(specifier);
    } catch {
      return null;
    }
  },
  exists: existsSync,
  platform: process.platform,
  arch: process.arch,
};

export function installedBackends(isInstalled: (specifier: string) => boolean = packageInstalled(probe)): BackendName[] {
  return sharedInstalledBackends(probe, isInstalled);
}

function readJson(file: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

function embeddedModel(paths: WorkbenchPaths): CatalogEntry | null {
  const config = readJson(`${paths.defaultModelDir}/config.json`);
  if (!config) return null;
  const figures = [
    config.model_type && `${String(config.model_type)}`,
    config.n_layer !== undefined && `${String(config.n_layer)} layers`,
    config.n_embd !== undefined && `hidden size ${String(config.n_embd)}`,
    config.vocab_size !== undefined && `vocabulary ${String(config.vocab_size)}`,
  ].filter(Boolean);
  return {
    id: DEFAULT_MODEL,
    name: 'Embedded default model',
    path: paths.defaultModelDir,
    description: `A small model shipped with the workbench for trying the whole flow quickly${figures.length ? ` (${figures.join(', ')})` : ''}.`,
  };
}

function embeddedDataset(paths: WorkbenchPaths): CatalogEntry | null {
  if (!existsSync(paths.sampleDatasetPath)) return null;
  const examples = readFileSync(paths.sampleDatasetPath, 'utf8')
    .split('\n')
    .filter((line) => line.trim()).length;
  return {
    id: SAMPLE_DATASET,
    name: 'Sample dataset',
    path: paths.sampleDatasetPath,
    description: `${examples} examples (JSONL) shipped with the workbench for trying the whole flow quickly.`,
  };
}

export function createWorkbenchApi({
  manager,
  evals,
  models,
  datasets,
  adapterBank,
  adapterImporter,
  paths,
  mode,
  studies,
  preflight,
  deletion,
  benchmarks,
  quickEval,
  pytorchEnvironment = new PytorchEnvironment({ paths }),
}: WorkbenchApiOptions): WorkbenchApi {
  const version = packageVersion(paths);
  const study = (): StudyService => {
    if (!studies) throw new WorkbenchError('internal', 'This workbench was built without the study service.');
    return studies;
  };
  const api: WorkbenchApi = {
    system: {
      info: async () => ({
        version,
        mode,
        dataDir: paths.dataDir,
        platform: `${process.platform}-${process.arch} (${os.release()}), Node ${process.versions.node}`,
        installedBackends: installedBackends(),
      }),
      usage: async () => deletion.usage(),
    },
    catalog: {
      list: async (): Promise<Catalog> => ({
        models: [embeddedModel(paths), ...modelFoldersOfRuns(manager.list().map((run) => run.config))].filter((e): e is CatalogEntry => e !== null),
        datasets: [embeddedDataset(paths), ...(await datasets.list()).map(catalogEntry)].filter((e): e is CatalogEntry => e !== null),
        methods: methodDescriptors,
        defaults: defaultRunConfig(),
      }),
    },
    runs: {
      list: async () => manager.list(),
      get: async (id) => manager.get(id),
      start: async (config) => {
        await preflight?.check(config);
        return manager.start(config);
      },
      stop: async (id) => manager.stop(id),
      resume: async (id) => manager.resume(id),
      metrics: async (id) => manager.metrics(id),
      delete: async (id) => deletion.deleteRun(id),
    },
    adapters: {
      list: async () => manager.adapters(),
      describe: async (request) => adapterBank.describe(request),
      generate: async (request) => adapterBank.generate(request),
      delete: async (id) => deletion.deleteAdapter(id),
      import: async (request) => adapterImporter.import(request),
    },
    models: {
      inspect: async (request) => models.inspect(request),
      import: async (request) => models.import(request),
    },
    playground: {
      generate: async (request) => models.generate(request),
    },
    datasets: {
      preview: async (request) => datasets.preview(request),
      register: async (request) => datasets.register(request),
      list: async () => datasets.list(),
      remove: async (id) => datasets.remove(id),
      upload: async (request) => datasets.upload(request),
    },
    benchmarks: {
      list: async () => benchmarks.list(),
      fetch: async (id) => benchmarks.fetch(id),
    },
    exports: {
      create: async (request) => manager.exportAdapter(request),
    },
    evals: {
      start: async (request) => evals.start(request),
      list: async () => evals.list(),
      get: async (id) => evals.get(id),
      stop: async (id) => evals.stop(id),
      result: async (id) => evals.result(id),
      delete: async (id) => deletion.deleteEvaluation(id),
      quick: async (request) => quickEval.start(request),
    },
    studies: {
      list: async () => study().list(),
      get: async (id) => study().detail(id),
      start: async (request) => study().start(request),
      resume: async (id) => study().resume(id),
      stop: async (id) => study().stop(id),
      recipes: async () => study().recipes(),
    },
    engines: {
      pytorch: async (request) => pytorchEnvironment.state(request),
    },
    onRunEvent: (listener) => {
      const unsubscribers = [manager.subscribe(listener), evals.subscribe(listener), pytorchEnvironment.subscribe(listener)];
      return () => unsubscribers.forEach((unsubscribe) => unsubscribe());
    },
  };
  studies?.connect(api);
  return api;
}
