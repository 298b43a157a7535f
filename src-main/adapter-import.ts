// adapters.import: a PEFT LoRA folder trained elsewhere joins the library. The worker checks it against
// the base model and rewrites it as a workbench adapter folder (src-worker/adapters/import-peft.ts);
// here it is recorded as SG-LoRA records its generations: a completed run (the adapters table, and
// what reads it, expects every adapter to belong to one) whose folder holds the adapter.
import { existsSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { type AdapterImportRequest, type AdapterImportResult, AdapterImportRequestSchema } from '../src-shared/api.ts';
import { DEFAULT_MODEL, RunConfigSchema } from '../src-shared/config.ts';
import { validate, WorkbenchError } from '../src-shared/errors.ts';
import { resolveModelDir } from './model-resolution.ts';
import { ensureDataDirs } from './paths.ts';
import { newId } from './jobs.ts';
import { OneShotService } from './one-shot-service.ts';

/** The adapters table's method for imported adapters (the folder itself holds a plain LoRA). */
export const IMPORTED_METHOD = 'peft-lora';

export class AdapterImporter extends OneShotService {
  async import(input: AdapterImportRequest): Promise<AdapterImportResult> {
    this.assertOpen('The workbench is shutting down; try the import again after it restarts.');
    const request = validate(AdapterImportRequestSchema, input, 'adapter import request');
    const sourceDir = path.resolve(request.dir);
    if (!existsSync(sourceDir) || !statSync(sourceDir).isDirectory()) {
      throw new WorkbenchError(
        'not_found',
        `Adapter folder ${sourceDir} does not exist. Pick the folder PEFT's save_pretrained wrote (adapter_config.json + adapter_model.safetensors).`,
        { field: 'dir', path: sourceDir },
      );
    }
    const baseModel = request.baseModel === DEFAULT_MODEL ? DEFAULT_MODEL : path.resolve(request.baseModel);
    const modelDir = resolveModelDir(this.paths, baseModel);
    const name = request.name?.trim() || path.basename(sourceDir);
    const backend = request.backend ?? 'auto';
    ensureDataDirs(this.paths);
    const runId = newId('imp-');
    const started = new Date().toISOString();
    const message = await this.jobs
      .run(
        { type: 'import-adapter', sourceDir, modelDir, baseModel, name, runId, outDir: path.join(this.paths.runDir(runId), 'adapter'), backend },
        'adapter-imported',
      )
      .catch((error: unknown) => {
        rmSync(this.paths.runDir(runId), { recursive: true, force: true });
        throw error;
      });
    const config = RunConfigSchema.parse({ name, model: baseModel, dataset: sourceDir, method: 'lora', lora: message.settings, backend });
    const now = new Date().toISOString();
    const adapterId = newId('ad-');
    this.store.db.transaction(() => {
      this.store.runs.create({ id: runId, name, config, createdAt: now, ownerPid: null });
      this.store.runs.update(runId, { status: 'completed', startedAt: started, finishedAt: now, error: null });
      this.store.adapters.create({
        id: adapterId,
        runId,
        name,
        method: IMPORTED_METHOD,
        baseModel,
        path: message.adapterDir,
        step: 0,
        trainableParams: message.trainableParams,
        createdAt: now,
        description: null,
      });
    })();
    return { adapter: this.store.adapters.require(adapterId), settings: message.settings, warnings: message.warnings };
  }
}
