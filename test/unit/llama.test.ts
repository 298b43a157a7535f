// The Llama family against PyTorch: scripts/make-fixtures-llama.py evaluates LlamaForCausalLM /
// Qwen2ForCausalLM in float64 on the float32 weights of three tiny models (GQA + untied head + linear
// rope_scaling; Qwen2 biases + tied head + one kv head; llama3 rope_scaling + head_dim + all biases);
// our float32 forward must agree within 1e-4 on cpu and wasm (and webgpu under `npm run test:webgpu`),
// also with a LoRA adapter on q_proj and v_proj. Then the config reader, the loader's checks,
// gradients, and LoRA training with PEFT names.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LoraSettingsSchema, type LoraSettings } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { loadCausalLM, readWeights } from '../../src-worker/formats/model-folder.ts';
import { readSafetensorsFile } from '../../src-worker/formats/safetensors.ts';
import { lora } from '../../src-worker/methods/lora.ts';
import type { AdapterModel } from '../../src-worker/methods/types.ts';
import { createLlama, llamaConfigFromHF, randomLlamaWeights, ropeInverseFrequencies, swiglu } from '../../src-worker/models/llama.ts';
import type { AdapterHooks, CausalLM } from '../../src-worker/models/types.ts';
import { tf } from '../../src-worker/tf.ts';
import { AdamW } from '../../src-worker/train/adamw.ts';
import { causalLMLoss } from '../../src-worker/train/loss.ts';
import { testBackends, valuesOf } from '../helpers/backends.ts';
import { checkGradients } from '../helpers/finite-differences.ts';
import { tinyLlama as tiny } from './baseline-models.ts';
import { maxAbsDiff } from '../../src-worker/export/probe.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
interface Reference {
  input_ids: number[][];
  shape: number[];
  logits: number[];
  lora?: { r: number; alpha: number; target_modules: string[]; logits: number[] };
}
const referenceOf = (name: string) => JSON.parse(fs.readFileSync(path.join(fixtures, name, 'logits.json'), 'utf-8')) as Reference;
const configOf = (name: string) => JSON.parse(fs.readFileSync(path.join(fixtures, name, 'config.json'), 'utf-8')) as Record<string, unknown>;
const FAMILIES = ['llama-tiny', 'llama-tiny-qwen2', 'llama-tiny-llama3'];

const settings = (over: Partial<LoraSettings> = {}): LoraSettings => LoraSettingsSchema.parse({ dropout: 0, ...over });

function logitsOf(model: CausalLM, ids: number[][], adapters?: AdapterHooks | null): Float32Array {
  const input = tf.tensor2d(ids, undefined, 'int32');
  const out = model.forward(input, { adapters });
  const data = out.dataSync() as Float32Array;
  tf.dispose([input, out]);
  return data;
}

function expectInvalid(fn: () => unknown, pattern: RegExp): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(WorkbenchError);
    expect((error as WorkbenchError).code).toBe('model_invalid');
    expect((error as WorkbenchError).message).toMatch(pattern);
    return;
  }
  throw new Error(`expected an error matching ${pattern}`);
}

afterAll(async () => {
  await initBackend('cpu');
});

