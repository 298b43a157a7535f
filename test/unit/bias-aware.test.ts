// Bias-aware LoRA (METHODS.md section 4): the embedding-offset hook of both families, equality with
// LoRA at l1 = l3 = 0, L_KL and L_bias against brute force, finite-difference gradients through the
// full loss, the adversary's ascent step, and a short run through runTraining with export verification.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BiasAwareSettingsSchema, LoraSettingsSchema, type BiasAwareSettings } from '../../src-shared/config.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { collate } from '../../src-worker/data/batcher.ts';
import { ADAPTER_CONFIG_FILE, SIDECAR_FILE } from '../../src-worker/formats/adapter-folder.ts';
import { BiasAwareModel } from '../../src-worker/methods/bias-aware.ts';
import { LoraModel } from '../../src-worker/methods/lora.ts';
import type { AdapterModel } from '../../src-worker/methods/types.ts';
import { createGPT2, randomGPT2Weights, type GPT2Config } from '../../src-worker/models/gpt2.ts';
import { createLlama, randomLlamaWeights } from '../../src-worker/models/llama.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { tf } from '../../src-worker/tf.ts';
import { AdamW } from '../../src-worker/train/adamw.ts';
import { causalLMLoss } from '../../src-worker/train/loss.ts';
import { trainStep } from '../../src-worker/train/loop.ts';
import { checkGradients } from '../helpers/finite-differences.ts';
import { tinyGPT2, tinyLlama } from './baseline-models.ts';
import { mean, tempRoot, trainTiny } from './method-run.ts';

// Eight positions are enough for these rows.
const tiny: GPT2Config = { ...tinyGPT2, nPositions: 8 };
const root = tempRoot('lw-bias-aware-');
const examples = [
  { inputIds: [1, 5, 9, 2, 7, 3], lossMask: [0, 0, 0, 1, 1, 1], promptLength: 3, truncated: false },
  { inputIds: [4, 4, 0, 23, 11, 6], lossMask: [0, 0, 0, 0, 1, 1], promptLength: 4, truncated: false },
  { inputIds: [1, 6, 9, 3, 3, 3], lossMask: [0, 0, 0, 1, 1, 1], promptLength: 3, truncated: false },
];
const prompts = examples.map((e) => e.inputIds.slice(0, e.promptLength));
const batch = collate(examples, 0, 6);

const loraSettings = LoraSettingsSchema.parse({ r: 2, alpha: 4, dropout: 0, targetModules: ['c_attn', 'c_fc'] });
const make = (model: CausalLM, over: Partial<BiasAwareSettings> = {}) =>
  new BiasAwareModel(model, BiasAwareSettingsSchema.parse({ lambdaBias: 0.5, lambdaKl: 0.7, ...over }), loraSettings, 3);

function randomizeB(adapter: AdapterModel, seed: number): void {
  for (const p of adapter.trainable()) if (p.group === 'lora_B') p.variable.assign(tf.randomUniform(p.variable.shape, -0.5, 0.5, 'float32', seed++));
}

/** Mean-pooled final hidden state of one unpadded row, with the adapter on. */
function pooledOne(model: CausalLM, adapter: AdapterModel | null, row: number[]): number[] {
  const h = tf.tidy(() => model.hiddenStates(tf.tensor2d([row], undefined, 'int32'), { adapters: adapter }).arraySync() as number[][][])[0]!;
  return h[0]!.map((_, c) => mean(h.map((t) => t[c]!)));
}

const ids2d = () => tf.tensor2d(batch.inputIds, [batch.batchSize, batch.seqLen], 'int32');
const mask2d = () => tf.tensor2d(batch.lossMask, [batch.batchSize, batch.seqLen]);

/** The optimized loss, as trainStep builds it. */
function totalLoss(model: CausalLM, adapter: BiasAwareModel): tf.Scalar {
  return tf.tidy(() => {
    const inputIds = ids2d();
    const lossMask = mask2d();
    const logits = model.forward(inputIds, { adapters: adapter, training: true });
    let total = causalLMLoss(logits, inputIds, lossMask);
    for (const t of adapter.regularizers({ inputIds, lossMask, logits })) total = tf.add(total, tf.mul(t.value, t.weight));
    return total;
  });
}

