// Matrix products whose backward pass stays fast on the wasm backend.
//
// tfjs-backend-wasm hands a matmul to XNNPACK only when neither operand is transposed; with
// transposeA or transposeB it falls back to a naive loop that is 10-20x slower (measured: [768, 256]
// x [256, 8000] takes 120 ms plain, 2.1 s with transposeB). tfjs's own MatMul gradient uses exactly
// those flags (dA = dy B^T, dB = A^T dy), so on wasm the backward of every layer took the slow path.
// Here the transposes are explicit ops instead: a transpose costs O(size) against the product's
// O(N * size), so it is noise. Other backends keep the flags, which their kernels handle natively.
import { tf } from '../tf.ts';

const explicitTransposes = () => tf.getBackend() === 'wasm';

/**
 * XNNPACK keeps a packed copy of a product's right operand for as long as that tensor lives
 * (tfjs-backend-wasm's batch_mat_mul_impl.cc caches the operator on b's id): a stored weight used
 * directly is held twice for the run. Packing per call instead (a fresh copy each time) holds it once
 * but repeats the packing, which at a few hundred tokens per pass costs about as much as the product
 * itself (measured on GPT-2's head). The memory plan chooses: cached when the copies fit, per call
 * when only one copy of the weights does (train/memory-plan.ts).
 */
let packWeightsPerCall = false;

export function setWasmWeightPacking(mode: 'cached' | 'per-call'): void {
  packWeightsPerCall = mode === 'per-call';
}

/** The right operand of a product with a stored weight on wasm (see setWasmWeightPacking). */
function asRightOperand(w: tf.Tensor2D): tf.Tensor2D {
  return packWeightsPerCall ? tf.add(w, 0) : w;
}

/**
 * a b for rank > 2 on wasm: tfjs-backend-wasm sends batched products (batch > 1) to a naive loop
 * 10-20x slower than XNNPACK, which only takes 2-D products. Attention's (B, heads, T, hs) products
 * are split into 2-D ones, each through XNNPACK (its operand packed per call, freed with it).
 */
function batchedMatMul(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const [M, K] = a.shape.slice(-2) as [number, number];
  const N = b.shape[b.rank - 1]!;
  const outer = a.shape.slice(0, -2);
  const batch = outer.reduce((p, d) => p * d, 1);
  if (batch === 1) return tf.reshape(tf.matMul(tf.reshape(a, [M, K]), tf.reshape(b, [K, N])), [...outer, M, N]);
  return tf.tidy(() => {
    const as = tf.unstack(tf.reshape(a, [batch, M, K]));
    const bs = tf.unstack(tf.reshape(b, [batch, K, N]));
    return tf.reshape(tf.stack(as.map((x, i) => tf.matMul(x as tf.Tensor2D, bs[i] as tf.Tensor2D))), [...outer, M, N]);
  });
}

/** Swaps the last two axes. */
export function transposeLast2<T extends tf.Tensor>(t: T): T {
  if (t.rank === 2) return tf.transpose(t) as T;
  const perm = [...Array(t.rank).keys()];
  [perm[t.rank - 2], perm[t.rank - 1]] = [perm[t.rank - 1]!, perm[t.rank - 2]!];
  return tf.transpose(t, perm) as T;
}

/** a b for operands of equal batch shape, both trainable paths; gradients: dA = dy B^T, dB = A^T dy. */
const plainMatMul = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [a, b, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: a.rank > 2 ? batchedMatMul(a, b) : tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor, tf.Tensor];
      const product = dy.rank > 2 ? batchedMatMul : tf.matMul;
      return [product(dy, transposeLast2(sb)), product(transposeLast2(sa), dy)];
    },
  };
});

/**
 * tf.matMul for operands whose batch dimensions are equal (no broadcasting), e.g. attention's
 * (B, nh, T, hs) products. On wasm neither the forward nor the backward uses transposed operands.
 */
export function matMul<T extends tf.Tensor>(a: T, b: T, transposeA = false, transposeB = false): T {
  if (!explicitTransposes()) return tf.matMul(a, b, transposeA, transposeB) as T;
  return plainMatMul(transposeA ? transposeLast2(a) : a, transposeB ? transposeLast2(b) : b) as T;
}

