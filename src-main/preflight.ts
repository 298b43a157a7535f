// Pre-flight of runs.start (issue 15, finding 8): the run's model and dataset are resolved and checked in a
// pooled engine worker (src-worker/preflight.ts) before RunManager creates the run's row and folder, so a
// mistake found in seconds is a field error on the New run form, not a failed run in the list (and a
// folder such as /etc offered as a base model afterwards).
import path from 'node:path';
import { RunConfigSchema, SAMPLE_DATASET, type RunConfigInput } from '../src-shared/config.ts';
import { validate, WorkbenchError } from '../src-shared/errors.ts';
import { resolveModelDir } from './model-resolution.ts';
import type { WorkbenchPaths } from './paths.ts';
import type { Store } from './store/index.ts';
import type { WorkerPool } from './worker-pool.ts';

/** Reading a dataset of up to 500 MB and a model's headers on a slow disk. */
const PREFLIGHT_TIMEOUT_MS = 5 * 60_000;

export class RunPreflight {
  constructor(private readonly options: { store: Store; paths: WorkbenchPaths; pool: WorkerPool }) {}

  /** Resolves when the run can start; otherwise throws the first problem, with every problem in details. */
  async check(input: RunConfigInput): Promise<void> {
    const config = validate(RunConfigSchema, input, 'run configuration');
    const { paths, store, pool } = this.options;
    const modelDir = resolveModelDir(paths, config.model);
    const registered = store.datasets.get(config.dataset);
    const datasetPath = config.dataset === SAMPLE_DATASET ? paths.sampleDatasetPath : registered ? registered.normalizedPath : path.resolve(config.dataset);
    const { problems } = await pool.run({ type: 'check-run', config, modelDir, datasetPath }, 'run-checked', { timeoutMs: PREFLIGHT_TIMEOUT_MS });
    if (problems.length === 0) return;
    const first = problems[0]!;
    const more =
      problems.length > 1
        ? ` Also: ${problems
            .slice(1)
            .map((p) => p.message)
            .join(' ')}`
        : '';
    throw new WorkbenchError(first.code, `${first.message}${more}`, { field: first.field, problems });
  }
}