describe.each(testBackends(['cpu', 'wasm']))('Llama-family parity with PyTorch on %s', (backend) => {
  it.each(FAMILIES)('%s: logits match within 1e-4 and nothing leaks', async (name) => {
    await initBackend(backend);
    const reference = referenceOf(name);
    const before = tf.memory().numTensors;
    const model = await loadCausalLM(path.join(fixtures, name));
    expect(model.config.family).toBe('llama');
    const input = tf.tensor2d(reference.input_ids, undefined, 'int32');
    const logits = model.forward(input);
    expect(logits.shape).toEqual(reference.shape);
    expect(maxAbsDiff(await valuesOf(logits), reference.logits)).toBeLessThan(1e-4);
    tf.dispose([input, logits]);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('LoRA on q_proj and v_proj (s x A^T B^T, PEFT layout) matches torch within 1e-4', async () => {
    await initBackend(backend);
    const dir = path.join(fixtures, 'llama-tiny');
    const reference = referenceOf('llama-tiny');
    const model = await loadCausalLM(dir);
    const ref = reference.lora!;
    const adapter = lora.create(model, settings({ r: ref.r, alpha: ref.alpha, targetModules: ref.target_modules }), 0);
    adapter.loadStateDict((await readSafetensorsFile(path.join(dir, 'lora-q_proj-v_proj', 'adapter_model.safetensors'))).tensors);
    const input = tf.tensor2d(reference.input_ids, undefined, 'int32');
    const logits = model.forward(input, { adapters: adapter });
    expect(maxAbsDiff(await valuesOf(logits), ref.logits)).toBeLessThan(1e-4);
    tf.dispose([input, logits]);
    // The adapter moves the logits far beyond the tolerance, so the check is not vacuous.
    expect(maxAbsDiff(ref.logits, reference.logits)).toBeGreaterThan(1);
    adapter.dispose();
    model.dispose();
  });
});

describe('Llama config.json', () => {
  it('reads the three fixture variants', () => {
    expect(llamaConfigFromHF(configOf('llama-tiny'))).toEqual({
      modelType: 'llama',
      vocabSize: 324,
      hiddenSize: 32,
      intermediateSize: 88,
      numHiddenLayers: 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: 8,
      maxPositionEmbeddings: 64,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      ropeScaling: { ropeType: 'linear', factor: 2 },
      qkvBias: false,
      oBias: false,
      mlpBias: false,
      tieWordEmbeddings: false,
    });
    const qwen = llamaConfigFromHF(configOf('llama-tiny-qwen2'));
    expect([qwen.qkvBias, qwen.oBias, qwen.tieWordEmbeddings, qwen.numKeyValueHeads, qwen.maxPositionEmbeddings]).toEqual([true, false, true, 1, 64]);
    const llama3 = llamaConfigFromHF(configOf('llama-tiny-llama3'));
    expect([llama3.headDim, llama3.qkvBias, llama3.oBias, llama3.mlpBias, llama3.ropeScaling?.ropeType]).toEqual([16, true, true, true, 'llama3']);
  });

  it('caps the usable length at a sliding window (full attention is exact up to it)', () => {
    const base = { ...configOf('llama-tiny'), max_position_embeddings: 32768, rope_scaling: null };
    expect(llamaConfigFromHF({ ...base, model_type: 'mistral', sliding_window: 4096 }).maxPositionEmbeddings).toBe(4096);
    expect(llamaConfigFromHF({ ...base, model_type: 'mistral', sliding_window: null }).maxPositionEmbeddings).toBe(32768);
    expect(llamaConfigFromHF({ ...base, model_type: 'qwen2', use_sliding_window: false, sliding_window: 4096 }).maxPositionEmbeddings).toBe(32768);
    expect(llamaConfigFromHF({ ...base, model_type: 'qwen2', use_sliding_window: true, sliding_window: 4096 }).maxPositionEmbeddings).toBe(4096);
  });

  it('names bad or unsupported fields', () => {
    const hf = configOf('llama-tiny');
    expectInvalid(() => llamaConfigFromHF({ ...hf, num_key_value_heads: 3 }), /num_attention_heads 4 is not a multiple of num_key_value_heads 3/);
    expectInvalid(() => llamaConfigFromHF({ ...hf, hidden_act: 'gelu' }), /hidden_act "gelu" is not supported; supported: silu/);
    expectInvalid(
      () => llamaConfigFromHF({ ...hf, rope_scaling: { rope_type: 'yarn', factor: 4 } }),
      /rope_scaling type "yarn" is not supported; supported: default, linear, llama3/,
    );
    expectInvalid(
      () => llamaConfigFromHF({ ...hf, rope_scaling: { rope_type: 'llama3', factor: 8 } }),
      /"rope_scaling\.low_freq_factor" is undefined, expected a positive number/,
    );
    expectInvalid(() => llamaConfigFromHF({ ...hf, intermediate_size: undefined }), /"intermediate_size" is undefined, expected a positive integer/);
    expectInvalid(() => llamaConfigFromHF({ ...hf, model_type: 'mistral', sliding_window: 0 }), /"sliding_window" is 0/);
  });

  it('llama3 rope_scaling keeps short wavelengths, divides long ones by factor, blends between', () => {
    const c = llamaConfigFromHF(configOf('llama-tiny-llama3')); // theta 5e5, d 16, original context 64
    const plain = ropeInverseFrequencies({ ...c, ropeScaling: null });
    const scaled = ropeInverseFrequencies(c);
    expect(scaled[0]).toBe(plain[0]); // wavelength 2 pi < 64 / 4
    expect(scaled[1]! / plain[1]!).toBeGreaterThan(1 / 8); // 32 rad: between 16 and 64, blended
    expect(scaled[1]! / plain[1]!).toBeLessThan(1);
    for (let i = 2; i < 8; i++) expect(scaled[i]! / plain[i]!).toBeCloseTo(1 / 8, 12);
  });

  it('rope_scaling changes the logits of the fixtures far beyond the parity tolerance', async () => {
    await initBackend('cpu');
    for (const name of ['llama-tiny', 'llama-tiny-llama3']) {
      const reference = referenceOf(name);
      const weights = await readWeights([path.join(fixtures, name, 'model.safetensors')]);
      const model = createLlama({ ...llamaConfigFromHF(configOf(name)), ropeScaling: null }, weights);
      expect(maxAbsDiff(logitsOf(model, reference.input_ids), reference.logits)).toBeGreaterThan(1e-2);
      model.dispose();
    }
  });
});

describe('Llama forward', () => {
  it('is causal: changing a later token leaves earlier logits unchanged', async () => {
    await initBackend('cpu');
    const model = createLlama(tiny, randomLlamaWeights(tiny, 7, 0.3));
    const a = logitsOf(model, [[3, 1, 4, 1, 5, 9]]);
    const b = logitsOf(model, [[3, 1, 4, 1, 5, 2]]);
    expect(maxAbsDiff(a.subarray(0, 5 * 24), b.subarray(0, 5 * 24))).toBe(0);
    expect(maxAbsDiff(a, b)).toBeGreaterThan(1e-3);
    model.dispose();
  });

  it('consults the adapter hooks at every linear layer, by HF module path, in HF order', () => {
    const model = createLlama(tiny, randomLlamaWeights(tiny, 5, 0.3));
    const seen: string[] = [];
    const recorder: AdapterHooks = {
      delta: (p, x) => {
        seen.push(`${p}:${x.shape[1]}`);
        return null;
      },
    };
    const ids = [[1, 2, 3]];
    const base = logitsOf(model, ids);
    expect(maxAbsDiff(logitsOf(model, ids, recorder), base)).toBe(0);
    const layer = (i: number) =>
      [
        `self_attn.q_proj:16`,
        `self_attn.k_proj:16`,
        `self_attn.v_proj:16`,
        `self_attn.o_proj:16`,
        `mlp.gate_proj:16`,
        `mlp.up_proj:16`,
        `mlp.down_proj:24`,
      ].map((s) => `model.layers.${i}.${s}`);
    expect(seen).toEqual([...layer(0), ...layer(1)]);
    const modules = model.linearModules();
    expect(modules.map((m) => [m.path, m.inFeatures, m.outFeatures, m.fanInFanOut]).slice(0, 7)).toEqual([
      ['model.layers.0.self_attn.q_proj', 16, 16, false],
      ['model.layers.0.self_attn.k_proj', 16, 8, false],
      ['model.layers.0.self_attn.v_proj', 16, 8, false],
      ['model.layers.0.self_attn.o_proj', 16, 16, false],
      ['model.layers.0.mlp.gate_proj', 16, 24, false],
      ['model.layers.0.mlp.up_proj', 16, 24, false],
      ['model.layers.0.mlp.down_proj', 24, 16, false],
    ]);
    model.dispose();
  });

  it('rejects sequences longer than max_position_embeddings', () => {
    const model = createLlama(tiny, randomLlamaWeights(tiny, 1));
    const ids = tf.zeros([1, 17], 'int32') as tf.Tensor2D;
    expect(() => model.forward(ids)).toThrow(/exceeds the model's 16 positions/);
    ids.dispose();
    model.dispose();
  });

  it('SwiGLU has the derivative of silu(gate) * up (custom gradient vs autodiff of the composite)', () => {
    const g = tf.linspace(-6, 6, 97);
    const u = tf.sin(tf.linspace(-3, 5, 97));
    const composite = (a: tf.Tensor, b: tf.Tensor) => tf.mul(tf.mul(a, tf.sigmoid(a)), b);
    const loss = (f: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor) => (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, b), tf.cos(a)));
    const ours = tf.grads(loss((a, b) => swiglu(a, b)))([g, u]);
    const reference = tf.grads(loss(composite))([g, u]);
    expect(maxAbsDiff(swiglu(g, u).dataSync(), composite(g, u).dataSync())).toBeLessThan(1e-6);
    for (let i = 0; i < 2; i++) expect(maxAbsDiff(ours[i]!.dataSync(), reference[i]!.dataSync())).toBeLessThan(1e-5);
    tf.dispose([g, u, ...ours, ...reference]);
  });
});

describe('Llama loading checks', () => {
  it('names a missing tensor, a wrong shape, unexpected tensors and a missing untied head', () => {
    const missing = randomLlamaWeights(tiny, 1);
    missing.delete('model.layers.1.mlp.up_proj.weight');
    expectInvalid(() => createLlama(tiny, missing), /missing tensor model\.layers\.1\.mlp\.up_proj\.weight \(expected shape \[24,16\]\)/);
    const noHead = randomLlamaWeights(tiny, 1);
    noHead.delete('lm_head.weight');
    expectInvalid(() => createLlama(tiny, noHead), /missing tensor lm_head\.weight .*tie_word_embeddings is false/);
    const wrong = randomLlamaWeights(tiny, 1);
    wrong.set('model.layers.0.self_attn.k_proj.weight', { shape: [16, 16], data: new Float32Array(256) });
    expectInvalid(() => createLlama(tiny, wrong), /model\.layers\.0\.self_attn\.k_proj\.weight has shape \[16,16\], expected \[8,16\]/);
    const extra = randomLlamaWeights(tiny, 1);
    extra.set('model.layers.0.self_attn.q_proj.bias', { shape: [16], data: new Float32Array(16) });
    expectInvalid(() => createLlama(tiny, extra), /unexpected tensors for llama with 2 layers: model\.layers\.0\.self_attn\.q_proj\.bias/);
  });

  it('accepts LlamaModel keys without "model.", RoPE buffers, and a saved head when tied (HF ignores it)', () => {
    const reference = createLlama(tiny, randomLlamaWeights(tiny, 4, 0.3));
    const expected = logitsOf(reference, [[1, 2, 3, 4]]);
    reference.dispose();
    const variant = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [key, value] of randomLlamaWeights(tiny, 4, 0.3)) variant.set(key.startsWith('model.') ? key.slice('model.'.length) : key, value);
    variant.set('layers.0.self_attn.rotary_emb.inv_freq', { shape: [2], data: new Float32Array([1, 0.01]) });
    const model = createLlama(tiny, variant);
    expect(maxAbsDiff(logitsOf(model, [[1, 2, 3, 4]]), expected)).toBe(0);
    model.dispose();

    const tiedConfig = { ...tiny, tieWordEmbeddings: true };
    const tied = randomLlamaWeights(tiny, 4, 0.3); // still holds an lm_head.weight
    const tiedModel = createLlama(tiedConfig, tied);
    const withoutHead = new Map(tied);
    withoutHead.delete('lm_head.weight');
    const clean = createLlama(tiedConfig, withoutHead);
    expect(maxAbsDiff(logitsOf(tiedModel, [[5, 6]]), logitsOf(clean, [[5, 6]]))).toBe(0);
    expect(tiedModel.parameterCount()).toBe(clean.parameterCount());
    tiedModel.dispose();
    clean.dispose();
  });
});

