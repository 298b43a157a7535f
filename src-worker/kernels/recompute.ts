// Activation recomputation (gradient checkpointing) per transformer block: the forward keeps only the
// block's input on the gradient tape; the backward runs the block again under its own tape and
// differentiates that. A training step then holds one block's activations at a time instead of every
// block's, for one more forward pass of compute (Chen et al. 2016, "Training Deep Nets with Sublinear
// Memory Cost"; what transformers' gradient_checkpointing_enable does).
//
// tfjs's customGrad runs its forward with the tape off, and its gradient function gets only the
// gradients of its explicit inputs: so the trainable variables are passed as inputs, and the backward
// differentiates the block with respect to the input and to each of them. A block that does not use a
// variable gives it a zero gradient.
//
// Dropout in an adapter draws a new mask in the recomputed pass: the gradient is then that of a
// second draw of the mask, still an unbiased estimate of the dropout objective's gradient, but not
// the gradient of the very loss the forward reported (PyTorch restores the RNG state to avoid this;
// tfjs's dropout has no seedable state to restore). With dropout 0 both are equal (test).
import { tf } from '../tf.ts';

type EngineState = { state: { activeTape: unknown } };

/**
 * block(x) with its activations recomputed in the backward pass. `variables`: every trainable tensor
 * the block may read (the adapter's variables); the gradients of those it does not read are zeros.
 * `constants`: tensors the block reads that its caller's tidy frees after the forward (Llama's RoPE
 * tables): kept until the backward and handed to the block again there.
 */
export function recomputed(
  block: (x: tf.Tensor2D, constants: tf.Tensor[]) => tf.Tensor2D,
  x: tf.Tensor2D,
  variables: readonly tf.Variable[],
  constants: tf.Tensor[] = [],
): tf.Tensor2D {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor2D;
    const save = args[args.length - 1] as tf.GradSaveFunc;
    save([input, ...constants]);
    return {
      value: block(input, constants),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ...kept] = saved as [tf.Tensor2D, ...tf.Tensor[]];
        const engine = tf.engine() as unknown as EngineState & {
          gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor, allowNoGradients: boolean): { value: tf.Tensor; grads: (tf.Tensor | undefined)[] };
        };
        // The outer backward pass is walking its own tape, which a nested gradients() would replace
        // and then clear (engine.ts keeps one active tape): keep it aside and put it back.
        const outerTape = engine.state.activeTape;
        try {
          const { value, grads } = engine.gradients(() => block(xs, kept), [xs, ...variables], dy, true);
          value.dispose();
          return grads.map((g, i) => g ?? tf.zerosLike(i === 0 ? xs : variables[i - 1]!));
        } finally {
          engine.state.activeTape = outerTape;
        }
      },
    };
  });
  return f(x, ...variables) as tf.Tensor2D;
}
