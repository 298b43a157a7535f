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
//
// Where one [V, C] tensor would exceed the backend's largest binding (webgpu: GPT-2's 154 MB head
// against Dawn's and lavapipe's 128 MiB maxStorageBufferBindingSize), models/lm-head.ts holds the
// weight as row shards [V_i, C] in vocabulary order and every head kernel takes them as a list: the
// logits are made per shard, so no tensor or binding holds the whole vocabulary.
import { tf } from '../tf.ts';

/** The head's weight: one [V, C] tensor, or its row shards [V_i, C] in vocabulary order. */
export type HeadWeight = tf.Tensor2D | readonly tf.Tensor2D[];

export function headShards(w: HeadWeight): readonly tf.Tensor2D[] {
  return Array.isArray(w) ? w : [w as tf.Tensor2D];
}

/** V: the rows of every shard together. */
export function headVocabSize(w: HeadWeight): number {
  return headShards(w).reduce((rows, shard) => rows + shard.shape[0], 0);
}

/** The first vocabulary row of each shard. */
export function shardOffsets(shards: readonly tf.Tensor2D[]): number[] {
  const offsets: number[] = [];
  let row = 0;
  for (const shard of shards) {
    offsets.push(row);
    row += shard.shape[0];
  }
  return offsets;
}

/**
 * Rows per shard of a [V, C] float32 table so that each shard stays within maxTensorBytes (null: no
 * limit, one shard), balanced: 50257 rows at 128 MiB and C 768 are two shards of 25129 and 25128.
 */
export function vocabShardRows(vocabSize: number, hiddenSize: number, maxTensorBytes: number | null): number {
  const rowBytes = 4 * hiddenSize;
  if (maxTensorBytes === null || vocabSize * rowBytes <= maxTensorBytes) return vocabSize;
  const fitting = Math.floor(maxTensorBytes / rowBytes);
  if (fitting < 1) throw new Error(`one row of the head (${rowBytes} bytes) exceeds the backend's largest tensor (${maxTensorBytes} bytes)`);
  return Math.ceil(vocabSize / Math.ceil(vocabSize / fitting));
}

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
 * A sharded W gives each shard's logits [N, V_i] side by side (only short N, as in generation, should
 * ask for whole logits: the loss and scoring run in chunks, head-cross-entropy.ts).
 */
export function headProduct(h: tf.Tensor2D, weight: HeadWeight): tf.Tensor2D {
  const shards = headShards(weight);
  if (shards.length > 1)
    return tf.concat(
      shards.map((shard) => shardProduct(h, shard)),
      1,
    );
  return shardProduct(h, shards[0]!);
}

function shardProduct(h: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
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
