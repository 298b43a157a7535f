// The LM head and the cross-entropy fused, in chunks of tokens: no [B, T, V] logits tensor ever exists.
//
// At GPT-2's vocabulary (50257) a 8 x 256 batch has 2048 x 50257 logits, 412 MB in f32, and the
// unfused loss keeps ~7 tensors of that size on the tape (log-softmax, one-hot, products and their
// gradients): more than wasm32's 4 GB heap holds next to the model. Here each chunk of tokens makes
// its logits, reduces them to the loss and, when training, straight away to the gradient with
// respect to the hidden states (softmax - onehot, times the token's weight, times W), then frees
// them. The backward pass only scales the saved dh [N, C] by the incoming gradient. The head's
// product runs as in head-product.ts (W held once). A head held as vocabulary shards (head-product.ts)
// makes each chunk's logits per shard [n, V_s]: the log-sum-exp is combined across the shards, each
// target is picked from the shard holding it, and dh = sum_s g_s W_s.
import { tf } from '../tf.ts';
import { type HeadWeight, headInputGradient, headLogitsValue, headShards, headVocabSize, headWeightGradient, shardOffsets } from './head-product.ts';

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
  /** d loss / d W_s [V_s, C] per shard, when W trains. */
  dw?: tf.Tensor2D[];
}

/** The targets as indices into shard s's logits: each token minus the shard's first row, -1 outside it (oneHot's zero row). */
function shardTargets(targets: Int32Array, offset: number, rows: number, single: boolean): Int32Array {
  if (single) return targets;
  return Int32Array.from(targets, (token) => (token >= offset && token < offset + rows ? token - offset : -1));
}

/** The log-sum-exp of each row over every shard's logits [n, V_s]: [n, 1]. */
function rowLogSumExp(logits: readonly tf.Tensor2D[]): tf.Tensor2D {
  if (logits.length === 1) return tf.logSumExp(logits[0]!, 1, true);
  return tf.tidy(() =>
    tf.logSumExp(
      tf.concat(
        logits.map((l) => tf.logSumExp(l, 1, true)),
        1,
      ),
      1,
      true,
    ),
  );
}

/** logits_i[targets[i]] of each row [n]: gathered from the shard holding the target, the others masked out. */
function pickTargets(logits: readonly tf.Tensor2D[], offsets: readonly number[], targets: Int32Array): tf.Tensor1D {
  const n = targets.length;
  return tf.tidy(() => {
    let picked: tf.Tensor1D | null = null;
    logits.forEach((l, s) => {
      const rows = l.shape[1];
      const local = shardTargets(targets, offsets[s]!, rows, logits.length === 1);
      // Clipped into the shard (a gather index must be valid) and masked: only the holding shard counts.
      const flat = Int32Array.from(local, (token, i) => i * rows + Math.max(token, 0));
      const gathered = tf.gather(tf.reshape(l, [n * rows]), tf.tensor1d(flat, 'int32')) as tf.Tensor1D;
      const part: tf.Tensor1D = logits.length === 1 ? gathered : tf.mul(gathered, tf.tensor1d(Float32Array.from(local, (token) => (token < 0 ? 0 : 1))));
      picked = picked ? (tf.add(picked, part) as tf.Tensor1D) : part;
    });
    return picked!;
  });
}

function chunk(h: tf.Tensor2D, shards: readonly tf.Tensor2D[], start: number, n: number, t: TokenTargets, gradient: 'none' | 'h' | 'h+w'): ChunkResult {
  const C = h.shape[1];
  const targets = t.targets.subarray(start, start + n);
  const weights = t.weights.subarray(start, start + n);
  const offsets = shardOffsets(shards);
  return tf.tidy(() => {
    const hc = tf.slice(h, [start, 0], [n, C]);
    const logits = shards.map((w) => headLogitsValue(hc, w));
    const lse = rowLogSumExp(logits); // [n, 1]
    // pickTargets runs in its own tidy: the reshaped views hold the logits' buffers until they are disposed.
    const picked = pickTargets(logits, offsets, targets);
    const weightsT = tf.tensor1d(weights);
    const loss = tf.sum(tf.mul(tf.sub(tf.reshape(lse, [n]), picked), weightsT)) as tf.Scalar;
    if (gradient === 'none') return { loss };
    let dh: tf.Tensor2D | null = null;
    const dw: tf.Tensor2D[] = [];
    shards.forEach((w, s) => {
      const V = w.shape[0];
      // (softmax - onehot) scaled per row by the token's weight, disposing as it goes so that no more
      // than three [n, V_s] tensors of the shard are alive at once. The one-hot is made int32 and cast:
      // tfjs-backend-wasm's OneHot writes int32 data whatever dtype is asked for (see train/loss.ts).
      const probs = tf.tidy(() => tf.exp(tf.sub(logits[s]!, lse)));
      logits[s]!.dispose();
      const local = shardTargets(targets, offsets[s]!, V, shards.length === 1);
      const onehot = tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(local, 'int32'), V), 'float32'));
      const diff = tf.sub(probs, onehot);
      tf.dispose([probs, onehot]);
      const g = tf.mul(diff, tf.reshape(weightsT, [n, 1])) as tf.Tensor2D;
      diff.dispose();
      const dhShard = headInputGradient(g, w);
      if (dh) {
        const sum: tf.Tensor2D = tf.add(dh, dhShard);
        tf.dispose([dh, dhShard]);
        dh = sum;
      } else dh = dhShard;
      if (gradient === 'h+w') dw.push(headWeightGradient(g, hc));
      g.dispose();
    });
    return { loss, dh: dh!, dw: gradient === 'h+w' ? dw : undefined };
  });
}

