// The nn.Linear module of the families that store torch's [out, in] weights (Llama, Qwen2, Mistral, BERT).
import { asFloat, HalfWeight, type StoredWeight } from '../kernels/half-weights.ts';
import { tf } from '../tf.ts';
import { hookedLinear } from './ops.ts';
import type { AdapterHooks, LinearModule } from './types.ts';

/**
 * nn.Linear, y = x W^T + b, with W kept as W^T [in, out] (the layout tfjs's products take without a
 * transpose), for the families whose checkpoints store torch's [out, in] (Llama, BERT): a method may
 * replace its weight or bias (parameter hooks), add a low-rank delta to its output, or an adapter after it.
 */
export class Linear implements LinearModule {
  readonly fanInFanOut = false;
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(
    readonly path: string,
    readonly weightT: StoredWeight, // [in, out]; 16-bit checkpoints' stay 16-bit where the backend widens per use
    readonly bias: tf.Tensor1D | null,
  ) {
    [this.inFeatures, this.outFeatures] = weightT.shape;
  }

  apply(x: tf.Tensor2D, adapters: AdapterHooks | null | undefined, training: boolean): tf.Tensor2D {
    const replaced = adapters?.parameter?.(`${this.path}.weight`) as tf.Tensor2D | null | undefined;
    const b = this.bias ? ((adapters?.parameter?.(`${this.path}.bias`) as tf.Tensor1D | null | undefined) ?? this.bias) : null;
    let y = hookedLinear(x, replaced ?? asFloat(this.weightT), b, !replaced && this.weightT instanceof HalfWeight);
    const delta = adapters?.delta(this.path, x, training);
    if (delta) y = tf.add(y, delta) as tf.Tensor2D;
    const after = adapters?.outputDelta?.(this.path, y, training);
    return after ? (tf.add(y, after) as tf.Tensor2D) : y;
  }
}
