// A Hugging Face GPT-2 folder from outside this repository (../shared/models/fake-gpt2-random: random
// 2-wide weights, but the genuine GPT-2 tokenizer files): loading, tokenization, a forward, decoding
// with the KV cache, and a few LoRA steps whose weights carry PEFT's key names.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoraSettingsSchema } from '../../src-shared/config.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { readSafetensorsFile, serializeSafetensors } from '../../src-worker/formats/safetensors.ts';
import { loadTokenizer, type TextTokenizer } from '../../src-worker/formats/tokenizer.ts';
import { generate } from '../../src-worker/generate.ts';
import { lora } from '../../src-worker/methods/lora.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { tf } from '../../src-worker/tf.ts';
import { AdamW } from '../../src-worker/train/adamw.ts';
import { causalLMLoss } from '../../src-worker/train/loss.ts';

const sharedDir = path.resolve(import.meta.dirname, '..', '..', '..', 'shared');
const modelDir = path.join(sharedDir, 'models', 'fake-gpt2-random');

let model: CausalLM;
let tokenizer: TextTokenizer;

beforeAll(async () => {
  if (!fs.existsSync(modelDir)) {
    throw new Error(`${modelDir} is missing: npm run test:shared reads the shared models and data from ../shared beside the repository (${sharedDir}).`);
  }
  await initBackend('cpu');
  model = await loadCausalLM(modelDir);
  tokenizer = await loadTokenizer(modelDir);
});

afterAll(() => model?.dispose());

describe('fake-gpt2-random (HF GPT-2 folder with the real GPT-2 tokenizer)', () => {
  it('loads with its config and tokenizes with GPT-2 ids', () => {
    expect(model.config).toMatchObject({ family: 'gpt2', vocabSize: 50257, hiddenSize: 2, numLayers: 1, numHeads: 1, maxPositions: 1024 });
    expect(tokenizer.encode('Hello world')).toEqual([15496, 995]);
    expect(tokenizer.encode(' the')).toEqual([262]);
    expect(tokenizer.eosTokenId).toBe(50256);
    expect(tokenizer.decode([15496, 995])).toBe('Hello world');
  });

  it('gives finite logits of shape [B, T, 50257], and the same tokens with and without the KV cache', async () => {
    const ids = tf.tensor2d([tokenizer.encode('Hello world, this is'), tokenizer.encode('A second line of text')], undefined, 'int32');
    const logits = model.forward(ids);
    expect(logits.shape).toEqual([2, 5, 50257]);
    expect((logits.dataSync() as Float32Array).every(Number.isFinite)).toBe(true);
    tf.dispose([ids, logits]);
    const prompt = tokenizer.encode('Hello world');
    const options = { maxNewTokens: 6, temperature: 1, seed: 2 };
    expect((await generate(model, prompt, options)).tokens).toEqual((await generate(model, prompt, { ...options, useCache: false })).tokens);
  });

  it('takes a few LoRA steps and saves the adapter under PEFT key names', async () => {
    const adapter = lora.create(model, LoraSettingsSchema.parse({ r: 2, alpha: 4, dropout: 0, targetModules: ['c_attn', 'c_proj', 'c_fc'] }), 1);
    const trainable = adapter.trainable();
    const nameOf = new Map(trainable.map((t) => [t.variable.name, t.name]));
    const optimizer = new AdamW([
      { name: 'lora_A', lr: 5e-2, weightDecay: 0, params: trainable.filter((t) => t.group === 'lora_A') },
      { name: 'lora_B', lr: 5e-2, weightDecay: 0, params: trainable.filter((t) => t.group === 'lora_B') },
    ]);
    const ids = tf.tensor2d([tokenizer.encode('Hello world, hello world, hello world.')], undefined, 'int32');
    const mask = tf.onesLike(ids).toFloat() as tf.Tensor2D;
    const losses: number[] = [];
    for (let step = 0; step < 6; step++) {
      const { value, grads } = tf.variableGrads(
        () => causalLMLoss(model.forward(ids, { adapters: adapter, training: true }), ids, mask),
        trainable.map((t) => t.variable),
      );
      losses.push(value.dataSync()[0]!);
      optimizer.step(new Map(Object.entries(grads).map(([k, g]) => [nameOf.get(k)!, g])));
      tf.dispose([value, ...Object.values(grads)]);
    }
    console.log(`LoRA on fake-gpt2-random: loss ${losses.map((l) => l.toFixed(4)).join(' -> ')}`);
    expect(losses.every(Number.isFinite)).toBe(true);
    // A 2-wide model behind a tied head stays near ln(50257) = 10.83 whatever the adapter does, so the
    // check is that training moved the adapter off the base model, not that the loss fell.
    const moved = tf.tidy(() => tf.max(tf.abs(tf.sub(model.forward(ids, { adapters: adapter }), model.forward(ids)))).dataSync()[0]!);
    expect(moved).toBeGreaterThan(1e-6);

    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'lw-gpt2-lora-'));
    try {
      const tensors = new Map([...adapter.stateDict()].map(([k, t]) => [k, { shape: t.shape, data: Float32Array.from(t.dataSync() as Float32Array) }]));
      await fs.promises.writeFile(path.join(dir, 'adapter_model.safetensors'), serializeSafetensors(tensors, { format: 'pt' }));
      const saved = await readSafetensorsFile(path.join(dir, 'adapter_model.safetensors'));
      expect([...saved.tensors.keys()].sort()).toEqual(
        ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj']
          .flatMap((m) => ['A', 'B'].map((x) => `base_model.model.transformer.h.0.${m}.lora_${x}.weight`))
          .sort(),
      );
      expect(saved.tensors.get('base_model.model.transformer.h.0.attn.c_attn.lora_A.weight')!.shape).toEqual([2, 2]);
      expect(saved.tensors.get('base_model.model.transformer.h.0.attn.c_attn.lora_B.weight')!.shape).toEqual([6, 2]);
      expect(saved.tensors.get('base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight')!.data.some((v) => v !== 0)).toBe(true);
      expect(adapter.peftConfig(modelDir)).toMatchObject({ target_modules: ['c_attn', 'c_fc', 'c_proj'], fan_in_fan_out: true, r: 2, lora_alpha: 4 });
      for (const t of tensors.values()) expect(t.data.every(Number.isFinite)).toBe(true);
    } finally {
      await fs.promises.rm(dir, { recursive: true, force: true });
      tf.dispose([ids, mask]);
      optimizer.dispose();
      adapter.dispose();
    }
  });
});
