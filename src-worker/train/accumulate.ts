// One optimizer step over a batch split into micro-batches (gradient accumulation): the batch size
// stays the optimizer's batch, while only one micro-batch's activations are alive at a time.
//
// Every micro-batch's task loss is its sum of per-token losses divided by the target-token count of
// the WHOLE batch, so the sum of the micro-batch losses, and of their gradients, is exactly the
// token-averaged loss of the whole batch (Hugging Face's loss with ignore_index, as train/loss.ts).
// Regularizers are computed per micro-batch and weighted by its share of the rows: exact for terms
// that are means over rows, the usual approximation (as in HF Trainer's accumulation) otherwise.
// With replicas (data parallel), each worker sums its own rows' micro-batches the same way and the
// lead adds the shares: the same step, but for the summation order and the dropout masks.
import type * as tfc from '@tensorflow/tfjs-core';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { Batch } from '../data/batcher.ts';
import type { AdapterModel } from '../methods/types.ts';
import type { CausalLM } from '../models/types.ts';
import { tf } from '../tf.ts';
import { AdamW, clipByGlobalNorm } from './adamw.ts';
import { causalLossTerm, shiftedTargets, targetTokenCount } from './causal-loss.ts';

export interface StepResult {
  /** The task loss (cross-entropy), comparable across methods; the optimized loss adds the regularizers. */
  loss: number;
  gradNorm: number;
  /** Each regularizer's unweighted value, by name (logged as loss/<name>), averaged over the micro-batches by rows. */
  regularizers: Record<string, number>;
}

export interface StepOptions {
  /** Rows per forward/backward pass; the batch's gradients are summed over ceil(B / microBatchSize) passes. Default: the whole batch. */
  microBatchSize?: number | null;
  /** Tokens per chunk of the fused LM head + cross-entropy (kernels/head-cross-entropy.ts). */
  logitsChunkTokens?: number;
  /** Recompute each block's activations in the backward pass (kernels/recompute.ts) instead of keeping them. */
  recompute?: boolean;
  /** Other workers that each train a share of the batch's rows at the same time (data parallel, train/data-parallel.ts). */
  replicas?: GradientReplicas | null;
  /** A multi-task method's task for this step (AdapterModel.selectTask), for the replicas to select too. */
  task?: number | null;
}

/** What trainStep needs of the replicas (train/data-parallel.ts ReplicaGroup). */
export interface GradientReplicas {
  readonly size: number;
  /** Each replica's share of the batch, in the order of `rows`, computed from the lead's current values and random state. */
  compute(request: {
    batch: Batch;
    rows: [number, number][];
    prompts?: number[][];
    values: Map<string, Float32Array>;
    random: Record<string, number>;
    task: number | null;
  }): Promise<GradientShare[]>;
}

/** Rows of the batch, [r0, r1) per micro-batch. */
export function microBatchRanges(batchSize: number, microBatchSize: number | null | undefined): [number, number][] {
  const m = Math.max(1, Math.min(batchSize, microBatchSize ?? batchSize));
  const out: [number, number][] = [];
  for (let r0 = 0; r0 < batchSize; r0 += m) out.push([r0, Math.min(batchSize, r0 + m)]);
  return out;
}

function addInto(sums: Map<string, tfc.Tensor>, name: string, g: tfc.Tensor): void {
  const prev = sums.get(name);
  if (!prev) {
    sums.set(name, g);
    return;
  }
  sums.set(name, tf.add(prev, g));
  tf.dispose([prev, g]);
}

/** What the passes over some rows of a batch add up to: gradients by parameter name, and the loss terms. */
export interface GradientSums {
  grads: Map<string, tfc.Tensor>;
  /** The task loss (cross-entropy) of these rows, over the whole batch's target tokens. */
  task: tfc.Scalar;
  /** The optimized loss: the task loss plus the weighted regularizers. */
  total: tfc.Scalar;
  terms: Map<string, tfc.Scalar>;
}

/** The same sums read back to JavaScript, as a replica (train/data-parallel.ts) sends them to the lead. */
export interface GradientShare {
  grads: Map<string, Float32Array>;
  task: number;
  total: number;
  terms: Record<string, number>;
}

function disposeSums(sums: GradientSums): void {
  tf.dispose([sums.task, sums.total, ...sums.terms.values(), ...sums.grads.values()]);
}

/**
 * The gradients of rows [r0, r1) of a batch, one micro-batch at a time: per pass a forward with
 * adapter dropout and a backward to the adapter variables only, summed. The losses are scaled to the
 * WHOLE batch (its target tokens, its rows), so the shares of several workers add up to the batch's.
 */
