// The data plan of a pytorch run: every batch the run will train on, computed in a tfjs worker (the
// `write-data-plan` job) with the tfjs engine's own data code (src-worker/data: templates, tokenizer, masking, split, seeded batcher or
// task mixture) and handed to the Python engine as one JSON file. The batch order is part of the
// engine contract (../shared/design/ENGINES.md): computing it once, in the one implementation, makes
// the two engines see identical token ids, loss masks and row order by construction, including the
// batcher state each checkpoint records, so a run resumed on either engine continues the same batches.
// Reimplementing the tokenizers (BPE, SentencePiece, chat templates) in Python could only approximate that.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { TrainJob, WriteDataPlanJob } from '../../src-shared/worker-protocol.ts';
import { Batcher } from './batcher.ts';
import { readInstructionDataset } from './dataset.ts';
import { splitTrainValidation } from './split.ts';
import { createTaskMixtureBatcher } from './task-mixture.ts';
import { counterfactualIds } from '../methods/bias-aware.ts';
import { tokenizeExample } from './tokenize.ts';
import { baseModelFingerprint } from '../formats/adapter-folder.ts';
import { makeProbe } from '../export/probe.ts';
import { loadTokenizer } from '../formats/tokenizer.ts';
import { datasetFingerprint, promptOf } from '../train/loop.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';

const BatcherStateSchema = z.object({ epoch: z.number().int().min(0), position: z.number().int().min(0) });

export const DataPlanSchema = z.object({
  format: z.literal('lora-workbench-data-plan'),
  version: z.literal(1),
  padTokenId: z.number().int().min(0),
  /** training.maxSeqLen capped at the model's positions, as the tfjs engine caps it. */
  maxSeqLen: z.number().int().min(1),
  examples: z.array(
    z.object({
      inputIds: z.array(z.number().int().min(0)),
      /** 1 on completion (and EOS) tokens: the loss targets. */
      lossMask: z.array(z.number().int().min(0).max(1)),
      promptLength: z.number().int().min(0),
      bosLength: z.number().int().min(0),
      /** The tokens SeLoRA and bias-aware LoRA read as the prompt (src-worker/train/loop.ts promptOf). */
      prompt: z.array(z.number().int().min(0)),
      /** Bias-aware runs with the counterfactual reading: the prompt with its demographic terms swapped, null when it has none. */
      counterfactual: z.array(z.number().int().min(0)).nullable().optional(),
    }),
  ),
  train: z.array(z.number().int().min(0)),
  validation: z.array(z.number().int().min(0)),
  /** steps[s - 1]: the rows of step s, the batcher's state after drawing them, and (multi-task runs) their task. */
  steps: z.array(z.object({ rows: z.array(z.number().int().min(0)), batcher: BatcherStateSchema, task: z.number().int().min(0).nullable() })),
  /** Written into trainer_state.json: a checkpoint of either engine names the dataset it drew from. */
  dataset: z.object({ rows: z.number().int(), trainRows: z.number().int(), validationRows: z.number().int(), fingerprint: z.string() }),
  probeInputIds: z.array(z.array(z.number().int().min(0))),
  /** Prompt tuning with init "text": promptTuning.initText's tokens, by the tfjs engine's tokenizer (as its fit hook reads them). */
  promptTuningInitIds: z.array(z.number().int().min(0)).optional(),
  /** Multi-task bias-aware runs: each task's probability in the mixture; empty otherwise. */
  taskProbabilities: z.array(z.number()),
  /** The sidecar's baseModel.fingerprint, computed as the tfjs engine computes it (src-worker/export/peft.ts). */
  baseModelFingerprint: z.string().nullable(),
});
export type DataPlan = z.infer<typeof DataPlanSchema>;

/** The model's positions from config.json (GPT-2's n_positions / n_ctx, Llama's max_position_embeddings); T5's relative positions have no limit. */
function maxPositionsOf(modelDir: string): number {
  const config = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const value = config.n_positions ?? config.n_ctx ?? config.max_position_embeddings;
  return typeof value === 'number' ? value : Number.POSITIVE_INFINITY;
}

export async function buildDataPlan(job: Pick<TrainJob, 'config' | 'modelDir' | 'datasetPath'>): Promise<DataPlan> {
  const t = job.config.training;
  const tokenizer = await loadTokenizer(job.modelDir);
  const rows = await readInstructionDataset(job.datasetPath);
  const maxSeqLen = Math.min(t.maxSeqLen, maxPositionsOf(job.modelDir));
  const examples = rows.map((row) => tokenizeExample(tokenizer, row, maxSeqLen));
  const split = splitTrainValidation(rows.length, t.validationFraction, t.seed);
  const biasAware = job.config.method === 'bias-aware' ? job.config.biasAware : null;
  const tasks = biasAware?.tasks ?? [];
  const mixture = biasAware && tasks.length >= 2 ? createTaskMixtureBatcher(rows, split.train, tasks, biasAware.taskMixture, t.batchSize, t.seed) : null;
  const batcher = mixture?.batcher ?? new Batcher(split.train, t.batchSize, t.seed);
  const steps: DataPlan['steps'] = [];
  for (let step = 1; step <= t.maxSteps; step++) {
    const drawn = batcher.next();
    steps.push({ rows: drawn, batcher: batcher.getState(), task: mixture ? mixture.batcher.lastTask : null });
  }
  // As BiasAwareModel.fit: the bias seed is the run's, the cut the model's positions.
  const positions = maxPositionsOf(job.modelDir);
  const counterfactualOf = biasAware?.reading === 'counterfactual' ? (prompt: number[]) => counterfactualIds(tokenizer, prompt, t.seed, positions) : null;
  const probeSource = (split.validation.length > 0 ? split.validation : split.train).map((i) => promptOf(examples[i]!));
  if (examples.every((e) => e.inputIds.length === 0)) throw new WorkbenchError('dataset_invalid', `${job.datasetPath} has no tokens to train on.`);
  return {
    format: 'lora-workbench-data-plan',
    version: 1,
    padTokenId: tokenizer.padTokenId,
    maxSeqLen,
    examples: examples.map((e) => ({
      inputIds: e.inputIds,
      lossMask: e.lossMask,
      promptLength: e.promptLength,
      bosLength: e.bosLength ?? 0,
      prompt: promptOf(e),
      ...(counterfactualOf ? { counterfactual: counterfactualOf(promptOf(e)) } : {}),
    })),
    train: split.train,
    validation: split.validation,
    steps,
    dataset: { rows: rows.length, trainRows: split.train.length, validationRows: split.validation.length, fingerprint: datasetFingerprint(rows) },
    probeInputIds: makeProbe(probeSource, tokenizer.padTokenId).inputIds,
    ...(job.config.method === 'prompt-tuning' && job.config.promptTuning.init === 'text'
      ? { promptTuningInitIds: tokenizer.encode(job.config.promptTuning.initText) }
      : {}),
    taskProbabilities: mixture?.probabilities ?? [],
    baseModelFingerprint: await baseModelFingerprint(job.modelDir),
  };
}

export async function writeDataPlan(plan: DataPlan, file: string): Promise<void> {
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  await fs.promises.writeFile(file, JSON.stringify(plan));
}

/** The `write-data-plan` job: the plan written where the pytorch engine (or a job folder) reads it; answers its step count. */
export async function writeDataPlanJob(job: WriteDataPlanJob): Promise<number> {
  const plan = await buildDataPlan(job);
  await writeDataPlan(plan, job.outFile);
  return plan.steps.length;
}