function chunkStarts(N: number, chunkTokens: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < N; s += chunkTokens) out.push([s, Math.min(chunkTokens, N - s)]);
  return out;
}

function checkShapes(h: tf.Tensor2D, shards: readonly tf.Tensor2D[], t: TokenTargets): void {
  for (const w of shards)
    if (h.shape[1] !== w.shape[1]) throw new Error(`head cross-entropy: hidden ${JSON.stringify(h.shape)} does not match head ${JSON.stringify(w.shape)}`);
  if (t.targets.length !== h.shape[0] || t.weights.length !== h.shape[0])
    throw new Error(`head cross-entropy: ${t.targets.length} targets for ${h.shape[0]} positions`);
}

/** sum_i weights[i] * -log softmax(h_i W^T)[targets[i]], without gradient (validation, scoring). */
export function headCrossEntropySum(h: tf.Tensor2D, w: HeadWeight, t: TokenTargets, chunkTokens = defaultChunkTokens(headVocabSize(w))): tf.Scalar {
  const shards = headShards(w);
  checkShapes(h, shards, t);
  let total: tf.Scalar = tf.scalar(0);
  for (const [start, n] of chunkStarts(h.shape[0], chunkTokens)) {
    const { loss } = chunk(h, shards, start, n, t, 'none');
    const next = tf.add(total, loss) as tf.Scalar;
    tf.dispose([total, loss]);
    total = next;
  }
  return total;
}

/**
 * The same sum as headCrossEntropySum, differentiable: with respect to h always, and to W (each of its
 * shards) when W is a trained tf.Variable. The gradients are computed chunk by chunk during the forward
 * (header) and only scaled by the incoming gradient in the backward.
 */
export function headCrossEntropy(h: tf.Tensor2D, w: HeadWeight, t: TokenTargets, chunkTokens = defaultChunkTokens(headVocabSize(w))): tf.Scalar {
  const shards = headShards(w);
  checkShapes(h, shards, t);
  const trained = shards.every((shard) => shard instanceof tf.Variable);
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor2D;
    const save = args[args.length - 1] as tf.GradSaveFunc;
    let total: tf.Scalar = tf.scalar(0);
    const dhs: tf.Tensor2D[] = [];
    let dw: tf.Tensor2D[] | null = null;
    for (const [start, n] of chunkStarts(input.shape[0], chunkTokens)) {
      const r = chunk(input, shards, start, n, t, trained ? 'h+w' : 'h');
      const next = tf.add(total, r.loss) as tf.Scalar;
      tf.dispose([total, r.loss]);
      total = next;
      dhs.push(r.dh!);
      if (r.dw) {
        const previous: tf.Tensor2D[] | null = dw;
        dw = previous ? r.dw.map((d, s) => tf.add(previous[s]!, d)) : r.dw;
        if (previous) tf.dispose([...previous, ...r.dw]);
      }
    }
    const dh = dhs.length === 1 ? dhs[0]! : (tf.concat(dhs, 0) as tf.Tensor2D);
    if (dhs.length > 1) tf.dispose(dhs);
    save(dw ? [dh, ...dw] : [dh]);
    return {
      value: total,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const grads = saved.map((s) => tf.mul(s, dy));
        return trained ? grads : grads[0]!;
      },
    };
  });
  return (trained ? f(h, ...shards) : f(h)) as tf.Scalar;
}

/** The argmax token of each row over every shard's logits [n, V_s] (the first of equal maxima, as tf.argMax): [n] int32. */
function rowArgMax(logits: readonly tf.Tensor2D[], offsets: readonly number[]): tf.Tensor1D {
  if (logits.length === 1) return tf.argMax(logits[0]!, 1) as tf.Tensor1D;
  return tf.tidy(() => {
    const best = tf.argMax(
      tf.stack(
        logits.map((l) => tf.max(l, 1)),
        1,
      ),
      1,
    );
    const candidates = tf.stack(
      logits.map((l, s) => tf.add(tf.argMax(l, 1), tf.scalar(offsets[s]!, 'int32'))),
      1,
    );
    return tf.sum(tf.mul(candidates, tf.oneHot(best, logits.length)), 1) as tf.Tensor1D;
  });
}

/**
 * For scoring: log p(targets[i]) and the argmax token of each row of h [K, C] under the head W, chunk
 * by chunk (no [K, V] tensor): [K] float32 and [K] int32.
 */
export function headTargetLogProbs(
  h: tf.Tensor2D,
  w: HeadWeight,
  targets: Int32Array,
  chunkTokens = defaultChunkTokens(headVocabSize(w)),
): { logProbs: tf.Tensor1D; argmax: tf.Tensor1D } {
  const shards = headShards(w);
  const offsets = shardOffsets(shards);
  const parts = chunkStarts(h.shape[0], chunkTokens).map(([start, n]) =>
    tf.tidy(() => {
      const hc = tf.slice(h, [start, 0], [n, h.shape[1]]);
      const logits = shards.map((shard) => headLogitsValue(hc, shard));
      const picked = pickTargets(logits, offsets, targets.subarray(start, start + n));
      return { lp: tf.sub(picked, tf.reshape(rowLogSumExp(logits), [n])) as tf.Tensor1D, am: rowArgMax(logits, offsets) };
    }),
  );
  const join = (ts: tf.Tensor1D[]) => (ts.length === 1 ? ts[0]! : (tf.concat(ts) as tf.Tensor1D));
  const logProbs = join(parts.map((p) => p.lp));
  const argmax = join(parts.map((p) => p.am));
  if (parts.length > 1) tf.dispose(parts.flatMap((p) => [p.lp, p.am]));
  return { logProbs, argmax };
}