export function accumulateGradients(
  model: CausalLM,
  adapter: AdapterModel,
  batch: Batch,
  [rowStart, rowEnd]: [number, number],
  nameOf: Map<string, string>,
  variables: tfc.Variable[],
  prompts?: number[][],
  options: StepOptions = {},
): GradientSums {
  const B = batch.batchSize;
  const T = batch.seqLen;
  const divisor = Math.max(targetTokenCount(batch), 1);
  const sums: GradientSums = { grads: new Map(), task: tf.scalar(0), total: tf.scalar(0), terms: new Map() };
  const accumulate = (into: tfc.Scalar, value: tfc.Scalar): tfc.Scalar => {
    const next = tf.add(into, value) as tfc.Scalar;
    into.dispose();
    return next;
  };
  try {
    for (const [a, b] of microBatchRanges(rowEnd - rowStart, options.microBatchSize)) {
      const [r0, r1] = [rowStart + a, rowStart + b];
      const share = (r1 - r0) / B;
      if (prompts) adapter.prepare?.(model, prompts.slice(r0, r1), true);
      const ids = tf.tensor2d(batch.inputIds.subarray(r0 * T, r1 * T), [r1 - r0, T], 'int32');
      const mask = tf.tensor2d(batch.lossMask.subarray(r0 * T, r1 * T), [r1 - r0, T]);
      const kept: tfc.Scalar[] = [];
      const keptTerms: { name: string; value: tfc.Scalar }[] = [];
      const result = tf.variableGrads(() => {
        const term = causalLossTerm(
          model,
          ids,
          mask,
          shiftedTargets(batch, r0, r1, divisor),
          { adapters: adapter, training: true, recompute: options.recompute ? variables : null },
          options.logitsChunkTokens,
        );
        kept.push(tf.keep(term.loss));
        let sum: tfc.Scalar = term.loss;
        const batchView = {
          inputIds: ids,
          lossMask: mask,
          get logits() {
            return term.logits();
          },
        };
        for (const reg of adapter.regularizers?.(batchView) ?? []) {
          keptTerms.push({ name: reg.name, value: tf.keep(tf.mul(reg.value, share) as tfc.Scalar) });
          if (reg.weight !== 0) sum = tf.add(sum, tf.mul(reg.value, reg.weight * share));
        }
        return sum;
      }, variables);
      tf.dispose([ids, mask]);
      sums.task = accumulate(sums.task, kept[0]!);
      sums.total = accumulate(sums.total, result.value);
      for (const { name, value } of keptTerms) sums.terms.set(name, accumulate(sums.terms.get(name) ?? tf.scalar(0), value));
      // Without regularizers the optimized value is the task loss itself: dispose each tensor once.
      tf.dispose([...new Set([kept[0]!, result.value, ...keptTerms.map((k) => k.value)])]);
      for (const [variableName, g] of Object.entries(result.grads)) addInto(sums.grads, nameOf.get(variableName)!, g);
    }
  } catch (error) {
    disposeSums(sums);
    throw error;
  }
  return sums;
}

/** Reads sums back to JavaScript (a replica's answer) and disposes them. */
export async function readShare(sums: GradientSums): Promise<GradientShare> {
  try {
    const names = [...sums.grads.keys()];
    const termNames = [...sums.terms.keys()];
    const [task, total, ...rest] = await Promise.all([
      sums.task.data(),
      sums.total.data(),
      ...termNames.map((name) => sums.terms.get(name)!.data()),
      ...names.map((name) => sums.grads.get(name)!.data()),
    ]);
    return {
      task: task[0]!,
      total: total[0]!,
      terms: Object.fromEntries(termNames.map((name, k) => [name, rest[k]![0]!])),
      grads: new Map(names.map((name, k) => [name, rest[termNames.length + k] as Float32Array])),
    };
  } finally {
    disposeSums(sums);
  }
}

/** Adds a replica's share into the lead's sums (the lead's tensors are replaced, the old ones disposed). */
function addShare(sums: GradientSums, share: GradientShare, shapes: Map<string, number[]>): void {
  const plus = (into: tfc.Scalar, value: number): tfc.Scalar => {
    const next = tf.add(into, value) as tfc.Scalar;
    into.dispose();
    return next;
  };
  sums.task = plus(sums.task, share.task);
  sums.total = plus(sums.total, share.total);
  for (const [name, value] of Object.entries(share.terms)) sums.terms.set(name, plus(sums.terms.get(name) ?? tf.scalar(0), value));
  for (const [name, data] of share.grads) addInto(sums.grads, name, tf.tensor(data, shapes.get(name)));
}

