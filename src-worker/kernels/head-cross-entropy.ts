// The LM head and the cross-entropy fused, in chunks of tokens: no [B, T, V] logits tensor ever exists.
//
// At GPT-2's vocabulary (50257) a 8 x 256 batch has 2048 x 50257 logits, 412 MB in f32, and the
// unfused loss keeps ~7 tensors of that size on the tape (log-softmax, one-hot, products and their
// gradients): more than wasm32's 4 GB heap holds next to the model. Here each chunk of tokens makes
// its logits, reduces them to the loss and, when training, straight away to the gradient with
// respect to the hidden states (softmax - onehot, times the token's weight, times W), then frees
// them. The backward pass only scales the saved dh [N, C] by the incoming gradient. The head's
// product runs as in head-product.ts (W held once).
import { tf } from '../tf.ts';
import { headInputGradient, headLogitsValue, headWeightGradient } from './head-product.ts';

/** Bytes one [chunk, V] float32 temporary may take; a chunk keeps about four of them alive. */
export const LOGITS_CHUNK_BYTES = 32 * 2 ** 20;

/** Tokens per chunk so that one [chunk, V] float32 tensor stays within LOGITS_CHUNK_BYTES. */
export function defaultChunkTokens(vocabSize: number): number {
  return Math.max(1, Math.floor(LOGITS_CHUNK_BYTES / 4 / vocabSize));
}

/**
 * Targets of N token positions: position i's prediction is scored against token targets[i] with
 * weight weights[i] (0: not scored). Causal LM training passes ids shifted left and the loss mask
 * shifted left, divided by the number of target tokens of the whole batch.
 */
export interface TokenTargets {
  targets: Int32Array;
  weights: Float32Array;
}

interface ChunkResult {
  /** sum_i weights[i] (logsumexp(logits_i) - logits_i[targets[i]]) over the chunk. */
  loss: tf.Scalar;
  /** d loss / d h for the chunk's rows [n, C], when asked for. */
  dh?: tf.Tensor2D;
  /** d loss / d W [V, C], when W trains. */
  dw?: tf.Tensor2D;
}

function chunk(h: tf.Tensor2D, w: tf.Tensor2D, start: number, n: number, t: TokenTargets, gradient: 'none' | 'h' | 'h+w'): ChunkResult {
  const V = w.shape[0];
  const C = h.shape[1];
  const targets = t.targets.subarray(start, start + n);
  const weights = t.weights.subarray(start, start + n);
  return tf.tidy(() => {
    const hc = tf.slice(h, [start, 0], [n, C]);
    const logits = headLogitsValue(hc, w);
    const lse = tf.logSumExp(logits, 1, true); // [n, 1]
    const flat = Int32Array.from(targets, (token, i) => i * V + token);
    // In its own tidy: the reshaped view holds the logits' buffer until it is disposed.
    const picked = tf.tidy(() => tf.gather(tf.reshape(logits, [n * V]), tf.tensor1d(flat, 'int32')));
    const weightsT = tf.tensor1d(weights);
    const loss = tf.sum(tf.mul(tf.sub(tf.reshape(lse, [n]), picked), weightsT)) as tf.Scalar;
    if (gradient === 'none') return { loss };
    // (softmax - onehot) scaled per row by the token's weight, disposing as it goes so that no more
    // than three [n, V] tensors are alive at once. The one-hot is made int32 and cast:
    // tfjs-backend-wasm's OneHot writes int32 data whatever dtype is asked for (see train/loss.ts).
    const probs = tf.tidy(() => tf.exp(tf.sub(logits, lse)));
    logits.dispose();
    const onehot = tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(targets, 'int32'), V), 'float32'));
    const diff = tf.sub(probs, onehot);
    tf.dispose([probs, onehot]);
    const g = tf.mul(diff, tf.reshape(weightsT, [n, 1])) as tf.Tensor2D;
    diff.dispose();
    const dh = headInputGradient(g, w);
    return { loss, dh, dw: gradient === 'h+w' ? headWeightGradient(g, hc) : undefined };
  });
}

function chunkStarts(N: number, chunkTokens: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < N; s += chunkTokens) out.push([s, Math.min(chunkTokens, N - s)]);
  return out;
}

