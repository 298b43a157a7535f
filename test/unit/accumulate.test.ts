// Gradient accumulation (train/accumulate.ts) and activation recomputation (kernels/recompute.ts): a step
// over micro-batches, recomputed or not, equals the step over the whole batch (loss, gradient norm,
// adapter after AdamW), and all equal the unchunked reference (full logits,
// train/loss.ts) in loss and gradients, on the GPT-2 and Qwen2 fixtures, with rows of unequal target counts.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LoraSettingsSchema } from '../../src-shared/config.ts';
import { initBackend } from '../../src-worker/backend.ts';
import type { Batch } from '../../src-worker/data/batcher.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { lora } from '../../src-worker/methods/lora.ts';
import { tf } from '../../src-worker/tf.ts';
import { AdamW } from '../../src-worker/train/adamw.ts';
import { microBatchRanges, trainStep } from '../../src-worker/train/accumulate.ts';
import { causalLMLoss } from '../../src-worker/train/loss.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');

async function setup(name: string, targetModules: string[]) {
  await initBackend('cpu');
  const dir = path.join(fixtures, name);
  const { input_ids: rows } = JSON.parse(fs.readFileSync(path.join(dir, 'logits.json'), 'utf-8')) as { input_ids: number[][] };
  const model = await loadCausalLM(dir);
  const adapter = lora.create(model, LoraSettingsSchema.parse({ r: 4, alpha: 8, dropout: 0, targetModules }), 5);
  // Non-zero lora_B so that every gradient is non-zero.
  const state = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [k, t] of adapter.stateDict()) {
    state.set(k, { shape: t.shape, data: Float32Array.from(t.dataSync(), (v, i) => (k.includes('lora_B') ? 0.2 * Math.cos(3 * i + k.length) : v)) });
    t.dispose();
  }
  adapter.loadStateDict(state);
  const [B, T] = [rows.length, rows[0]!.length];
  // Rows score different numbers of tokens (a prompt of 1 + row tokens), so micro-batches hold unequal shares.
  const lossMask = Float32Array.from({ length: B * T }, (_, i) => (i % T <= 1 + Math.floor(i / T) ? 0 : 1));
  const batch: Batch = { inputIds: Int32Array.from(rows.flat()), lossMask, batchSize: B, seqLen: T, tokenCount: B * T };
  const initial = state;
  return { model, adapter, batch, initial };
}

const CASES = [
  { name: 'gpt2-tiny', targetModules: ['c_attn', 'c_proj'] },
  { name: 'llama-tiny-qwen2', targetModules: ['q_proj', 'v_proj', 'down_proj'] },
];

afterAll(() => tf.disposeVariables());

describe('microBatchRanges', () => {
  it('splits rows into passes of at most the micro-batch size, the last one shorter', () => {
    expect(microBatchRanges(8, 3)).toEqual([
      [0, 3],
      [3, 6],
      [6, 8],
    ]);
    expect(microBatchRanges(4, null)).toEqual([[0, 4]]);
    expect(microBatchRanges(4, 99)).toEqual([[0, 4]]);
  });
});

describe.each(CASES)('gradient accumulation on $name', ({ name, targetModules }) => {
  it('micro-batches, with or without recomputation, give the whole batch loss, gradients and update; all equal the unchunked loss', async () => {
    const { model, adapter, batch, initial } = await setup(name, targetModules);
    const params = adapter.trainable();
    const variables = params.map((p) => p.variable);
    const nameOf = new Map(params.map((p) => [p.variable.name, p.name]));

    // Reference: full logits and train/loss.ts over the whole batch.
    const ids = tf.tensor2d(batch.inputIds, [batch.batchSize, batch.seqLen], 'int32');
    const mask = tf.tensor2d(batch.lossMask, [batch.batchSize, batch.seqLen]);
    const ref = tf.variableGrads(() => causalLMLoss(model.forward(ids, { adapters: adapter, training: true }), ids, mask), variables);
    const refLoss = ref.value.dataSync()[0]!;
    let refNormSq = 0;
    for (const g of Object.values(ref.grads)) refNormSq += tf.sum(tf.square(g)).dataSync()[0]!;

    const results: { loss: number; gradNorm: number; after: Map<string, Float32Array> }[] = [];
    // The last run also recomputes every block's activations in the backward pass (kernels/recompute.ts).
    for (const { microBatchSize, recompute } of [
      { microBatchSize: null, recompute: false },
      { microBatchSize: 1, recompute: false },
      { microBatchSize: 2, recompute: false },
      { microBatchSize: 3, recompute: true },
    ]) {
      adapter.loadStateDict(initial);
      const optimizer = new AdamW([{ name: 'all', lr: 1e-2, weightDecay: 0, params: params.map(({ name: n, variable }) => ({ name: n, variable })) }]);
      // A clip far above the norm: the update shows the unclipped gradients.
      const r = await trainStep(model, adapter, optimizer, batch, 1e6, nameOf, variables, 1, undefined, { microBatchSize, recompute, logitsChunkTokens: 5 });
      results.push({ ...r, after: new Map(params.map((p) => [p.name, p.variable.dataSync() as Float32Array])) });
      optimizer.dispose();
    }
    for (const r of results) {
      expect(Math.abs(r.loss - refLoss)).toBeLessThan(1e-5);
      expect(Math.abs(r.gradNorm - Math.sqrt(refNormSq)) / Math.sqrt(refNormSq)).toBeLessThan(1e-5);
      for (const [key, values] of r.after) {
        const whole = results[0]!.after.get(key)!;
        for (let i = 0; i < values.length; i++) expect(Math.abs(values[i]! - whole[i]!)).toBeLessThan(1e-6);
      }
    }
    tf.dispose([ids, mask, ref.value, ...Object.values(ref.grads)]);
    adapter.dispose();
    model.dispose();
  });
});
