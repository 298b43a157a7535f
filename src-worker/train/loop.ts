// The training loop of one run (docs/ARCHITECTURE.md, "Data flow of one run"): load model, tokenizer and
// data; attach the method's adapter; AdamW over the adapter's parameter groups with warmup + cosine
// schedule and global-norm clipping; progress every step, metrics batched, validation loss,
// atomic checkpoints, stop and resume; at the end the adapter in PEFT layout plus its probe.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { workerData } from 'node:worker_threads';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { BackendName } from '../../src-shared/config.ts';
import type { MetricPoint } from '../../src-shared/runs.ts';
import type { TrainJob, WorkerToMain } from '../../src-shared/worker-protocol.ts';
import { initBackend } from '../backend.ts';
import { Batcher, collate } from '../data/batcher.ts';
import { createTaskMixtureBatcher } from '../data/task-mixture.ts';
import { readInstructionDataset, type InstructionExample } from '../data/dataset.ts';
import { splitTrainValidation } from '../data/split.ts';
import { targetCount, tokenizeExample, type TokenizedExample } from '../data/tokenize.ts';
import { writeAdapter } from '../export/write-adapter.ts';
import { type AdapterSidecar, baseModelFingerprint, FLATTENED_ADAPTER_DIR } from '../formats/adapter-folder.ts';
import { makeProbe, probeLogits, writeProbe, type Probe } from '../export/probe.ts';
import { loadCausalLM } from '../formats/model-folder.ts';
import { loadTokenizer } from '../formats/tokenizer.ts';
import { methodOf } from '../methods/index.ts';
import { writeFlattenedAdapter } from '../export/flatten.ts';
import type { AdapterModel } from '../methods/types.ts';
import type { CausalLM } from '../models/types.ts';
import { methodSettingsOf } from '../../src-shared/methods.ts';
import { tf } from '../tf.ts';
import { AdamW } from './adamw.ts';
import { trainStep } from './accumulate.ts';
import { causalLossSum } from './causal-loss.ts';
import { type MemoryPlan, workerBytes } from './memory-plan.ts';
import { availableCores, chooseWorkers, ReplicaGroup, replicaSpawner } from './data-parallel.ts';
import { planBeforeLoad, planRun } from './run-plan.ts';
import { classifyStepError, throwOnXnnWarning } from './out-of-memory.ts';
import { loadCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.ts';
import { learningRateAt } from './schedule.ts';

export interface TrainIO {
  emit(message: WorkerToMain): void;
  /** Polled between steps; true makes the loop save a checkpoint and end with `stopped`. */
  shouldStop(): boolean;
}

/** Metrics go out at most this often (and always at the end): one message per step would flood the main process. */
export const METRICS_INTERVAL_MS = 500;
export const FINAL_ADAPTER_DIR = 'adapter';

/** Lets queued messages (a `stop`) reach the worker between steps: awaiting tensor data alone does not. */
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export function datasetFingerprint(rows: InstructionExample[]): string {
  const hash = createHash('sha256');
  for (const row of rows) hash.update(JSON.stringify([row.prompt, row.completion]));
  return hash.digest('hex');
}

/**
 * The tokens a method conditioned on the input (SeLoRA) reads as the example's prompt: the prompt, or
 * the first tokens when the example has none (the same choice as the probe's).
 */
export function promptOf(e: TokenizedExample): number[] {
  const bos = e.bosLength ?? 0;
  return e.promptLength > bos ? e.inputIds.slice(0, e.promptLength) : e.inputIds.slice(0, bos + 8);
}

/** Mean loss over the first `batches` validation batches, token-weighted, without dropout. */
async function validationLoss(
  model: CausalLM,
  adapter: AdapterModel,
  examples: TokenizedExample[],
  indices: number[],
  batchSize: number,
  batches: number,
  padTokenId: number,
  maxSeqLen: number,
): Promise<number> {
  let sum = 0;
  let count = 0;
  for (let b = 0; b < batches && b * batchSize < indices.length; b++) {
    const rows = indices.slice(b * batchSize, (b + 1) * batchSize).map((i) => examples[i]!);
    const batch = collate(rows, padTokenId, maxSeqLen);
    adapter.prepare?.(model, rows.map(promptOf));
    const result = causalLossSum(model, batch, { adapters: adapter, training: false });
    sum += (await result.sum.data())[0]!;
    result.sum.dispose();
    count += result.count;
  }
  return count > 0 ? sum / count : NaN;
}

export { trainStep, type StepResult } from './accumulate.ts';

export async function runTraining(job: TrainJob, io: TrainIO): Promise<void> {
  const disposables: { dispose(): void }[] = [];
  try {
    await train(job, io, disposables);
  } catch (error) {
    io.emit({ type: 'failed', error: WorkbenchError.from(classifyStepError(error, null)).toJSON() });
  } finally {
    for (const d of disposables.reverse()) d.dispose();
  }
}

async function train(job: TrainJob, io: TrainIO, disposables: { dispose(): void }[]): Promise<void> {
  const { config } = job;
  const t = config.training;
  const log = (level: 'info' | 'warn' | 'error', message: string) => io.emit({ type: 'log', level, message });

  const backend = await initBackend(config.backend, (m) => log('info', m));
  const planContext = await planBeforeLoad(job.modelDir, backend.name, t);
  const model = await loadCausalLM(job.modelDir);
  disposables.push(model);
  const tokenizer = await loadTokenizer(job.modelDir);
  const rows = await readInstructionDataset(job.datasetPath);

  const maxSeqLen = Math.min(t.maxSeqLen, model.config.maxPositions);
  if (maxSeqLen < t.maxSeqLen) log('warn', `maxSeqLen ${t.maxSeqLen} exceeds the model's ${model.config.maxPositions} positions; using ${maxSeqLen}.`);
  const examples = rows.map((row) => tokenizeExample(tokenizer, row, maxSeqLen));
  const tooBig = examples.findIndex((e) => e.inputIds.some((id) => id >= model.config.vocabSize));
  if (tooBig >= 0) {
    throw new WorkbenchError(
      'model_invalid',
      `The tokenizer produces ids beyond the model's vocabulary of ${model.config.vocabSize} (dataset line ${rows[tooBig]!.line}): tokenizer.json does not belong to this model.`,
      { modelDir: job.modelDir },
    );
  }
  const truncated = examples.filter((e) => e.truncated).length;
  if (truncated > 0) log('info', `${truncated} of ${examples.length} examples were longer than ${maxSeqLen} tokens and were cut (prompt first).`);
  const empty = examples.filter((e) => targetCount(e) === 0).length;
  if (empty > 0) log('warn', `${empty} examples have no completion token to learn from after truncation; raise maxSeqLen.`);

  const split = splitTrainValidation(rows.length, t.validationFraction, t.seed);
  const { method, settings } = methodOf(config);
  // A multi-task method trains one adapter per task on batches drawn by the task mixture.
  const batching = method.capabilities.batcher(settings);
  const mixture = batching.kind === 'task-mixture' ? createTaskMixtureBatcher(rows, split.train, batching.tasks, batching.ratios, t.batchSize, t.seed) : null;
  const batcher = mixture?.batcher ?? new Batcher(split.train, t.batchSize, t.seed);
  log('info', `Dataset: ${rows.length} rows, ${split.train.length} for training, ${split.validation.length} for validation.`);

  const adapter = method.create(model, settings, t.seed);
  disposables.push(adapter);
  adapter.fit?.(
    model,
    split.train.map((i) => promptOf(examples[i]!)),
    tokenizer,
  );
  if (mixture) adapter.setTaskMixture?.(mixture.probabilities);
  const trainable = adapter.trainable();
  const groups = [...new Set(trainable.map((p) => p.group))];
  // Per-group peak rates come from the method (LoRA+: lora_B at lambda x); the schedule scales all alike.
  const lrScale = new Map(groups.map((group) => [group, adapter.learningRateScale?.(group, t.learningRate) ?? 1]));
  const optimizer = new AdamW(
    groups.map((group) => ({
      name: group,
      lr: t.learningRate * lrScale.get(group)!,
      weightDecay: t.weightDecay,
      params: trainable.filter((p) => p.group === group).map((p) => ({ name: p.name, variable: p.variable })),
    })),
  );
  disposables.push(optimizer);
  const nameOf = new Map(trainable.map((p) => [p.variable.name, p.name]));
  const variables = trainable.map((p) => p.variable);

  const probeSource = (split.validation.length > 0 ? split.validation : split.train).map((i) => promptOf(examples[i]!));
  let probe: Probe = makeProbe(probeSource, tokenizer.padTokenId);
  const fingerprint = datasetFingerprint(rows);
  const baseFingerprint = await baseModelFingerprint(job.modelDir);

  let startStep = 1;
  let lastCheckpointStep = -1;
  if (job.resumeFrom) {
    const checkpoint = await loadCheckpoint(job.resumeFrom);
    const { state } = checkpoint;
    if (state.config.method !== config.method || JSON.stringify(methodSettingsOf(state.config)) !== JSON.stringify(methodSettingsOf(config))) {
      throw new WorkbenchError(
        'conflict',
        `Checkpoint ${job.resumeFrom} was trained with other ${config.method} settings; start a new run instead of resuming.`,
        { checkpoint: job.resumeFrom },
      );
    }
    if (state.dataset.fingerprint !== fingerprint)
      log('warn', `The dataset changed since step ${state.step} was saved; the resumed run will draw different batches.`);
    adapter.loadStateDict(checkpoint.adapter);
    adapter.restoreRandomState?.(state.random);
    optimizer.loadStateDict(checkpoint.optimizer, state.optimizerStep);
    try {
      batcher.setState(state.batcher);
    } catch {
      // Only a changed dataset gets here (warned about above): its old position may lie past its end.
      batcher.setState({ epoch: state.batcher.epoch, position: 0 });
    }
    probe = { inputIds: state.probeInputIds };
    startStep = state.step + 1;
    lastCheckpointStep = state.step;
    log('info', `Resuming from ${job.resumeFrom} at step ${startStep}.`);
  }

  const trainableParams = adapter.trainableParamCount();
  const baseParams = model.parameterCount();
  // Full fine-tuning and BitFit train base parameters, which add nothing to the model's size.
  const totalParams = adapter.trainsBaseParameters ? baseParams : baseParams + trainableParams;
  log(
    'info',
    `Trainable parameters: ${trainableParams.toLocaleString('en-US')}, ${((100 * trainableParams) / baseParams).toPrecision(3)}% of the base model's ${baseParams.toLocaleString('en-US')}.`,
  );
  for (const note of adapter.startupNotes?.() ?? []) log('info', note);
  if (adapter.releaseFloatWeights) {
    const before = tf.memory().numBytes;
    adapter.releaseFloatWeights();
    const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(2);
    log(
      'info',
      `Tensor memory in this worker after freeing the float32 copies of the quantized weights: ${mb(tf.memory().numBytes)} MB (was ${mb(before)} MB).`,
    );
  }
  const plan: MemoryPlan = planRun(planContext, adapter, t);
  log('info', plan.summary);
  const replicas = await startReplicas(job, plan, planContext.parameterCount, adapter, backend.name, {
    fitPrompts: adapter.fit ? split.train.map((i) => promptOf(examples[i]!)) : null,
    taskMixture: mixture ? [...mixture.probabilities] : null,
    log,
  });
  if (replicas) disposables.push({ dispose: () => void replicas.dispose() });
  io.emit({ type: 'started', backend, trainableParams, totalParams });

  const sidecar = (step: number): AdapterSidecar => ({
    format: 'lora-workbench-adapter',
    version: 1,
    method: config.method,
    runId: job.runId,
    step,
    trainableParams,
    config,
    backend,
    baseModel: { path: job.modelDir, fingerprint: baseFingerprint },
    createdAt: new Date().toISOString(),
  });
  let points: MetricPoint[] = [];
  let lastFlush = Date.now();
  const flush = () => {
    if (points.length > 0) io.emit({ type: 'metrics', points });
    points = [];
    lastFlush = Date.now();
  };
  const checkpoint = async (step: number) => {
    const state: TrainerState = {
      format: 'lora-workbench-trainer-state',
      version: 1,
      runId: job.runId,
      step,
      optimizerStep: optimizer.stepCount,
      batcher: batcher.getState(),
      random: adapter.randomState?.() ?? {},
      dataset: { rows: rows.length, trainRows: split.train.length, validationRows: split.validation.length, fingerprint },
      probeInputIds: probe.inputIds,
      config,
      savedAt: new Date().toISOString(),
    };
    const dir = await saveCheckpoint(job.runDir, { adapter, optimizer, state, baseModelNameOrPath: job.modelDir, sidecar: sidecar(step) });
    lastCheckpointStep = step;
    // Points up to this step go out before the checkpoint that covers them.
    flush();
    io.emit({ type: 'checkpoint', step, dir });
  };

  const record = (step: number, name: string, value: number) => points.push({ step, name, value, time: Date.now() });
  const evaluate = async (step: number) => {
    if (split.validation.length === 0) return;
    const loss = await validationLoss(model, adapter, examples, split.validation, t.batchSize, t.evalBatches, tokenizer.padTokenId, maxSeqLen);
    if (Number.isFinite(loss)) record(step, 'val/loss', loss);
  };

  let stepTimeEma: number | null = null;
  for (let step = startStep; step <= t.maxSteps; step++) {
    await yieldToEventLoop();
    if (io.shouldStop()) {
      const done = step - 1;
      if (lastCheckpointStep !== done) await checkpoint(done);
      flush();
      io.emit({ type: 'stopped', step: done });
      return;
    }
    const began = performance.now();
    const lr = learningRateAt(step, { peak: t.learningRate, warmupSteps: t.warmupSteps, maxSteps: t.maxSteps });
    for (const group of groups) optimizer.setLearningRate(group, lr * lrScale.get(group)!);
    const rows = batcher.next().map((i) => examples[i]!);
    const batch = collate(rows, tokenizer.padTokenId, maxSeqLen);
    if (mixture) adapter.selectTask?.(mixture.batcher.lastTask);
    const task = mixture ? mixture.batcher.lastTask : null;
    const { loss, gradNorm, regularizers } = await trainStep(model, adapter, optimizer, batch, t.gradClip, nameOf, variables, step, rows.map(promptOf), {
      ...plan,
      replicas,
      task,
    })
      .then((result) => (throwOnXnnWarning(), result))
      .catch((error: unknown) => Promise.reject(classifyStepError(error, plan)))
      .finally(() => adapter.selectTask?.(null));
    const stepTimeMs = performance.now() - began;
    stepTimeEma = stepTimeEma === null ? stepTimeMs : 0.9 * stepTimeEma + 0.1 * stepTimeMs;
    const tokensPerSecond = batch.tokenCount / (stepTimeMs / 1000);

    record(step, 'train/loss', loss);
    for (const [name, value] of Object.entries(regularizers)) record(step, `loss/${name}`, value);
    for (const group of groups) record(step, `lr/${group}`, optimizer.learningRate(group));
    record(step, 'grad_norm', gradNorm);
    record(step, 'tokens_per_s', tokensPerSecond);
    record(step, 'step_time_ms', stepTimeMs);
    const memory = tf.memory() as { numBytes: number; numBytesInGPU?: number };
    record(step, 'memory_mb', (memory.numBytesInGPU ?? memory.numBytes) / 2 ** 20);
    io.emit({
      type: 'progress',
      progress: { step, maxSteps: t.maxSteps, tokensPerSecond, stepTimeMs, etaSeconds: ((t.maxSteps - step) * stepTimeEma) / 1000 },
    });

    if (step % t.evalEvery === 0 || step === t.maxSteps) await evaluate(step);
    if (step % t.checkpointEvery === 0) await checkpoint(step);
    if (Date.now() - lastFlush >= METRICS_INTERVAL_MS) flush();
  }
  // A run resumed from its final step has nothing left to train, but still owes its adapter.
  if (startStep > t.maxSteps) log('info', `The checkpoint is already at step ${t.maxSteps}; writing the final adapter.`);
  flush();

  const adapterDir = path.join(job.runDir, FINAL_ADAPTER_DIR);
  await writeFinalAdapter(adapterDir, async (dir) => {
    await writeAdapter(adapter, dir, { baseModelNameOrPath: job.modelDir, sidecar: sidecar(t.maxSteps) });
    const nativeLogits = await probeLogits(model, adapter, probe);
    await writeProbe(dir, probe, nativeLogits, backend.name);
    const flat = await adapter.flattened?.();
    if (flat) {
      const { maxAbsLogitDiff } = await writeFlattenedAdapter(model, flat, config.method, path.join(dir, FLATTENED_ADAPTER_DIR), {
        probe,
        nativeLogits,
        config,
        backend: backend.name,
        baseModelNameOrPath: job.modelDir,
        sidecar: sidecar(t.maxSteps),
      }).finally(() => flat.dispose());
      log(
        'info',
        `Flattened the ${config.method} adapter to a plain PEFT LoRA (${FLATTENED_ADAPTER_DIR}/): its probe logits differ from the native adapter's by up to ${maxAbsLogitDiff.toPrecision(3)}.`,
      );
      record(t.maxSteps, 'flatten/max_logit_diff', maxAbsLogitDiff);
      flush();
    }
  });
  io.emit({ type: 'trained', adapterDir, step: t.maxSteps, trainableParams });
}

/**
 * The run's replicas (train/data-parallel.ts), or null when it trains on this worker alone: started
 * after the plan, since each holds the plan's share of memory, and before step 1.
 */
async function startReplicas(
  job: TrainJob,
  plan: MemoryPlan,
  parameterCount: number,
  adapter: AdapterModel,
  backend: BackendName,
  context: { fitPrompts: number[][] | null; taskMixture: number[] | null; log: (level: 'info', message: string) => void },
): Promise<ReplicaGroup | null> {
  const t = job.config.training;
  const choice = chooseWorkers({
    requested: t.workers,
    backend,
    batchSize: t.batchSize,
    parameterCount,
    trainsBaseParameters: adapter.trainsBaseParameters ?? false,
    bytesPerWorker: workerBytes(plan),
    ramBytes: os.freemem(),
    cores: availableCores(),
  });
  const spawn = replicaSpawner(workerData);
  if (choice.workers <= 1 || !spawn) {
    if (choice.workers > 1) context.log('info', 'Training on this worker alone: replicas start only from a worker the app or the CLI started.');
    return null;
  }
  const began = performance.now();
  const group = await ReplicaGroup.start(
    choice.workers - 1,
    {
      modelDir: job.modelDir,
      backend,
      config: job.config,
      fitPrompts: context.fitPrompts,
      taskMixture: context.taskMixture,
      microBatchSize: plan.microBatchSize,
      recompute: plan.recompute,
      logitsChunkTokens: plan.logitsChunkTokens,
      wasmPacking: plan.wasmPacking,
    },
    spawn,
  );
  context.log(
    'info',
    `Data parallel: ${choice.workers} workers (${choice.reason}), each training ${Math.ceil(t.batchSize / choice.workers)} of the batch's ${t.batchSize} rows per step; the replicas started in ${((performance.now() - began) / 1000).toFixed(1)} s.`,
  );
  return group;
}

/** Writes the final adapter into a temporary sibling folder and swaps it in, replacing an older one. */
async function writeFinalAdapter(dir: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = `${dir}.tmp-${process.pid}`;
  await fs.promises.rm(tmp, { recursive: true, force: true });
  await fs.promises.mkdir(tmp, { recursive: true });
  try {
    await write(tmp);
  } catch (error) {
    await fs.promises.rm(tmp, { recursive: true, force: true });
    throw error;
  }
  if (fs.existsSync(dir)) {
    const old = `${dir}.old-${process.pid}`;
    await fs.promises.rm(old, { recursive: true, force: true });
    await fs.promises.rename(dir, old);
    await fs.promises.rename(tmp, dir);
    await fs.promises.rm(old, { recursive: true, force: true });
  } else {
    await fs.promises.rename(tmp, dir);
  }
}