describe('LoRA on Llama', () => {
  it('gradients of A and B match central finite differences (through RoPE, GQA and SwiGLU)', async () => {
    await initBackend('cpu');
    const model = createLlama(tiny, randomLlamaWeights(tiny, 11, 0.3));
    const adapter = lora.create(model, settings({ r: 2, alpha: 4, targetModules: ['q_proj', 'k_proj', 'gate_proj', 'down_proj'] }), 3);
    // B starts at zero (no gradient reaches A then): give it values first.
    const state = new Map(
      [...adapter.stateDict()].map(([k, t]) => {
        const data = Float32Array.from(t.dataSync() as Float32Array, (v, i) => (k.includes('lora_B') ? 0.3 * Math.sin(i + k.length) : v));
        t.dispose();
        return [k, { shape: t.shape, data }];
      }),
    );
    adapter.loadStateDict(state);
    const ids = tf.tensor2d(
      [
        [1, 5, 9, 2, 7, 3],
        [4, 4, 0, 23, 11, 6],
      ],
      undefined,
      'int32',
    );
    const mask = tf.onesLike(ids).toFloat() as tf.Tensor2D;
    const loss = () => tf.tidy(() => causalLMLoss(model.forward(ids, { adapters: adapter, training: true }), ids, mask));
    expect(
      checkGradients(
        loss,
        adapter.trainable().filter((t) => t.name.includes('layers.0')),
      ),
    ).toBe(8);
    tf.dispose([ids, mask]);
    adapter.dispose();
    model.dispose();
  });

  it('trains on the tiny fixture (loss falls) and exports PEFT names for the Llama layout', async () => {
    await initBackend('cpu');
    const model = await loadCausalLM(path.join(fixtures, 'llama-tiny'));
    const targets = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
    const adapter: AdapterModel = lora.create(model, settings({ r: 4, alpha: 8, targetModules: targets }), 1);
    const trainable = adapter.trainable();
    const optimizer = new AdamW([
      { name: 'lora_A', lr: 1e-2, weightDecay: 0, params: trainable.filter((t) => t.group === 'lora_A') },
      { name: 'lora_B', lr: 1e-2, weightDecay: 0, params: trainable.filter((t) => t.group === 'lora_B') },
    ]);
    const nameOf = new Map(trainable.map((t) => [t.variable.name, t.name]));
    const ids = tf.tensor2d(
      [
        [1, 299, 261, 298, 303, 292, 261, 273, 2],
        [1, 275, 307, 300, 316, 309, 300, 301, 2],
      ],
      undefined,
      'int32',
    );
    const mask = tf.onesLike(ids).toFloat() as tf.Tensor2D;
    const losses: number[] = [];
    for (let step = 0; step < 8; step++) {
      const { value, grads } = tf.variableGrads(
        () => causalLMLoss(model.forward(ids, { adapters: adapter, training: true }), ids, mask),
        trainable.map((t) => t.variable),
      );
      losses.push(value.dataSync()[0]!);
      optimizer.step(new Map(Object.entries(grads).map(([k, g]) => [nameOf.get(k)!, g])));
      tf.dispose([value, ...Object.values(grads)]);
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! - 0.5);

    const state = adapter.stateDict();
    expect(state.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')!.shape).toEqual([4, 32]);
    expect(state.get('base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight')!.shape).toEqual([32, 4]);
    expect(state.get('base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight')!.shape).toEqual([16, 4]);
    expect(state.get('base_model.model.model.layers.1.mlp.down_proj.lora_A.weight')!.shape).toEqual([4, 88]);
    expect(state.size).toBe(2 * 7 * 2);
    tf.dispose([...state.values()]);
    const config = adapter.peftConfig('llama-tiny');
    expect(config.target_modules).toEqual([...targets].sort());
    expect(config.fan_in_fan_out).toBe(false);
    tf.dispose([ids, mask]);
    optimizer.dispose();
    adapter.dispose();
    model.dispose();
  });
});