function checkShapes(h: tf.Tensor2D, w: tf.Tensor2D, t: TokenTargets): void {
  if (h.shape[1] !== w.shape[1]) throw new Error(`head cross-entropy: hidden ${JSON.stringify(h.shape)} does not match head ${JSON.stringify(w.shape)}`);
  if (t.targets.length !== h.shape[0] || t.weights.length !== h.shape[0])
    throw new Error(`head cross-entropy: ${t.targets.length} targets for ${h.shape[0]} positions`);
}

/** sum_i weights[i] * -log softmax(h_i W^T)[targets[i]], without gradient (validation, scoring). */
export function headCrossEntropySum(h: tf.Tensor2D, w: tf.Tensor2D, t: TokenTargets, chunkTokens = defaultChunkTokens(w.shape[0])): tf.Scalar {
  checkShapes(h, w, t);
  let total: tf.Scalar = tf.scalar(0);
  for (const [start, n] of chunkStarts(h.shape[0], chunkTokens)) {
    const { loss } = chunk(h, w, start, n, t, 'none');
    const next = tf.add(total, loss) as tf.Scalar;
    tf.dispose([total, loss]);
    total = next;
  }
  return total;
}

/**
 * The same sum as headCrossEntropySum, differentiable: with respect to h always, and to W when W is a
 * trained tf.Variable. The gradients are computed chunk by chunk during the forward (header) and only
 * scaled by the incoming gradient in the backward.
 */
export function headCrossEntropy(h: tf.Tensor2D, w: tf.Tensor2D, t: TokenTargets, chunkTokens = defaultChunkTokens(w.shape[0])): tf.Scalar {
  checkShapes(h, w, t);
  const trained = w instanceof tf.Variable;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor2D;
    const save = args[trained ? 2 : 1] as tf.GradSaveFunc;
    let total: tf.Scalar = tf.scalar(0);
    const dhs: tf.Tensor2D[] = [];
    let dw: tf.Tensor2D | null = null;
    for (const [start, n] of chunkStarts(input.shape[0], chunkTokens)) {
      const r = chunk(input, w, start, n, t, trained ? 'h+w' : 'h');
      const next = tf.add(total, r.loss) as tf.Scalar;
      tf.dispose([total, r.loss]);
      total = next;
      dhs.push(r.dh!);
      if (r.dw) {
        const sum: tf.Tensor2D = dw ? tf.add(dw, r.dw) : r.dw;
        if (dw) tf.dispose([dw, r.dw]);
        dw = sum;
      }
    }
    const dh = dhs.length === 1 ? dhs[0]! : (tf.concat(dhs, 0) as tf.Tensor2D);
    if (dhs.length > 1) tf.dispose(dhs);
    save(dw ? [dh, dw] : [dh]);
    return {
      value: total,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const grads = saved.map((s) => tf.mul(s, dy));
        return trained ? grads : grads[0]!;
      },
    };
  });
  return (trained ? f(h, w) : f(h)) as tf.Scalar;
}

/**
 * For scoring: log p(targets[i]) and the argmax token of each row of h [K, C] under the head W, chunk
 * by chunk (no [K, V] tensor): [K] float32 and [K] int32.
 */
export function headTargetLogProbs(
  h: tf.Tensor2D,
  w: tf.Tensor2D,
  targets: Int32Array,
  chunkTokens = defaultChunkTokens(w.shape[0]),
): { logProbs: tf.Tensor1D; argmax: tf.Tensor1D } {
  const V = w.shape[0];
  const parts = chunkStarts(h.shape[0], chunkTokens).map(([start, n]) =>
    tf.tidy(() => {
      const logits = headLogitsValue(tf.slice(h, [start, 0], [n, h.shape[1]]), w);
      const flat = Int32Array.from(targets.subarray(start, start + n), (token, i) => i * V + token);
      const picked = tf.gather(tf.reshape(logits, [n * V]), tf.tensor1d(flat, 'int32'));
      return { lp: tf.sub(picked, tf.reshape(tf.logSumExp(logits, 1), [n])) as tf.Tensor1D, am: tf.argMax(logits, 1) as tf.Tensor1D };
    }),
  );
  const join = (ts: tf.Tensor1D[]) => (ts.length === 1 ? ts[0]! : (tf.concat(ts) as tf.Tensor1D));
  const logProbs = join(parts.map((p) => p.lp));
  const argmax = join(parts.map((p) => p.am));
  if (parts.length > 1) tf.dispose(parts.flatMap((p) => [p.lp, p.am]));
  return { logProbs, argmax };
}
