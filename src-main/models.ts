// ModelService: model folder inspection (models.inspect) and the Playground's generation
// (playground.generate). Both run as one-shot jobs in engine workers: inspection reads headers only,
// generation loads the model once for the base and the adapted output.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import type { CatalogEntry } from '../src-shared/api.ts';
import { DEFAULT_MODEL, defaultRunConfig, type RunConfig } from '../src-shared/config.ts';
import { validate, WorkbenchError } from '../src-shared/errors.ts';
import {
  GenerateRequestSchema,
  ModelImportRequestSchema,
  ModelInspectRequestSchema,
  type GenerateRequestInput,
  type GenerateResult,
  type ModelImportRequest,
  type ModelImportResult,
  type ModelInspection,
  type ModelInspectRequest,
} from '../src-shared/models.ts';
import type { WorkbenchPaths } from './paths.ts';
import { resolveAdapterAndModel, resolveModelDir } from './model-resolution.ts';
import type { Store } from './store/index.ts';
import { WorkerPool } from './worker-pool.ts';
import { OneShotJobs, startEngineWorker } from './worker-thread.ts';

export interface ModelServiceOptions {
  store: Store;
  paths: WorkbenchPaths;
  createWorker?: () => Worker;
  /** Inspections and generation share this pool (createServices); without one the service makes its own. */
  pool?: WorkerPool;
}

/** Inspection reads headers only. */
const INSPECT_TIMEOUT_MS = 60_000;
/** Generation loads the model and decodes up to the request's token limit on a CPU backend. */
const GENERATE_TIMEOUT_MS = 10 * 60_000;

/**
 * The model folders earlier runs trained on (newest first, each once) that still exist, as catalog
 * entries after the embedded model, so the New run page offers them again.
 */
export function modelFoldersOfRuns(configs: readonly Pick<RunConfig, 'model'>[]): CatalogEntry[] {
  const seen = new Set<string>();
  const entries: CatalogEntry[] = [];
  for (const { model } of configs) {
    if (model === DEFAULT_MODEL) continue;
    const dir = path.resolve(model);
    if (seen.has(dir)) continue;
    seen.add(dir);
    // A failed run's folder is offered again only if it looks like a model (a run on /etc once put /etc here).
    if (!existsSync(path.join(dir, 'config.json'))) continue;
    entries.push({ id: dir, name: path.basename(dir), path: dir, description: `Model folder used by an earlier run (${dir}).` });
  }
  return entries;
}

export class ModelService {
  private readonly store: Store;
  private readonly paths: WorkbenchPaths;
  /** The llama2.c import writes a model folder: a one-off job in its own worker. */
  private readonly jobs: OneShotJobs;
  private readonly pool: WorkerPool;
  private readonly ownsPool: boolean;
  private closed = false;

  constructor(options: ModelServiceOptions) {
    this.store = options.store;
    this.paths = options.paths;
    this.jobs = new OneShotJobs(options.createWorker ?? startEngineWorker);
    this.ownsPool = options.pool === undefined;
    this.pool = options.pool ?? new WorkerPool({ createWorker: options.createWorker });
  }

  /** The folder's architecture, size, dtypes and the memory a run of the given shape needs (run defaults otherwise). */
  async inspect(input: ModelInspectRequest): Promise<ModelInspection> {
    this.assertOpen();
    const request = validate(ModelInspectRequestSchema, input, 'models.inspect input');
    const modelDir = resolveModelDir(this.paths, request.model);
    const defaults = defaultRunConfig();
    const { inspection } = await this.pool.run(
      {
        type: 'inspect-model',
        modelDir,
        batchSize: request.batchSize ?? defaults.training.batchSize,
        maxSeqLen: request.maxSeqLen ?? defaults.training.maxSeqLen,
        r: request.r ?? defaults.lora.r,
        engine: request.engine,
        accelerator: request.accelerator,
      },
      'model-inspected',
      { timeoutMs: INSPECT_TIMEOUT_MS },
    );
    return inspection;
  }

  /** Converts a llama2.c checkpoint into a Llama folder at outDir (paths resolved against the caller's working folder). */
  async import(input: ModelImportRequest): Promise<ModelImportResult> {
    this.assertOpen();
    const request = validate(ModelImportRequestSchema, input, 'models.import input');
    for (const [field, file] of [
      ['checkpoint', request.checkpoint],
      ['tokenizer', request.tokenizer],
    ] as const) {
      if (!existsSync(path.resolve(file)) || !statSync(path.resolve(file)).isFile()) {
        throw new WorkbenchError(
          'not_found',
          `The ${field} file ${path.resolve(file)} does not exist. Pick the llama2.c ${field === 'checkpoint' ? 'model .bin' : 'tokenizer .bin'} file.`,
          { field },
        );
      }
    }
    const defaults = defaultRunConfig();
    const { result } = await this.jobs.run(
      {
        type: 'import-model',
        request: { ...request, checkpoint: path.resolve(request.checkpoint), tokenizer: path.resolve(request.tokenizer), outDir: path.resolve(request.outDir) },
        batchSize: defaults.training.batchSize,
        maxSeqLen: defaults.training.maxSeqLen,
        r: defaults.lora.r,
      },
      'model-imported',
    );
    return result;
  }

  /** The prompt through the base model and, with adapterId, through the adapter on the same model and seed. */
  async generate(input: GenerateRequestInput): Promise<GenerateResult> {
    this.assertOpen();
    const request = validate(GenerateRequestSchema, input, 'playground.generate input');
    const { adapter, modelDir } = resolveAdapterAndModel(this.store, this.paths, request);
    const { result } = await this.pool.run(
      {
        type: 'generate',
        modelDir,
        adapterDir: adapter?.path ?? null,
        prompt: request.prompt,
        useChatTemplate: request.useChatTemplate,
        sampling: request.sampling,
        backend: request.backend,
      },
      'generated',
      { timeoutMs: GENERATE_TIMEOUT_MS },
    );
    return result;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([this.jobs.close(), this.ownsPool ? this.pool.close() : undefined]);
  }

  private assertOpen(): void {
    if (this.closed) throw new WorkbenchError('conflict', 'The workbench is shutting down; try again after it restarts.');
  }
}