function term(adapter: BiasAwareModel, model: CausalLM, name: string): number {
  return tf.tidy(() => {
    const inputIds = ids2d();
    const lossMask = mask2d();
    const logits = model.forward(inputIds, { adapters: adapter });
    return adapter
      .regularizers({ inputIds, lossMask, logits })
      .find((t) => t.name === name)!
      .value.dataSync()[0]!;
  });
}

beforeAll(async () => {
  await initBackend('cpu');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('inputEmbeddingOffset', () => {
  it('equals shifting every token embedding by the offset (GPT-2 and Llama)', () => {
    const offset = Float32Array.from({ length: 16 }, (_, i) => Math.sin(i + 1) * 0.3);
    const cases: [
      Map<string, { shape: number[]; data: Float32Array }>,
      string,
      (w: Map<string, { shape: number[]; data: Float32Array }>) => CausalLM,
      number,
    ][] = [
      [randomGPT2Weights(tiny, 1, 0.2), 'transformer.wte.weight', (w) => createGPT2(tiny, w), 8],
      [randomLlamaWeights(tinyLlama, 2, 0.2), 'model.embed_tokens.weight', (w) => createLlama(tinyLlama, w), 16],
    ];
    for (const [weights, key, create, C] of cases) {
      const model = create(weights);
      const wte = weights.get(key)!;
      const shifted = new Map(weights);
      shifted.set(key, { shape: wte.shape, data: wte.data.map((v, i) => v + offset[i % C]!) });
      const reference = create(shifted);
      // Hidden states, not logits: GPT-2's head is the (here shifted) embedding matrix itself.
      const got = tf.tidy(() => model.hiddenStates(ids2d(), { inputEmbeddingOffset: tf.tensor1d(offset.slice(0, C)) }).dataSync());
      const want = tf.tidy(() => reference.hiddenStates(ids2d()).dataSync());
      const plain = tf.tidy(() => model.hiddenStates(ids2d()).dataSync());
      for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 4);
      expect(Math.max(...plain.map((v, i) => Math.abs(v - want[i]!)))).toBeGreaterThan(1e-3);
      model.dispose();
      reference.dispose();
    }
  });
});

describe('bias-aware LoRA', () => {
  it('with l1 = l3 = 0 trains exactly as LoRA', async () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 7, 0.2));
    const losses = async (adapter: AdapterModel) => {
      const trainable = adapter.trainable();
      const optimizer = new AdamW(['lora_A', 'lora_B'].map((g) => ({ name: g, lr: 0.05, weightDecay: 0, params: trainable.filter((p) => p.group === g) })));
      const nameOf = new Map(trainable.map((p) => [p.variable.name, p.name]));
      const out: number[] = [];
      for (let step = 1; step <= 4; step++)
        out.push(
          (
            await trainStep(
              model,
              adapter,
              optimizer,
              batch,
              1,
              nameOf,
              trainable.map((p) => p.variable),
              step,
              prompts,
            )
          ).loss,
        );
      optimizer.dispose();
      adapter.dispose();
      return out;
    };
    const plain = await losses(new LoraModel(model, loraSettings, 3));
    const biased = make(model, { lambdaBias: 0, lambdaKl: 0 });
    biased.setCounterfactual(prompts[0]!, [2, 5, 9]);
    const got = await losses(biased);
    expect(got).toEqual(plain);
    expect(got[3]).toBeLessThan(got[0]!);
    model.dispose();
  });

  it('L_KL is 0 at B = 0 and equals the brute-force KL of the two softmaxes after B changes', () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 8, 0.2));
    const adapter = make(model);
    adapter.prepare(model, prompts);
    expect(term(adapter, model, 'kl')).toBe(0);
    randomizeB(adapter, 11);
    const kl = term(adapter, model, 'kl');
    expect(kl).toBeGreaterThan(1e-4);
    const [T, V] = [batch.seqLen, tiny.vocabSize];
    const p = tf.tidy(() => model.forward(ids2d(), { adapters: adapter }).dataSync() as Float32Array);
    const q = tf.tidy(() => model.forward(ids2d()).dataSync() as Float32Array);
    const softmax = (x: Float32Array, at: number) => {
      const row = [...x.slice(at, at + V)];
      const m = Math.max(...row);
      const e = row.map((v) => Math.exp(v - m));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / s);
    };
    let sum = 0;
    let count = 0;
    for (let b = 0; b < batch.batchSize; b++) {
      for (let t = 0; t + 1 < T; t++) {
        if (batch.lossMask[b * T + t + 1] !== 1) continue;
        const pp = softmax(p, (b * T + t) * V);
        const qq = softmax(q, (b * T + t) * V);
        sum += pp.reduce((a, pv, v) => a + pv * Math.log(pv / qq[v]!), 0);
        count++;
      }
    }
    expect(kl).toBeCloseTo(sum / count, 5);
    adapter.dispose();
    model.dispose();
  });

  it('L_bias (counterfactual) equals the brute-force batch mean, rows without a counterfactual counting 0', () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 9, 0.2));
    const adapter = make(model);
    randomizeB(adapter, 21);
    const counterfactuals = new Map([
      [0, [2, 5, 9, 9]],
      [2, [1, 7]],
    ]);
    for (const [i, cf] of counterfactuals) adapter.setCounterfactual(prompts[i]!, cf);
    adapter.setCounterfactual(prompts[1]!, null);
    adapter.prepare(model, prompts);
    let want = 0;
    for (const [i, cf] of counterfactuals) {
      const a = pooledOne(model, adapter, cf);
      const b = pooledOne(model, adapter, prompts[i]!);
      want += a.reduce((s, v, c) => s + (v - b[c]!) ** 2, 0);
    }
    want /= prompts.length;
    expect(want).toBeGreaterThan(1e-4);
    expect(term(adapter, model, 'bias')).toBeCloseTo(want, 5);
    expect(term(adapter, model, 'bias_counterfactuals')).toBe(2);
    adapter.dispose();
    model.dispose();
  });

  it('builds counterfactuals with the demographic swap of the evaluation', () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 9, 0.2));
    const adapter = make(model);
    const vocab = ['she', 'he', ' said', ' hello', 'The', ' cat', ' sat'];
    const tokenizer = {
      encode: (text: string) => text.split(/(?=\s)/).map((w) => vocab.indexOf(w)),
      decode: (ids: number[]) => ids.map((i) => vocab[i]).join(''),
      eosTokenId: 0,
      padTokenId: 0,
      vocabSize: vocab.length,
    };
    adapter.fit(
      model,
      [
        [0, 2, 3],
        [4, 5, 6],
      ],
      tokenizer,
    );
    expect(adapter.counterfactualOf([0, 2, 3])).toEqual([1, 2, 3]);
    expect(adapter.counterfactualOf([4, 5, 6])).toBeNull();
    adapter.dispose();
    model.dispose();
  });

  it('has gradients through L_task + l1 L_bias + l3 L_KL that match finite differences', () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 10, 0.2));
    const adapter = make(model, { lambdaBias: 2, lambdaKl: 3 });
    randomizeB(adapter, 31);
    adapter.setCounterfactual(prompts[0]!, [2, 5, 9, 9]);
    adapter.setCounterfactual(prompts[1]!, [4, 3]);
    adapter.prepare(model, prompts);
    const withTerms = totalLoss(model, adapter).dataSync()[0]!;
    const taskOnly = tf.tidy(() => causalLMLoss(model.forward(ids2d(), { adapters: adapter }), ids2d(), mask2d()).dataSync()[0]!);
    expect(withTerms - taskOnly).toBeGreaterThan(1e-4);
    const checked = checkGradients(() => totalLoss(model, adapter), adapter.trainable(), { entriesPerTensor: 2, eps: 1e-2, rtol: 5e-2, atol: 2e-4 });
    expect(checked).toBe(adapter.trainable().length * 2);
    adapter.dispose();
    model.dispose();
  });

  it('keeps the adversarial b_bias at norm epsilon and its ascent step increases L_bias', () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 12, 0.2));
    const adapter = make(model, { reading: 'adversarial', epsilon: 0.3 });
    randomizeB(adapter, 41);
    const norm = () => tf.tidy(() => tf.norm(adapter.biasOffset!).dataSync()[0]!);
    expect(norm()).toBeCloseTo(0.3, 5);
    adapter.prepare(model, prompts);
    const before = term(adapter, model, 'bias');
    expect(before).toBeGreaterThan(0);
    const offsetBefore = adapter.biasOffset!.dataSync().slice();
    adapter.prepare(model, prompts, true);
    expect(norm()).toBeCloseTo(0.3, 5);
    expect(adapter.biasOffset!.dataSync()).not.toEqual(offsetBefore);
    expect(term(adapter, model, 'bias')).toBeGreaterThan(before);
    // The offset is not a trainable parameter: the optimizer never touches it.
    expect(adapter.trainable().some((p) => p.variable === adapter.biasOffset)).toBe(false);
    adapter.dispose();
    model.dispose();
  });

  it('a training step leaves no tensor behind, in either reading', async () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 13, 0.2));
    for (const reading of ['counterfactual', 'adversarial'] as const) {
      const adapter = make(model, { reading });
      adapter.setCounterfactual(prompts[0]!, [2, 5, 9]);
      const trainable = adapter.trainable();
      const optimizer = new AdamW([{ name: 'all', lr: 0.05, weightDecay: 0, params: trainable }]);
      const nameOf = new Map(trainable.map((p) => [p.variable.name, p.name]));
      const variables = trainable.map((p) => p.variable);
      const first = await trainStep(model, adapter, optimizer, batch, 1, nameOf, variables, 1, prompts);
      expect(Object.keys(first.regularizers)).toEqual(reading === 'counterfactual' ? ['bias', 'bias_counterfactuals', 'kl'] : ['bias', 'kl']);
      const before = tf.memory().numTensors;
      await trainStep(model, adapter, optimizer, batch, 1, nameOf, variables, 2, prompts);
      expect(tf.memory().numTensors).toBe(before);
      optimizer.dispose();
      adapter.dispose();
    }
    model.dispose();
  });

  it('trains through runTraining, logs loss/bias and loss/kl, and exports a plain PEFT LoRA', async () => {
    const run = await trainTiny(root, 'bias-aware', {
      method: 'bias-aware',
      lora: { r: 4, alpha: 8, dropout: 0 },
      biasAware: { lambdaBias: 0.5, lambdaKl: 0.5, reading: 'adversarial', epsilon: 0.05 },
    });
    const failed = run.messages.find((m) => m.type === 'failed');
    expect(failed).toBeUndefined();
    const loss = run.points('train/loss').map((p) => p.value);
    expect(loss).toHaveLength(24);
    expect(mean(loss.slice(-4))).toBeLessThan(mean(loss.slice(0, 4)));
    const bias = run.points('loss/bias').map((p) => p.value);
    const kl = run.points('loss/kl').map((p) => p.value);
    expect(bias).toHaveLength(24);
    expect(kl).toHaveLength(24);
    expect(bias.every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
    expect(kl[0]).toBeCloseTo(0, 6);
    expect(Math.max(...kl)).toBeGreaterThan(0);
    const adapterDir = path.join(run.runDir, 'adapter');
    const report = await run.exportTo(adapterDir, path.join(root, 'bias-aware-export'));
    expect(report.verification).toMatchObject({ passed: true });
    const sidecar = JSON.parse(fs.readFileSync(path.join(adapterDir, SIDECAR_FILE), 'utf8')) as { method: string; config: { biasAware: BiasAwareSettings } };
    expect(sidecar.method).toBe('bias-aware');
    expect(sidecar.config.biasAware).toEqual({
      lambdaBias: 0.5,
      lambdaKl: 0.5,
      reading: 'adversarial',
      epsilon: 0.05,
      lambdaAlign: 0,
      tasks: [],
      taskMixture: [],
    });
    const peftConfig = fs.readFileSync(path.join(root, 'bias-aware-export', ADAPTER_CONFIG_FILE), 'utf8');
    expect(peftConfig).not.toMatch(/lambda|bias_aware|biasAware|epsilon|reading/i);
    expect(JSON.parse(peftConfig).peft_type).toBe('LORA');
  }, 60_000);
});
