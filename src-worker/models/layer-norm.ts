// LayerNorm (Ba et al. 2016) over the last axis, as torch.nn.LayerNorm: GPT-2 and BERT share it.
import { tf } from '../tf.ts';
import type { AdapterHooks } from './types.ts';

export class LayerNorm {
  constructor(
    readonly weight: tf.Tensor1D,
    readonly bias: tf.Tensor1D,
    readonly eps: number,
    /** Module path (transformer.h.0.ln_1): names its parameters for methods that train them. */
    readonly path = '',
  ) {}

  apply(x: tf.Tensor2D, hooks?: AdapterHooks | null): tf.Tensor2D {
    const weight = (hooks?.parameter?.(`${this.path}.weight`) as tf.Tensor1D | null | undefined) ?? this.weight;
    const bias = (hooks?.parameter?.(`${this.path}.bias`) as tf.Tensor1D | null | undefined) ?? this.bias;
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.eps))), weight), bias);
  }
}
