// One optimizer step over a batch split into micro-batches (gradient accumulation): the batch size
// stays the optimizer's batch, while only one micro-batch's activations are alive at a time.
//
// Every micro-batch's task loss is its sum of per-token losses divided by the target-token count of
// the WHOLE batch, so the sum of the micro-batch losses, and of their gradients, is exactly the
// token-averaged loss of the whole batch (Hugging Face's loss with ignore_index, as train/loss.ts).
// Regularizers are computed per micro-batch and weighted by its share of the rows: exact for terms
// that are means over rows, the usual approximation (as in HF Trainer's accumulation) otherwise.
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

/**
 * One optimizer step on one batch: per micro-batch a forward with adapter dropout and a backward to
 * the adapter variables only, the gradients summed; then global-norm clipping and AdamW. Every tensor
 * it makes is disposed before it returns (the benchmark in bench/ times exactly this function).
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
  const B = batch.batchSize;
  const T = batch.seqLen;
  const divisor = Math.max(targetTokenCount(batch), 1);
  const grads = new Map<string, tfc.Tensor>();
  // Read back after the last micro-batch: the task loss, the optimized total and each regularizer.
  let task: tfc.Scalar = tf.scalar(0);
  let total: tfc.Scalar = tf.scalar(0);
  const terms = new Map<string, tfc.Scalar>();
  const accumulate = (into: tfc.Scalar, value: tfc.Scalar): tfc.Scalar => {
    const next = tf.add(into, value) as tfc.Scalar;
    into.dispose();
    return next;
  };
  try {
    for (const [r0, r1] of microBatchRanges(B, options.microBatchSize)) {
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
      task = accumulate(task, kept[0]!);
      total = accumulate(total, result.value);
      for (const { name, value } of keptTerms) terms.set(name, accumulate(terms.get(name) ?? tf.scalar(0), value));
      // Without regularizers the optimized value is the task loss itself: dispose each tensor once.
      tf.dispose([...new Set([kept[0]!, result.value, ...keptTerms.map((k) => k.value)])]);
      for (const [variableName, g] of Object.entries(result.grads)) addInto(grads, nameOf.get(variableName)!, g);
    }
  } catch (error) {
    tf.dispose([task, total, ...terms.values(), ...grads.values()]);
    throw error;
  }
  const clipped = clipByGlobalNorm(grads, gradClip);
  try {
    const names = [...terms.keys()];
    const [lossData, totalData, normData, ...termData] = await Promise.all([
      task.data(),
      total.data(),
      clipped.norm.data(),
      ...names.map((name) => terms.get(name)!.data()),
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
    tf.dispose([task, total, clipped.norm, ...terms.values(), ...grads.values(), ...clipped.grads.values()]);
  }
}
