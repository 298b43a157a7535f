// The `check-run` job: what can be found wrong with a run before its row and folder exist (issue 15,
// finding 8). An empty or foreign model folder, target modules the model does not have, a dataset with
// no usable row used to create a failed run each; now the New run form marks the field and nothing is
// created. Cheap on purpose: the model's headers only (inspectModel), never its weights.
import { defaultRunConfig } from '../src-shared/config.ts';
import { WorkbenchError } from '../src-shared/errors.ts';
import type { CheckRunJob, RunProblem } from '../src-shared/worker-protocol.ts';
import { readInstructionDataset } from './data/dataset.ts';
import { methodSettingsOf } from '../src-shared/methods.ts';
import { inspectModel } from './inspect-model.ts';

function problem(field: string, error: unknown): RunProblem {
  const e = WorkbenchError.from(error);
  return { field, code: e.code === 'internal' ? 'invalid_input' : e.code, message: e.message };
}

/** Target module names (not /regex/ patterns) whose last part is not a module of this model family. */
function missingTargets(config: CheckRunJob['config'], available: string[]): string[] {
  // One settings section ({targetModules, ...}) or several keyed by section ({lora: {targetModules}, loraPlus: {...}}).
  const settings = methodSettingsOf(config) as Record<string, unknown> | null;
  const sections = [settings, ...Object.values(settings ?? {})] as ({ targetModules?: unknown } | null)[];
  const found = sections.find((s) => s !== null && typeof s === 'object' && Array.isArray(s.targetModules));
  const patterns = (found?.targetModules as string[] | undefined) ?? [];
  return patterns.filter((p) => !/^\/.+\/$/.test(p) && !available.includes(p.split('.').pop()!));
}

export async function checkRun(job: CheckRunJob): Promise<RunProblem[]> {
  const problems: RunProblem[] = [];
  const defaults = defaultRunConfig();
  try {
    const inspection = await inspectModel({
      modelDir: job.modelDir,
      batchSize: job.config.training.batchSize,
      maxSeqLen: job.config.training.maxSeqLen,
      // The rank only sizes the memory estimate, which the pre-flight does not use.
      r: defaults.lora.r,
    });
    if (!inspection.supported)
      problems.push({ field: 'model', code: 'model_invalid', message: inspection.warnings[0] ?? `model_type "${inspection.modelType}" cannot be trained.` });
    const missing = missingTargets(job.config, inspection.targetModules);
    if (missing.length > 0 && inspection.supported) {
      problems.push({
        field: 'lora.targetModules',
        code: 'invalid_input',
        message: `${missing.map((m) => `"${m}"`).join(', ')} ${missing.length === 1 ? 'is not a module' : 'are not modules'} of this ${inspection.modelType} model; its modules are ${inspection.targetModules.join(', ')}.`,
      });
    }
  } catch (error) {
    problems.push(problem('model', error));
  }
  try {
    await readInstructionDataset(job.datasetPath);
  } catch (error) {
    problems.push(problem('dataset', error));
  }
  return problems;
}
