// Causal language-model cross-entropy over the masked (completion) tokens.
import type * as tfc from '@tensorflow/tfjs-core';
import { tf } from '../tf.ts';

/**
 * Mean over target tokens of -log p(token_{t+1} | tokens_{<=t}).
 *
 * logits [B, T, V]; inputIds [B, T] int32; lossMask [B, T] with 1 where token t is a target.
 * logits[:, t] predicts inputIds[:, t+1], weighted by lossMask[:, t+1]. Instead of slicing the
 * big logits tensor to T-1 positions, the targets and weights are shifted left and the last
 * position gets weight 0 (its prediction has no next token). Token-averaged: every target token
 * counts the same whatever its example's length (as Hugging Face's loss with ignore_index = -100).
 * log-softmax subtracts the row max before exponentiating, so large logits do not overflow.
 * Returns 0 (not NaN) for a batch without targets.
 */
export function causalLMLoss(logits: tfc.Tensor3D, inputIds: tfc.Tensor2D, lossMask: tfc.Tensor2D): tfc.Scalar {
  return tf.tidy(() => {
    const [B, T, V] = logits.shape;
    if (inputIds.shape[0] !== B || inputIds.shape[1] !== T || lossMask.shape[0] !== B || lossMask.shape[1] !== T) {
      throw new Error(
        `causalLMLoss: logits ${JSON.stringify(logits.shape)} do not match ids ${JSON.stringify(inputIds.shape)} / mask ${JSON.stringify(lossMask.shape)}`,
      );
    }
    const shiftLeft = (x: tfc.Tensor2D) => tf.concat([tf.slice(x, [0, 1], [B, T - 1]), tf.zerosLike(tf.slice(x, [0, 0], [B, 1]))], 1);
    const targets = tf.reshape(shiftLeft(tf.cast(inputIds, 'int32') as tfc.Tensor2D), [B * T]);
    const weights = tf.reshape(shiftLeft(tf.cast(lossMask, 'float32') as tfc.Tensor2D), [B * T]);
    const logProbs = tf.logSoftmax(tf.reshape(logits, [B * T, V]));
    // log p(target) through a one-hot product rather than a gather: gather's gradient is
    // UnsortedSegmentSum, which the cpu backend computes in O(segments x indices), here (B*T*V)^2 / V.
    // The one-hot is made int32 and cast: the wasm backend's OneHot ignores a float32 dtype and
    // writes integer bit patterns (1 reads back as 1.4e-45), which silently zeroes the loss.
    const targetLogProbs = tf.sum(tf.mul(logProbs, tf.cast(tf.oneHot(targets, V), 'float32')), -1);
    const total = tf.neg(tf.sum(tf.mul(targetLogProbs, weights)));
    return tf.div(total, tf.maximum(tf.sum(weights), tf.scalar(1))) as tfc.Scalar;
  });
}

/** Sum of per-token losses and the token count, for averaging validation loss over several batches exactly. */
export function causalLMLossSum(logits: tfc.Tensor3D, inputIds: tfc.Tensor2D, lossMask: tfc.Tensor2D): { sum: tfc.Scalar; count: tfc.Scalar } {
  return tf.tidy(() => {
    const [B, T] = inputIds.shape;
    const count = tf.sum(tf.slice(tf.cast(lossMask, 'float32'), [0, 1], [B, T - 1])) as tfc.Scalar;
    const mean = causalLMLoss(logits, inputIds, lossMask);
    return { sum: tf.mul(mean, tf.maximum(count, tf.scalar(1))) as tfc.Scalar, count };
  });
}