/**
 * x W + bias for a frozen weight W [in, out], given as W, as W^T [out, in], or as both. The gradient
 * goes to x only (dx = dy W^T): no time is spent on dW, which nothing would read. With both
 * orientations at hand neither pass transposes anything (the tied LM head keeps the embedding
 * [V, C] as W^T and, on wasm, a cached [C, V] copy as W).
 */
export function frozenLinear(
  x: tf.Tensor2D,
  weight: { w?: tf.Tensor2D; wT?: tf.Tensor2D /** A temporary made for this call (a widened 16-bit weight): never copied for packing. */; fresh?: boolean },
  bias: tf.Tensor1D | null = null,
): tf.Tensor2D {
  const { w, wT, fresh = false } = weight;
  if (!w && !wT) throw new Error('frozenLinear needs W or W^T');
  const wasm = explicitTransposes();
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor2D;
    const save = args[1] as tf.GradSaveFunc;
    const b = bias ?? undefined;
    let value: tf.Tensor;
    // On wasm the weight goes through asRightOperand (held once or packed once, as the plan chose),
    // and the bias is added apart: fused, XNNPACK's operator cache would also key every per-call
    // copy on the bias tensor and remember it for the run.
    if (wasm) {
      value = tf.tidy(() => {
        // A fresh weight is already a per-call operand: XNNPACK's packing of it goes with it.
        const y = tf.matMul(input, w ? (fresh ? w : asRightOperand(w)) : tf.transpose(wT!));
        return b ? tf.add(y, b) : y;
      });
    } else if (w) value = tf.fused.matMul({ a: input, b: w, bias: b });
    else value = tf.fused.matMul({ a: input, b: wT!, bias: b, transposeB: true });
    // Saved (a kept reference, not a copy) so that a weight made inside the forward's tidy (QLoRA's
    // dequantized weight) outlives it until the backward pass.
    save([wT ?? w!]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const g = dy as tf.Tensor2D;
        const weightSaved = saved[0] as tf.Tensor2D;
        if (wT) return tf.matMul(g, weightSaved);
        if (!wasm) return tf.matMul(g, weightSaved, false, true);
        // dx = dy W^T with no transposed operand: transpose W [in, out] (and pack it afresh), or
        // compute (W dy^T)^T, transposing dy and the result. At a few hundred tokens per pass the
        // activations are the smaller side (GPT-2 124M at 256 tokens: 0.8M floats against 1.8M per
        // c_attn weight), and the weight, as the left operand, needs no packing at all.
        const [rows, inFeatures] = [g.shape[0], weightSaved.shape[0]];
        return tf.tidy(() => (rows < inFeatures ? tf.transpose(tf.matMul(weightSaved, tf.transpose(g))) : tf.matMul(g, tf.transpose(weightSaved))));
      },
    };
  });
  return f(x) as tf.Tensor2D;
}

/**
 * Embedding lookup for a trained table (full fine-tuning): d table = onehot(ids)^T dy as a product,
 * because tfjs-backend-wasm has no UnsortedSegmentSum, which tf.gather's own gradient needs.
 */
export function trainableGather(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const t = args[0] as tf.Tensor2D;
    // The ids are made inside the forward's tidy: saved, they outlive it until the backward pass.
    (args[1] as tf.GradSaveFunc)([ids]);
    const rows = t.shape[0];
    return {
      value: tf.gather(t, ids),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        // Built by comparison: tfjs-backend-wasm's OneHot writes int32 data whatever dtype is asked for.
        const onehot = tf.cast(tf.equal(tf.expandDims(saved[0]!, 1), tf.range(0, rows, 1, 'int32')), 'float32') as tf.Tensor2D;
        return matMul(onehot, dy as tf.Tensor2D, true, false);
      },
    };
  });
  return f(table) as tf.Tensor2D;
}

/**
 * x W + b where W or b may be trained (tf.Variable); a frozen W keeps frozenLinear's fast backward.
 * `fresh`: W is a temporary made for this call (kernels/half-weights.ts), not a stored weight.
 */
export function hookedLinear(x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D | null, fresh = false): tf.Tensor2D {
  if (w instanceof tf.Variable) {
    const y = matMul(x, w);
    return b ? tf.add(y, b) : y;
  }
  if (b instanceof tf.Variable) return tf.add(frozenLinear(x, { w, fresh }), b);
  return frozenLinear(x, { w, fresh }, b);
}
