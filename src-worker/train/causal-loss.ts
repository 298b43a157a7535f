// The causal LM loss of a batch (or of some of its rows) from the final hidden states, with the head
// and the cross-entropy fused in chunks of tokens (kernels/head-cross-entropy.ts): what training and
// validation use, so that no [B, T, V] logits tensor is made. Models without headWeight (test doubles)
// fall back to their full logits and train/loss.ts.
import type * as tfc from '@tensorflow/tfjs-core';
import type { Batch } from '../data/batcher.ts';
import { headCrossEntropy, headCrossEntropySum, type TokenTargets } from '../kernels/head-cross-entropy.ts';
import { headProduct } from '../kernels/head-product.ts';
import type { CausalLM, ForwardOptions } from '../models/types.ts';
import { tf } from '../tf.ts';
import { causalLMLoss } from './loss.ts';

/** Scored target tokens of a batch: positions t >= 1 with lossMask 1 (position t is predicted from t - 1). */
export function targetTokenCount(batch: Batch): number {
  const { batchSize: B, seqLen: T, lossMask } = batch;
  let count = 0;
  for (let b = 0; b < B; b++) for (let t = 1; t < T; t++) if (lossMask[b * T + t]) count++;
  return count;
}

/**
 * Targets for rows [r0, r1) of a batch, one per position: position t is scored against token t + 1
 * with weight lossMask[t + 1] / divisor; the last position of a row predicts nothing (weight 0).
 */
export function shiftedTargets(batch: Batch, r0: number, r1: number, divisor: number): TokenTargets {
  const T = batch.seqLen;
  const n = (r1 - r0) * T;
  const targets = new Int32Array(n);
  const weights = new Float32Array(n);
  for (let b = r0; b < r1; b++) {
    for (let t = 0; t + 1 < T; t++) {
      const i = (b - r0) * T + t;
      targets[i] = batch.inputIds[b * T + t + 1]!;
      weights[i] = batch.lossMask[b * T + t + 1]! / divisor;
    }
  }
  return { targets, weights };
}

export interface CausalLossTerm {
  /** sum over scored tokens of weight x -log p(target), inside the caller's gradient tape. */
  loss: tfc.Scalar;
  /** Full logits [rows, T, V] of the same forward, made only if asked for (bias-aware's L_KL). */
  logits(): tfc.Tensor3D;
}

/**
 * The task loss term of rows `ids` [rows, T] with targets from shiftedTargets. Differentiable; the
 * trunk runs once whether or not the logits are asked for afterwards.
 */
export function causalLossTerm(
  model: CausalLM,
  ids: tfc.Tensor2D,
  lossMask: tfc.Tensor2D,
  targets: TokenTargets,
  options: ForwardOptions,
  chunkTokens?: number,
): CausalLossTerm {
  const [rows, T] = ids.shape;
  if (!model.headWeight) {
    const logits = model.forward(ids, options);
    // The token mean of this piece times its share of the batch's weights is the piece's weighted sum.
    const share = targets.weights.reduce((s, w) => s + w, 0);
    return { loss: tf.mul(causalLMLoss(logits, ids, lossMask), share) as tfc.Scalar, logits: () => logits };
  }
  const hidden = tf.reshape(model.hiddenStates(ids, options), [rows * T, -1]) as tfc.Tensor2D;
  const weight = model.headWeight(options.adapters);
  let logits: tfc.Tensor3D | null = null;
  return {
    loss: headCrossEntropy(hidden, weight, targets, chunkTokens),
    logits: () => (logits ??= tf.reshape(headProduct(hidden, weight), [rows, T, -1]) as tfc.Tensor3D),
  };
}

/** Sum of per-token losses and the token count of a whole batch, without gradient (validation). */
export function causalLossSum(model: CausalLM, batch: Batch, options: ForwardOptions, chunkTokens?: number): { sum: tfc.Scalar; count: number } {
  const count = targetTokenCount(batch);
  return tf.tidy(() => {
    const ids = tf.tensor2d(batch.inputIds, [batch.batchSize, batch.seqLen], 'int32');
    const targets = shiftedTargets(batch, 0, batch.batchSize, 1);
    if (!model.headWeight) {
      const mask = tf.tensor2d(batch.lossMask, [batch.batchSize, batch.seqLen]);
      return { sum: tf.mul(causalLMLoss(model.forward(ids, options), ids, mask), Math.max(count, 1)) as tfc.Scalar, count };
    }
    const hidden = tf.reshape(model.hiddenStates(ids, options), [batch.batchSize * batch.seqLen, -1]) as tfc.Tensor2D;
    return { sum: headCrossEntropySum(hidden, model.headWeight(options.adapters), targets, chunkTokens), count };
  });
}
