// LayerNorm (Ba et al. 2016) over the last axis, as torch.nn.LayerNorm: GPT-2 and BERT share it.
import { tf } from '../tf.ts';

export class LayerNorm {
  constructor(
    readonly weight: tf.Tensor1D,
    readonly bias: tf.Tensor1D,
    readonly eps: number,
  ) {}

  apply(x: tf.Tensor2D): tf.Tensor2D {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.eps))), this.weight), this.bias);
  }
}
