// The fused, chunked LM head + cross-entropy (kernels/head-cross-entropy.ts) against the unchunked
// head (h W^T) and train/loss.ts's cross-entropy, in values and in gradients with respect to the hidden
// states and a trained head, on cpu and wasm, with chunks that do and do not divide the token count.
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../src-worker/backend.ts';
import { headCrossEntropy, headCrossEntropySum, headTargetLogProbs } from '../../src-worker/kernels/head-cross-entropy.ts';
import { headProduct } from '../../src-worker/kernels/head-product.ts';
import { tf } from '../../src-worker/tf.ts';
import { testBackends, valuesOf } from '../helpers/backends.ts';

const N = 10;
const C = 6;
const V = 13;

function inputs() {
  const h = tf.tensor2d(
    Float32Array.from({ length: N * C }, (_, i) => Math.sin(i * 1.7) * 1.5),
    [N, C],
  );
  const w = tf.tensor2d(
    Float32Array.from({ length: V * C }, (_, i) => Math.cos(i * 0.37) * 0.8),
    [V, C],
  );
  const targets = Int32Array.from({ length: N }, (_, i) => (i * 5 + 3) % V);
  // Two unscored positions, the rest weighted unevenly, as shifted loss masks over a token count are.
  const weights = Float32Array.from({ length: N }, (_, i) => (i === 2 || i === 7 ? 0 : (1 + (i % 3)) / 17));
  return { h, w, targets, weights };
}

/** The unchunked reference: full logits, log-softmax, the weighted sum of the targets' -log p. */
function reference(h: tf.Tensor2D, w: tf.Tensor2D, targets: Int32Array, weights: Float32Array): tf.Scalar {
  const logp = tf.logSoftmax(tf.matMul(h, w, false, true));
  const onehot = tf.cast(tf.oneHot(tf.tensor1d(targets, 'int32'), V), 'float32');
  return tf.neg(tf.sum(tf.mul(tf.sum(tf.mul(logp, onehot), 1), tf.tensor1d(weights)))) as tf.Scalar;
}

async function expectClose(a: tf.Tensor, b: tf.Tensor, tol: number): Promise<void> {
  const [x, y] = [await valuesOf(a), await valuesOf(b)];
  expect(x.length).toBe(y.length);
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  expect(worst).toBeLessThan(tol);
}

describe.each(testBackends(['cpu', 'wasm']))('head cross-entropy on %s', (backend) => {
  it(`chunked head + loss equal the unchunked ones within 1e-5, values and gradients, on ${backend}`, async () => {
    await initBackend(backend);
    const { h, w, targets, weights } = inputs();
    const wVar = tf.variable(w, true, `head-ce-${backend}`);
    const expected = reference(h, w, targets, weights);
    const [dhRef, dwRef] = tf.grads((a: tf.Tensor, b: tf.Tensor) => reference(a as tf.Tensor2D, b as tf.Tensor2D, targets, weights))([h, w]);
    for (const chunkTokens of [1, 3, 4, N, 64]) {
      await expectClose(headCrossEntropySum(h, w, { targets, weights }, chunkTokens), expected, 1e-5);
      // Frozen head: the gradient goes to h only.
      const frozen = tf.valueAndGrad((a: tf.Tensor) => headCrossEntropy(a as tf.Tensor2D, w, { targets, weights }, chunkTokens))(h);
      await expectClose(frozen.value, expected, 1e-5);
      await expectClose(frozen.grad, dhRef!, 1e-5);
      // Trained head (full fine-tuning of the embedding): both gradients.
      const trained = tf.variableGrads(() => headCrossEntropy(h, wVar, { targets, weights }, chunkTokens), [wVar]);
      await expectClose(trained.value, expected, 1e-5);
      await expectClose(trained.grads[wVar.name]!, dwRef!, 1e-5);
    }
    wVar.dispose();
  });

  it(`headTargetLogProbs gives each row's target log-probability and argmax in chunks, on ${backend}`, async () => {
    await initBackend(backend);
    const { h, w, targets } = inputs();
    const logp = tf.logSoftmax(tf.matMul(h, w, false, true));
    const expected = tf.sum(tf.mul(logp, tf.cast(tf.oneHot(tf.tensor1d(targets, 'int32'), V), 'float32')), 1);
    for (const chunkTokens of [1, 3, 64]) {
      const { logProbs, argmax } = headTargetLogProbs(h, w, targets, chunkTokens);
      await expectClose(logProbs, expected, 1e-5);
      expect(Array.from(await argmax.data())).toEqual(Array.from(await tf.argMax(logp, 1).data()));
    }
  });

  it(`headProduct equals h W^T with gradients to h and a trained W, on ${backend}`, async () => {
    await initBackend(backend);
    const { h, w } = inputs();
    const r = tf.tensor2d(
      Float32Array.from({ length: N * V }, (_, i) => Math.sin(i * 0.3)),
      [N, V],
    );
    const loss = (logits: tf.Tensor) => tf.sum(tf.mul(logits, r)) as tf.Scalar;
    await expectClose(headProduct(h, w), tf.matMul(h, w, false, true), 1e-5);
    const [dhRef, dwRef] = tf.grads((a: tf.Tensor, b: tf.Tensor) => loss(tf.matMul(a, b, false, true)))([h, w]);
    await expectClose(tf.grad((a: tf.Tensor) => loss(headProduct(a as tf.Tensor2D, w)))(h), dhRef!, 1e-5);
    const wVar = tf.variable(w, true, `head-product-${backend}`);
    const { grads } = tf.variableGrads(() => loss(headProduct(h, wVar)), [wVar]);
    await expectClose(grads[wVar.name]!, dwRef!, 1e-5);
    wVar.dispose();
  });

  it(`makes no [N, V] tensor larger than a chunk's, on ${backend}`, async () => {
    await initBackend(backend);
    const { h, w, targets, weights } = inputs();
    // Every kernel output of the fused loss with 2-token chunks stays under 2 x V floats, the [N, C]
    // gradient or a per-call copy of (a vocabulary slice of) W [V, C] (wasm, kernels/head-product.ts): never N x V.
    const profile = await tf.profile(() => {
      const { value, grad } = tf.valueAndGrad((a: tf.Tensor) => headCrossEntropy(a as tf.Tensor2D, w, { targets, weights }, 2))(h);
      return [value, grad];
    });
    const largest = Math.max(
      ...profile.kernels.map((k) =>
        (Array.isArray(k.outputShapes) ? k.outputShapes : []).reduce(
          (m, s) =>
            Math.max(
              m,
              (s as number[]).reduce((p, d) => p * d, 1),
            ),
          0,
        ),
      ),
    );
    expect(largest).toBeLessThanOrEqual(Math.max(2 * V, N * C, V * C));
    expect(largest).toBeLessThan(N * V);
  });
});
