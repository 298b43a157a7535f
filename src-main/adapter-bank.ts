// AdapterBank: task descriptions on adapters, and SG-LoRA generation (METHODS.md section 5) from the
// described adapters of one base model, in a one-shot worker.
//
// A generated adapter was never trained, but the adapters table (and what reads it: export, evals,
// the Playground) expects every adapter to belong to a run. Each generation therefore records a
// completed run: its config is the top expert's with method 'lora' and the generated rank (what the
// adapter folder's sidecar holds too), its folder the run folder, and the adapter row says
// method 'sg-lora'. The run row appears in the runs list as the generation's record.
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { commonSettingsOf, DEFAULT_MODEL, defaultRunConfig, RunConfigSchema } from '../src-shared/config.ts';
import { validate, WorkbenchError } from '../src-shared/errors.ts';
import type { Adapter } from '../src-shared/runs.ts';
import {
  AdapterDescribeRequestSchema,
  AdapterGenerateRequestSchema,
  type AdapterGenerateReport,
  type AdapterGenerateRequestInput,
} from '../src-shared/sg-lora.ts';
import { ensureDataDirs } from './paths.ts';
import { newId } from './jobs.ts';
import { OneShotService } from './one-shot-service.ts';

/** The adapters table's method for generated adapters (the folder itself holds a plain LoRA). */
export const SG_LORA_METHOD = 'sg-lora';
/** Sub-folder of the generation's run folder holding the adapter, as training's adapter/. */
const ADAPTER_DIR = 'adapter';

export class AdapterBank extends OneShotService {
  async describe(input: { adapterId: string; description: string }): Promise<Adapter> {
    const request = validate(AdapterDescribeRequestSchema, input, 'adapter description');
    return this.store.adapters.describe(request.adapterId, request.description);
  }

  /** The experts a request names, or every described adapter; all must share one base model. */
  private experts(expertIds: string[] | undefined): Adapter[] {
    const experts = expertIds ? expertIds.map((id) => this.store.adapters.require(id)) : this.store.adapters.list().filter((a) => a.description !== null);
    if (experts.length === 0) {
      throw new WorkbenchError(
        'invalid_input',
        'No adapter has a task description yet. Describe the adapters that should form the bank (Adapters page, or adapters.describe), then generate.',
        { field: 'expertIds' },
      );
    }
    const undescribed = experts.filter((a) => a.description === null);
    if (undescribed.length) {
      throw new WorkbenchError(
        'invalid_input',
        `Adapters ${undescribed.map((a) => `"${a.name}"`).join(', ')} have no task description; describe them or leave them out of expertIds.`,
        { field: 'expertIds', adapters: undescribed.map((a) => a.id) },
      );
    }
    const bases = [...new Set(experts.map((a) => a.baseModel))];
    if (bases.length > 1) {
      throw new WorkbenchError(
        'invalid_input',
        `The described adapters belong to ${bases.length} base models (${bases.join(', ')}); a bank must share one. Pass expertIds with the adapters of one base model.`,
        { field: 'expertIds', baseModels: bases },
      );
    }
    return experts;
  }

  async generate(input: AdapterGenerateRequestInput): Promise<AdapterGenerateReport> {
    this.assertOpen('The adapter bank is shutting down; no new work can start.');
    const request = validate(AdapterGenerateRequestSchema, input, 'generation request');
    const started = Date.now();
    const experts = this.experts(request.expertIds);
    const missing = experts.filter((a) => !existsSync(a.path));
    if (missing.length) {
      throw new WorkbenchError(
        'not_found',
        `The files of adapters ${missing.map((a) => `"${a.name}" (${a.path})`).join(', ')} are missing; leave them out of expertIds.`,
        { adapters: missing.map((a) => a.id) },
      );
    }
    const baseModel = experts[0]!.baseModel;
    const modelDir = baseModel === DEFAULT_MODEL ? this.paths.defaultModelDir : path.resolve(baseModel);
    ensureDataDirs(this.paths);
    const runId = newId('gen-');
    const outDir = path.join(this.paths.runDir(runId), ADAPTER_DIR);
    let message;
    try {
      message = await this.jobs.run(
        {
          type: 'generate-adapter',
          modelDir,
          runId,
          outDir,
          request,
          experts: experts.map((a) => ({ adapterId: a.id, name: a.name, dir: a.path, description: a.description! })),
        },
        'adapter-generated',
      );
    } catch (error) {
      rmSync(this.paths.runDir(runId), { recursive: true, force: true });
      throw error;
    }
    const top = experts[message.experts.reduce((best, e, i, all) => (e.weight > all[best]!.weight ? i : best), 0)]!;
    const topConfig = this.store.runs.require(top.runId).config;
    const config = RunConfigSchema.parse({
      ...commonSettingsOf(topConfig),
      name: request.name,
      method: 'lora',
      lora: {
        r: request.r,
        alpha: request.r,
        dropout: 0,
        targetModules: 'lora' in topConfig ? topConfig.lora.targetModules : defaultRunConfig().lora.targetModules,
        useRslora: false,
      },
      backend: request.backend,
    });
    const now = new Date().toISOString();
    const adapterId = newId('ad-');
    this.store.db.transaction(() => {
      this.store.runs.create({ id: runId, name: request.name, config, createdAt: now, ownerPid: null });
      this.store.runs.update(runId, { status: 'completed', startedAt: new Date(started).toISOString(), finishedAt: now, error: null });
      this.store.adapters.create({
        id: adapterId,
        runId,
        name: request.name,
        method: SG_LORA_METHOD,
        baseModel,
        path: message.adapterDir,
        step: 0,
        trainableParams: message.trainableParams,
        createdAt: now,
        description: request.description,
      });
    })();
    const byId = new Map(experts.map((a) => [a.id, a]));
    return {
      adapterId,
      path: message.adapterDir,
      generator: request.generator,
      experts: message.experts.map((e) => ({ ...e, name: byId.get(e.adapterId)!.name, description: byId.get(e.adapterId)!.description! })),
      truncationError: message.truncationError,
      ...(message.candidates ? { candidates: message.candidates } : {}),
      durationMs: Date.now() - started,
    };
  }
}
