// The vocabulary-sharded embedding and head (models/lm-head.ts VocabShards, the head kernels given row
// shards): with a forced tiny largest-tensor size the [V, C] table is cut into many shards, and the
// lookup, the logits, the chunked loss with its gradients (frozen and trained shards) and scoring's
// log-probabilities and argmax equal the unsharded ones within 1e-5. The limit is the test-only
// constructor parameter, not the backend's.
import { describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { headCrossEntropy, headCrossEntropySum, headTargetLogProbs } from '../../src-worker/kernels/head-cross-entropy.ts';
import { headProduct, headShards, vocabShardRows } from '../../src-worker/kernels/head-product.ts';
import { LMHead, VocabShards } from '../../src-worker/models/lm-head.ts';
import { tf } from '../../src-worker/tf.ts';
import { testBackends, valuesOf } from '../helpers/backends.ts';

const N = 11;
const C = 6;
const V = 29;
/** 5 rows of 6 floats: shards of 5, 5, 5, 5, 5, 4 rows. */
const MAX_BYTES = 5 * C * 4;

function inputs() {
  const h = tf.tensor2d(
    Float32Array.from({ length: N * C }, (_, i) => Math.sin(i * 1.7) * 1.5),
    [N, C],
  );
  const table = Float32Array.from({ length: V * C }, (_, i) => Math.cos(i * 0.37) * 0.8);
  // Targets in every shard, the first and last rows included.
  const targets = Int32Array.from({ length: N }, (_, i) => (i === 0 ? 0 : i === 1 ? V - 1 : (i * 7 + 3) % V));
  const weights = Float32Array.from({ length: N }, (_, i) => (i === 4 ? 0 : (1 + (i % 3)) / 17));
  return { h, table, targets, weights };
}

async function expectClose(a: tf.Tensor, b: tf.Tensor, tol = 1e-5): Promise<void> {
  const [x, y] = [await valuesOf(a), await valuesOf(b)];
  expect(x.length).toBe(y.length);
  let worst = 0;
  for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  expect(worst).toBeLessThan(tol);
}

describe('vocabShardRows', () => {
  it('keeps a table that fits whole and balances the shards of one that does not', () => {
    expect(vocabShardRows(50257, 768, null)).toBe(50257);
    expect(vocabShardRows(50257, 768, 200 * 2 ** 20)).toBe(50257);
    // GPT-2 at Dawn's 128 MiB binding: two shards of 77 MB.
    expect(vocabShardRows(50257, 768, 128 * 2 ** 20)).toBe(25129);
    // Qwen2.5-0.5B's 544 MB table: five shards.
    expect(Math.ceil(151936 / vocabShardRows(151936, 896, 128 * 2 ** 20))).toBe(5);
    expect(() => vocabShardRows(10, 768, 100)).toThrow(/one row of the head/);
  });
});

describe.each(testBackends(['cpu', 'wasm']))('vocabulary shards on %s', (backend) => {
  it(`sharded lookup, logits, chunked loss and gradients equal the unsharded ones within 1e-5, on ${backend}`, async () => {
    await initBackend(backend);
    const { h, table, targets, weights } = inputs();
    const whole = tf.tensor2d(table, [V, C]);
    const sharded = new VocabShards(tf.tensor2d(table, [V, C]), MAX_BYTES);
    const shards = headShards(sharded.weight);
    expect(shards.map((s) => s.shape[0])).toEqual([5, 5, 5, 5, 5, 4]);

    const ids = tf.tensor1d(
      Int32Array.from({ length: 17 }, (_, i) => (i * 11) % V),
      'int32',
    );
    await expectClose(sharded.lookup(ids), tf.gather(whole, ids));

    const r = tf.tensor2d(
      Float32Array.from({ length: N * V }, (_, i) => Math.sin(i * 0.3)),
      [N, V],
    );
    const product = (w: typeof sharded.weight) => (a: tf.Tensor) => tf.sum(tf.mul(headProduct(a as tf.Tensor2D, w), r)) as tf.Scalar;
    await expectClose(headProduct(h, shards), headProduct(h, whole));
    await expectClose(tf.grad(product(shards))(h), tf.grad(product(whole))(h));

    for (const chunkTokens of [1, 4, N]) {
      const t = { targets, weights };
      await expectClose(headCrossEntropySum(h, shards, t, chunkTokens), headCrossEntropySum(h, whole, t, chunkTokens));
      const frozen = tf.valueAndGrad((a: tf.Tensor) => headCrossEntropy(a as tf.Tensor2D, shards, t, chunkTokens))(h);
      const reference = tf.valueAndGrad((a: tf.Tensor) => headCrossEntropy(a as tf.Tensor2D, whole, t, chunkTokens))(h);
      await expectClose(frozen.value, reference.value);
      await expectClose(frozen.grad, reference.grad);
    }

    // Trained shards (variables): each gets its rows of the whole table's gradient.
    const wholeVar = tf.variable(whole, true, `shards-whole-${backend}`);
    const shardVars = shards.map((s, i) => tf.variable(s, true, `shards-${i}-${backend}`));
    const t = { targets, weights };
    const wholeGrads = tf.variableGrads(() => headCrossEntropy(h, wholeVar, t, 4), [wholeVar]);
    const shardGrads = tf.variableGrads(() => headCrossEntropy(h, shardVars, t, 4), shardVars);
    await expectClose(shardGrads.value, wholeGrads.value);
    await expectClose(tf.concat(shardVars.map((v) => shardGrads.grads[v.name]!)), wholeGrads.grads[wholeVar.name]!);
    tf.dispose([wholeVar, ...shardVars]);

    const scored = headTargetLogProbs(h, shards, targets, 3);
    const expected = headTargetLogProbs(h, whole, targets, 3);
    await expectClose(scored.logProbs, expected.logProbs);
    expect(Array.from(await scored.argmax.data())).toEqual(Array.from(await expected.argmax.data()));
    sharded.dispose();
  });

  it(`LMHead shards a tied table and an untied head under a small limit and refuses a trained table over it, on ${backend}`, async () => {
    await initBackend(backend);
    const { h, table } = inputs();
    const head = new LMHead(
      'wte',
      tf.tensor2d(table, [V, C]),
      tf.tensor2d(
        table.map((x) => -x),
        [V, C],
      ),
      MAX_BYTES,
    );
    expect(headShards(head.weight(null))).toHaveLength(6);
    await expectClose(
      head.logits(h, null),
      tf.matMul(
        h,
        tf.tensor2d(
          table.map((x) => -x),
          [V, C],
        ),
        false,
        true,
      ),
    );
    const ids = tf.tensor1d([0, 4, 5, 28, 13], 'int32');
    await expectClose(head.lookup(ids, null), tf.gather(tf.tensor2d(table, [V, C]), ids));
    // The same head without a limit: one tensor, the table itself (wasm's and cpu's path).
    const unlimited = new LMHead('wte', tf.tensor2d(table, [V, C]), null, null);
    expect(headShards(unlimited.weight(null))).toHaveLength(1);
    // Full fine-tuning's trained table is held whole: over the limit it is refused with what to do.
    const trained = tf.variable(tf.tensor2d(table, [V, C]), true, `lm-head-trained-${backend}`);
    const hooks = { delta: () => null, parameter: (key: string) => (key === 'wte' ? trained : null) };
    const tied = new LMHead('wte', tf.tensor2d(table, [V, C]), null, MAX_BYTES);
    expect(() => tied.lookup(ids, hooks)).toThrow(WorkbenchError);
    expect(() => tied.weight(hooks)).toThrow(/over this backend's largest tensor .*trainEmbeddings false/);
    trained.dispose();
    head.dispose();
    tied.dispose();
  });
});
