// Semantic vectors of inputs (METHODS.md section 3, "base-pooled"): the mean of the frozen base
// model's final hidden states over the prompt tokens, with every adapter off.
import type { CausalLM } from '../models/types.ts';
import { tf } from '../tf.ts';

/** Prompts per forward when pooling: enough to amortise the call, small enough for long prompts. */
const POOL_BATCH = 16;

/**
 * One row [hiddenSize] per prompt, as a tensor [n, hiddenSize] the caller disposes: it stays on the
 * device, because SeLoRA calls this from its synchronous hooks and webgpu cannot read back synchronously
 * in Node. Prompts are right-padded within a chunk: with causal attention a real token never sees the
 * pads after it, so only the pads' own states (masked out here) differ.
 */
export function pooledPromptStates(model: CausalLM, prompts: readonly (readonly number[])[]): tf.Tensor2D {
  const chunks: tf.Tensor2D[] = [];
  for (let start = 0; start < prompts.length; start += POOL_BATCH) {
    const chunk = prompts.slice(start, start + POOL_BATCH);
    const T = Math.max(1, ...chunk.map((p) => p.length));
    const ids = new Int32Array(chunk.length * T);
    const weights = new Float32Array(chunk.length * T);
    chunk.forEach((p, b) => {
      ids.set(p, b * T);
      // An empty prompt pools the single pad position rather than dividing by zero.
      const n = Math.max(1, p.length);
      weights.fill(1 / n, b * T, b * T + n);
    });
    chunks.push(
      tf.tidy(() => {
        const states = model.hiddenStates(tf.tensor2d(ids, [chunk.length, T], 'int32'), { adapters: null, training: false });
        return tf.sum(tf.mul(states, tf.tensor3d(weights, [chunk.length, T, 1])), 1) as tf.Tensor2D;
      }),
    );
  }
  if (chunks.length === 1) return chunks[0]!;
  const all = chunks.length === 0 ? tf.zeros<tf.Rank.R2>([0, model.config.hiddenSize]) : (tf.concat(chunks, 0) as tf.Tensor2D);
  tf.dispose(chunks);
  return all;
}

/** pooledPromptStates read back, one vector per prompt (for jobs that may wait for the device). */
export async function pooledPromptVectors(model: CausalLM, prompts: readonly (readonly number[])[]): Promise<Float32Array[]> {
  const pooled = pooledPromptStates(model, prompts);
  const d = model.config.hiddenSize;
  const data = (await pooled.data()) as Float32Array;
  pooled.dispose();
  return prompts.map((_, b) => data.slice(b * d, (b + 1) * d));
}

/**
 * max(0, cos(s_a, s_b)) for each pair a < b of the rows of s [B, d], in that order, computed on the
 * device (0 when either row is zero).
 */
export function clampedPairCosines(s: tf.Tensor2D): tf.Tensor1D {
  const B = s.shape[0];
  const upper: number[] = [];
  for (let a = 0; a < B; a++) for (let b = a + 1; b < B; b++) upper.push(a * B + b);
  return tf.tidy(() => {
    const norms = tf.sqrt(tf.sum(tf.square(s), 1, true));
    const unit = tf.div(s, tf.where(tf.greater(norms, 0), norms, tf.onesLike(norms)));
    const cosines = tf.reshape(tf.matMul(unit, unit, false, true), [B * B]);
    return tf.relu(tf.gather(cosines, tf.tensor1d(upper, 'int32'))) as tf.Tensor1D;
  });
}
