// Model ids and library adapters as the main process resolves them before a worker job: `default`
// becomes the embedded model's folder, any other model a path that must exist, and an adapter id
// becomes its folder and, unless the caller names another model, the model it was trained on.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_MODEL } from '../src-shared/config.ts';
import { WorkbenchError } from '../src-shared/errors.ts';
import type { Adapter } from '../src-shared/runs.ts';
import type { WorkbenchPaths } from './paths.ts';
import type { Store } from './store/index.ts';

/** The folder behind a model id; not_found (field `model`) when it is not there. */
export function resolveModelDir(paths: Pick<WorkbenchPaths, 'defaultModelDir'>, model: string): string {
  const modelDir = model === DEFAULT_MODEL ? paths.defaultModelDir : path.resolve(model);
  if (!existsSync(modelDir) || !statSync(modelDir).isDirectory()) {
    throw new WorkbenchError(
      'not_found',
      model === DEFAULT_MODEL
        ? `The embedded default model is missing (${modelDir}). Run \`npm run make:default-model\`, or choose a model folder.`
        : `Model folder ${modelDir} does not exist. Choose a Hugging Face model folder (config.json, *.safetensors, tokenizer.json).`,
      { field: 'model', path: modelDir },
    );
  }
  return modelDir;
}

export interface ResolvedModel {
  adapter: Adapter | null;
  /** The model id as chosen: `default` or the path as given. */
  model: string;
  modelDir: string;
}

/** An optional library adapter and the model to run it on (the adapter's own base model unless `model` is given). */
export function resolveAdapterAndModel(
  store: Store,
  paths: Pick<WorkbenchPaths, 'defaultModelDir'>,
  request: { adapterId?: string | undefined; model?: string | undefined },
): ResolvedModel {
  const adapter = request.adapterId ? store.adapters.require(request.adapterId) : null;
  if (adapter && !existsSync(adapter.path)) {
    throw new WorkbenchError('not_found', `The files of adapter ${adapter.id} are missing from ${adapter.path}.`, { path: adapter.path });
  }
  const model = request.model ?? (adapter ? store.runs.require(adapter.runId).config.model : DEFAULT_MODEL);
  return { adapter, model, modelDir: resolveModelDir(paths, model) };
}
