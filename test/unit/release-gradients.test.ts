// kernels/release-gradients.ts: a backward pass that frees each node's gradients and saved tensors once
// it is past them gives the same loss and gradients as tfjs's own, at a lower peak, leaks nothing, and
// survives gradients that pass their dy through (customGrad) and recomputed blocks.
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LoraSettingsSchema } from '../../src-shared/config.ts';
import { initBackend } from '../../src-worker/backend.ts';
import type { Batch } from '../../src-worker/data/batcher.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { setGradientRelease } from '../../src-worker/kernels/release-gradients.ts';
import { lora } from '../../src-worker/methods/lora.ts';
import { tf } from '../../src-worker/tf.ts';
import { causalLossTerm, shiftedTargets } from '../../src-worker/train/causal-loss.ts';

afterAll(() => {
  setGradientRelease(true);
  tf.disposeVariables();
});

async function step(name: string, targetModules: string[], recompute: boolean) {
  await initBackend('cpu');
  const model = await loadCausalLM(path.join(import.meta.dirname, '..', 'fixtures', name));
  const adapter = lora.create(model, LoraSettingsSchema.parse({ r: 4, alpha: 8, dropout: 0, targetModules }), 3);
  const variables = adapter.trainable().map((p) => p.variable);
  const [B, T] = [3, 24];
  const inputIds = Int32Array.from({ length: B * T }, (_, i) => (i * 37 + 11) % 200);
  const batch: Batch = { inputIds, lossMask: new Float32Array(B * T).fill(1), batchSize: B, seqLen: T, tokenCount: B * T };
  const run = async () => {
    let grads: Record<string, Float32Array> = {};
    let loss = 0;
    const before = tf.memory().numTensors;
    const profile = await tf.profile(() => {
      const ids = tf.tensor2d(inputIds, [B, T], 'int32');
      const mask = tf.tensor2d(batch.lossMask, [B, T]);
      const result = tf.variableGrads(
        () =>
          causalLossTerm(
            model,
            ids,
            mask,
            shiftedTargets(batch, 0, B, B * (T - 1)),
            { adapters: adapter, training: true, recompute: recompute ? variables : null },
            7,
          ).loss,
        variables,
      );
      loss = result.value.dataSync()[0]!;
      grads = Object.fromEntries(Object.entries(result.grads).map(([k, g]) => [k, g.dataSync().slice() as Float32Array]));
      tf.dispose([ids, mask, result.value, ...Object.values(result.grads)]);
    });
    return { loss, grads, leaked: tf.memory().numTensors - before, peak: profile.peakBytes };
  };
  // A first step makes the model's lazily built constants (the causal mask, the head's copies): not a leak.
  await run();
  setGradientRelease(false);
  const reference = await run();
  setGradientRelease(true);
  const released = await run();
  adapter.dispose();
  model.dispose();
  return { reference, released, referencePeak: reference.peak };
}

describe.each([
  { name: 'gpt2-tiny', targets: ['c_attn', 'c_proj'] },
  { name: 'llama-tiny', targets: ['q_proj', 'v_proj'] },
])('the released backward pass on $name', ({ name, targets }) => {
  it.each([false, true])('equals tfjs own loss and gradients exactly, at a lower peak, leaking nothing (recompute %s)', async (recompute) => {
    const { reference, released, referencePeak } = await step(name, targets, recompute);
    expect(released.loss).toBe(reference.loss);
    expect(Object.keys(released.grads)).toEqual(Object.keys(reference.grads));
    for (const [k, g] of Object.entries(reference.grads)) expect(released.grads[k]).toEqual(g);
    expect(released.leaked).toBe(0);
    expect(reference.leaked).toBe(0);
    expect(released.peak).toBeLessThan(0.9 * referencePeak);
  });
});

describe('gradients that pass a tensor through', () => {
  it('a customGrad returning its dy for two inputs, and a saved tensor as a gradient, still differentiate', async () => {
    await initBackend('cpu');
    const passThrough = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [a, b, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
      save([a]);
      return { value: tf.add(a, b), gradFunc: (dy: tf.Tensor) => [dy, dy] };
    });
    const savedAsGradient = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [a, save] = args as [tf.Tensor, tf.GradSaveFunc];
      const twice = tf.mul(a, 2);
      save([twice]);
      return { value: tf.mul(a, a), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.mul(dy, saved[0]!)] };
    });
    const x = tf.variable(tf.tensor1d([1, 2, 3]));
    const y = tf.variable(tf.tensor1d([4, 5, 6]));
    const { value, grads } = tf.variableGrads(
      () => tf.sum(tf.mul(passThrough(savedAsGradient(x), tf.mul(y, 3)), tf.tensor1d([1, 10, 100]))) as tf.Scalar,
      [x, y],
    );
    expect(value.dataSync()[0]).toBe(1 + 12 + 10 * (4 + 15) + 100 * (9 + 18));
    expect(Array.from(grads[x.name]!.dataSync())).toEqual([2, 40, 600]);
    expect(Array.from(grads[y.name]!.dataSync())).toEqual([3, 30, 300]);
    tf.dispose([value, ...Object.values(grads), x, y]);
  });
});
