// The LM head's product h W^T (h [N, C], W [V, C] the embedding or lm_head.weight) with the weight
// held once, in its checkpoint layout, on every backend.
//
// tfjs-backend-wasm multiplies with XNNPACK only when neither operand is transposed, and XNNPACK packs
// the right-hand operand into its own buffer, cached for as long as that tensor lives
// (batch_mat_mul_impl.cc keys the operator on b's id). gpt2.ts and llama.ts kept a transposed copy of
// the head [C, V] for the forward, and XNNPACK a packed copy of that: the head three times. Here, on
// wasm, the forward takes W as the left operand, which is never packed:
//   logits^T [V, N] = W [V, C] x h^T [C, N]     (h^T is per call: packed, then freed with it)
// and only the backward's dh = g W has W on the right: one packed copy, made once and kept, because
// packing the 154 MB of GPT-2's head costs about as much as a 166-token product (measured), too much
// to repeat per chunk of tokens. The memory plan counts that copy.
import { tf } from '../tf.ts';

const onWasm = () => tf.getBackend() === 'wasm';

/** logits [N, V] = h W^T without gradient bookkeeping. */
export function headLogitsValue(h: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => (onWasm() ? tf.transpose(tf.matMul(w, tf.transpose(h))) : tf.matMul(h, w, false, true))) as tf.Tensor2D;
}

/** dh [N, C] = g [N, V] W [V, C]. */
export function headInputGradient(g: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  return tf.matMul(g, w);
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