/** Global-norm clipping and AdamW on the summed gradients; refuses a diverged step before it touches the adapter. Disposes the sums. */
async function applyGradients(optimizer: AdamW, sums: GradientSums, gradClip: number, step: number): Promise<StepResult> {
  let clipped: ReturnType<typeof clipByGlobalNorm>;
  try {
    clipped = clipByGlobalNorm(sums.grads, gradClip);
  } catch (error) {
    disposeSums(sums);
    throw error;
  }
  try {
    const names = [...sums.terms.keys()];
    const [lossData, totalData, normData, ...termData] = await Promise.all([
      sums.task.data(),
      sums.total.data(),
      clipped.norm.data(),
      ...names.map((name) => sums.terms.get(name)!.data()),
    ]);
    const loss = lossData[0]!;
    const gradNorm = normData[0]!;
    const regularizers = Object.fromEntries(names.map((name, k) => [name, termData[k]![0]!]));
    if (!Number.isFinite(totalData[0]!) && Number.isFinite(loss)) {
      throw new WorkbenchError(
        'internal',
        `Training diverged at step ${step}: a regularizer is not finite (${JSON.stringify(regularizers)}). Lower its weight or the learning rate and start again.`,
        { step, regularizers },
      );
    }
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      throw new WorkbenchError(
        'internal',
        `Training diverged at step ${step}: the loss is ${loss} and the gradient norm ${gradNorm}. Lower the learning rate or the gradient clip and start again (or resume from the last checkpoint with a lower rate).`,
        { step, loss, gradNorm },
      );
    }
    optimizer.step(clipped.grads);
    return { loss, gradNorm, regularizers };
  } finally {
    disposeSums(sums);
    tf.dispose([clipped.norm, ...clipped.grads.values()]);
  }
}

/**
 * One optimizer step on one batch: the gradients of every micro-batch summed (on this worker, or
 * with `options.replicas` split by rows between it and the replicas, which compute at the same time),
 * then global-norm clipping and AdamW. Every tensor it makes is disposed before it returns (the
 * benchmark in bench/ times exactly this function).
 */
export async function trainStep(
  model: CausalLM,
  adapter: AdapterModel,
  optimizer: AdamW,
  batch: Batch,
  gradClip: number,
  nameOf: Map<string, string>,
  variables: tfc.Variable[],
  step: number,
  prompts?: number[][],
  options: StepOptions = {},
): Promise<StepResult> {
  const { replicas } = options;
  if (!replicas || replicas.size === 0) {
    return applyGradients(optimizer, accumulateGradients(model, adapter, batch, [0, batch.batchSize], nameOf, variables, prompts, options), gradClip, step);
  }
  const [own, ...theirs] = rowShares(batch.batchSize, replicas.size + 1);
  // Posted before the lead computes its own share, so that every worker computes at once.
  const remote = replicas.compute({
    batch,
    rows: theirs,
    prompts,
    values: new Map(variables.map((v) => [nameOf.get(v.name)!, v.dataSync() as Float32Array])),
    random: adapter.randomState?.() ?? {},
    task: options.task ?? null,
  });
  let sums: GradientSums;
  try {
    sums = accumulateGradients(model, adapter, batch, own!, nameOf, variables, prompts, options);
  } catch (error) {
    // The replicas' answers are not needed any more, but must not surface as an unhandled rejection.
    remote.catch(() => {});
    throw error;
  }
  try {
    const shapes = new Map(variables.map((v) => [nameOf.get(v.name)!, v.shape]));
    for (const share of await remote) addShare(sums, share, shapes);
  } catch (error) {
    disposeSums(sums);
    throw error;
  }
  return applyGradients(optimizer, sums, gradClip, step);
}

/** Rows [r0, r1) of each of `workers` workers: contiguous, as equal as the rows allow (the first ones larger); empty shares are dropped. */
export function rowShares(batchSize: number, workers: number): [number, number][] {
  const out: [number, number][] = [];
  let r0 = 0;
  for (let w = 0; w < workers; w++) {
    const rows = Math.floor(batchSize / workers) + (w < batchSize % workers ? 1 : 0);
    if (rows > 0) out.push([r0, r0 + rows]);
    r0 += rows;
  }
  return out;
}
