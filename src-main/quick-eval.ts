// The evaluation that runs out of the box (issue 15, finding 5): perplexity on the rows a run held out of
// its own dataset (for the base model alone: the embedded sample dataset's default split), files the
// project itself makes, so a new user gets a figure without downloading anything. With an adapter, the
// base model is scored on the same rows first, so the two figures compare.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { defaultRunConfig, SAMPLE_DATASET, type RunConfig } from '../src-shared/config.ts';
import { validate } from '../src-shared/errors.ts';
import type { Evaluation } from '../src-shared/eval.ts';
import { QuickEvalRequestSchema, type QuickEvalRequest } from '../src-shared/api.ts';
import type { EvalManager } from './evals.ts';
import type { WorkbenchPaths } from './paths.ts';
import type { Store } from './store/index.ts';
import type { WorkerPool } from './worker-pool.ts';

const HELDOUT_TIMEOUT_MS = 5 * 60_000;

export class QuickEvaluation {
  constructor(private readonly options: { store: Store; paths: WorkbenchPaths; pool: WorkerPool; evals: Pick<EvalManager, 'start'> }) {}

  async start(input: QuickEvalRequest): Promise<Evaluation[]> {
    const request = validate(QuickEvalRequestSchema, input, 'quick evaluation');
    const { store, paths, pool, evals } = this.options;
    const adapter = request.adapterId ? store.adapters.require(request.adapterId) : null;
    const config: RunConfig = adapter ? store.runs.require(adapter.runId).config : defaultRunConfig();
    const registered = store.datasets.get(config.dataset);
    const datasetPath = config.dataset === SAMPLE_DATASET ? paths.sampleDatasetPath : registered ? registered.normalizedPath : path.resolve(config.dataset);
    const { seed, validationFraction } = config.training;
    const key = createHash('sha256')
      .update(JSON.stringify([datasetPath, seed, validationFraction]))
      .digest('hex')
      .slice(0, 16);
    const outFile = path.join(paths.dataDir, 'builtin', `heldout-${key}.jsonl`);
    await pool.run({ type: 'write-heldout', datasetPath, seed, fraction: validationFraction, outFile }, 'heldout-written', { timeoutMs: HELDOUT_TIMEOUT_MS });
    const common = { suite: 'perplexity' as const, datasets: { text: outFile }, backend: request.backend };
    const started = [await evals.start({ ...common, model: adapter ? adapter.baseModel : 'default' })];
    if (adapter) started.push(await evals.start({ ...common, adapterId: adapter.id }));
    return started;
  }
}
