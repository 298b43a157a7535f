// Semantic vectors of inputs (METHODS.md section 3, "base-pooled"): the mean of the frozen base
// model's final hidden states over the prompt tokens, with every adapter off.
import type { CausalLM } from '../models/types.ts';
import { tf } from '../tf.ts';

/** Prompts per forward when pooling: enough to amortise the call, small enough for long prompts. */
const POOL_BATCH = 16;

/**
 * One vector [hiddenSize] per prompt. Prompts are right-padded within a chunk: with causal attention a
 * real token never sees the pads after it, so only the pads' own states (masked out here) differ.
 */
export function pooledPromptStates(model: CausalLM, prompts: readonly (readonly number[])[]): Float32Array[] {
  const d = model.config.hiddenSize;
  const out: Float32Array[] = [];
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
    const pooled = tf.tidy(() => {
      const states = model.hiddenStates(tf.tensor2d(ids, [chunk.length, T], 'int32'), { adapters: null, training: false });
      return tf.sum(tf.mul(states, tf.tensor3d(weights, [chunk.length, T, 1])), 1);
    });
    const data = pooled.dataSync() as Float32Array;
    pooled.dispose();
    for (let b = 0; b < chunk.length; b++) out.push(data.slice(b * d, (b + 1) * d));
  }
  return out;
}

/** Cosine similarity of two vectors (0 when either is zero). */
export function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}
