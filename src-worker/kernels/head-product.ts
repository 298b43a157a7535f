// The LM head's product h W^T (h [N, C], W [V, C] the embedding or lm_head.weight) with the weight
// held once, in its checkpoint layout, on every backend.
//
// tfjs-backend-wasm multiplies with XNNPACK only when neither operand is transposed, and XNNPACK packs
// the right-hand operand into its own buffer, cached for as long as that tensor lives
// (batch_mat_mul_impl.cc keys the operator on b's id). A weight used as the right-hand operand is
// therefore held twice for the whole run, and a transposed copy kept to avoid the slow path (what
// gpt2.ts and llama.ts did) three times. Here, on wasm, W is only ever the left operand:
//   logits^T [V, N] = W [V, C] x h^T [C, N]     (h^T is per call: packed, then freed with it)
// and the backward's dh = g W runs over slices of the vocabulary, each slice a fresh tensor whose
// packed copy dies with it, so no copy of W outlives the call.
import { tf } from '../tf.ts';

const onWasm = () => tf.getBackend() === 'wasm';

/** Vocabulary rows per slice in dh = g W on wasm: bounds the per-call copies at VOCAB_SLICE x C floats. */
const VOCAB_SLICE = 8192;

/** logits [N, V] = h W^T without gradient bookkeeping. */
export function headLogitsValue(h: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => (onWasm() ? tf.transpose(tf.matMul(w, tf.transpose(h))) : tf.matMul(h, w, false, true))) as tf.Tensor2D;
}

/** dh [N, C] = g [N, V] W [V, C], with W never kept packed (header). */
export function headInputGradient(g: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  if (!onWasm()) return tf.matMul(g, w);
  const [N, V] = g.shape;
  const C = w.shape[1];
  let dh: tf.Tensor2D | null = null;
  for (let v0 = 0; v0 < V; v0 += VOCAB_SLICE) {
    const n = Math.min(VOCAB_SLICE, V - v0);
    const next = tf.tidy(() => {
      const part = tf.matMul(tf.slice(g, [0, v0], [N, n]), tf.slice(w, [v0, 0], [n, C]));
      return dh ? tf.add(dh, part) : part;
    }) as tf.Tensor2D;
    dh?.dispose();
    dh = next;
  }
  return dh!;
}

/** dW [V, C] = g^T [V, N] h [N, C]. */
export function headWeightGradient(g: tf.Tensor2D, h: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => (onWasm() ? tf.matMul(tf.transpose(g), h) : tf.matMul(g, h, true, false)));
}

/**
 * logits [N, V] = h W^T with gradients to h and, when W is a trained tf.Variable (full fine-tuning of
 * the embeddings), to W. A frozen W is closed over rather than passed, so no time goes to its gradient.
 */
export function headProduct(h: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  const trained = w instanceof tf.Variable;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor2D;
    const save = args[trained ? 2 : 1] as tf.GradSaveFunc;
    // Saved (kept references) so that a weight made inside the forward's tidy (QLoRA) outlives it.
    save([input, w]);
    return {
      value: headLogitsValue(input, w),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [hs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
        const g = dy as tf.Tensor2D;
        const dh = headInputGradient(g, ws);
        return trained ? [dh, headWeightGradient(g, hs)] : dh;
      },
    };
  });
  return (trained ? f(h, w) : f(h)) as tf.Tensor2D;
}
