// Generation: the sampler's filters (temperature, top-k, top-p) against their definitions, and the KV
// cache against recomputing the whole sequence: the same logits at every step and, from there, the
// same tokens, greedy and sampled, for GPT-2 and each Llama variant (GQA, MQA with biases, llama3 RoPE),
// on cpu (and on webgpu under `npm run test:webgpu`).
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoraSettingsSchema } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { argmax, generate, sampleToken } from '../../src-worker/generate.ts';
import { lora } from '../../src-worker/methods/lora.ts';
import { KVCache } from '../../src-worker/models/kv-cache.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { mulberry32 } from '../../src-worker/rng.ts';
import { tf } from '../../src-worker/tf.ts';
import { testBackends, valuesOf } from '../helpers/backends.ts';
import { maxAbsDiff } from '../../src-worker/export/probe.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
const MODELS = ['gpt2-tiny', 'llama-tiny', 'llama-tiny-qwen2', 'llama-tiny-llama3'];

beforeAll(async () => {
  await initBackend('cpu');
});

afterAll(async () => {
  await initBackend('cpu');
});

describe('sampleToken', () => {
  const logits = Float32Array.from([1.0, 3.0, 2.0, 3.0, -1.0, 0.5]);
  const softmax = (values: number[]) => {
    const m = Math.max(...values);
    const e = values.map((v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / s);
  };
  const frequencies = (options: { temperature: number; topK: number; topP: number }, n = 20000) => {
    const random = mulberry32(123);
    const counts = new Array<number>(logits.length).fill(0);
    for (let i = 0; i < n; i++) counts[sampleToken(logits, options, random.next)]!++;
    return counts.map((c) => c / n);
  };

  it('greedy is the first maximum, whatever the other settings', () => {
    expect(argmax(logits)).toBe(1);
    expect(sampleToken(logits, { temperature: 0, topK: 3, topP: 0.5 }, () => 0.99)).toBe(1);
  });

  it('with temperature T draws from softmax(logits / T)', () => {
    for (const temperature of [1, 0.5, 2]) {
      const expected = softmax(Array.from(logits, (v) => v / temperature));
      const got = frequencies({ temperature, topK: 0, topP: 1 });
      // 20000 draws: the standard error of each frequency is below 0.0036.
      expect(maxAbsDiff(got, expected)).toBeLessThan(0.015);
    }
  });

  it('top-k keeps the k most likely tokens, renormalized', () => {
    const got = frequencies({ temperature: 1, topK: 3, topP: 1 });
    const top = softmax([3, 2, 3]);
    expect(maxAbsDiff(got, [0, top[0]!, top[1]!, top[2]!, 0, 0])).toBeLessThan(0.015);
    expect(frequencies({ temperature: 5, topK: 1, topP: 1 })[1]).toBe(1);
  });

  it('top-p keeps the fewest most likely tokens holding at least p of the mass', () => {
    const p = softmax(Array.from(logits));
    // The two tokens at 3.0 hold p[1] + p[3] (about 0.73): top_p just below keeps exactly them.
    const got = frequencies({ temperature: 1, topK: 0, topP: p[1]! + p[3]! - 1e-3 });
    expect(got[0]! + got[2]! + got[4]! + got[5]!).toBe(0);
    expect(got[1]!).toBeCloseTo(0.5, 1);
    // Just above, the third token (2.0) joins.
    expect(frequencies({ temperature: 1, topK: 0, topP: p[1]! + p[3]! + 1e-3 })[2]).toBeGreaterThan(0.1);
    // A tiny top_p still keeps one token.
    expect(frequencies({ temperature: 1, topK: 0, topP: 1e-6 }, 200)[1]).toBe(1);
  });
});

describe('generate', () => {
  let model: CausalLM;
  beforeAll(async () => {
    model = await loadCausalLM(path.join(fixtures, 'llama-tiny'));
  });
  afterAll(() => model.dispose());

  it('is reproducible for a seed, differs across seeds, stops at stop tokens and at the model length', async () => {
    const sample = (seed: number) => generate(model, [1, 299], { maxNewTokens: 12, temperature: 1.5, seed });
    const a = await sample(7);
    expect(a.tokens).toHaveLength(12);
    expect(a.stoppedBy).toBe('max_new_tokens');
    expect((await sample(7)).tokens).toEqual(a.tokens);
    expect((await sample(8)).tokens).not.toEqual(a.tokens);

    const stopAt = a.tokens[4]!;
    const stopped = await generate(model, [1, 299], { maxNewTokens: 12, temperature: 1.5, seed: 7, stopTokenIds: [stopAt] });
    expect(stopped.stoppedBy).toBe('stop_token');
    expect(stopped.tokens).toEqual(a.tokens.slice(0, a.tokens.indexOf(stopAt) + 1));

    const streamed: number[] = [];
    const long = await generate(model, [1], { maxNewTokens: 100, onToken: (id) => streamed.push(id) });
    expect(long.stoppedBy).toBe('max_positions');
    expect(long.tokens).toHaveLength(63); // max_position_embeddings 64, one prompt token
    expect(streamed).toEqual(long.tokens);
  });

  it('names bad settings', async () => {
    const message = async (options: Parameters<typeof generate>[2], prompt = [1]) => {
      const error = await generate(model, prompt, options).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WorkbenchError);
      expect((error as WorkbenchError).code).toBe('invalid_input');
      return (error as Error).message;
    };
    expect(await message({ maxNewTokens: 4, temperature: -1 })).toMatch(/temperature: -1 must be a number >= 0/);
    expect(await message({ maxNewTokens: 4, topK: 1.5 })).toMatch(/topK: 1.5 must be a whole number/);
    expect(await message({ maxNewTokens: 4, topP: 0 })).toMatch(/topP: 0 must be in \(0, 1\]/);
    expect(await message({ maxNewTokens: 4 }, [])).toMatch(/prompt: is empty/);
    expect(await message({ maxNewTokens: 4 }, [1, 324])).toMatch(/token id 324 is outside the model's vocabulary of 324/);
  });

  it('refuses a cache made for another model', () => {
    const cache = new KVCache(3);
    const ids = tf.tensor2d([[1]], undefined, 'int32');
    expect(() => model.forwardWithCache(ids, cache)).toThrow(/made for 3 layers was given to a model with 2/);
    ids.dispose();
    cache.dispose();
  });
});

describe.each(testBackends(['cpu']).flatMap((backend) => MODELS.map((name) => [name, backend] as const)))('KV cache for %s on %s', (name, backend) => {
  let model: CausalLM;
  beforeAll(async () => {
    await initBackend(backend);
    model = await loadCausalLM(path.join(fixtures, name));
  });
  afterAll(() => model.dispose());

  it('gives the logits of the full forward at every step, for a prompt chunk and for single tokens', async () => {
    const sequence = [5, 17, 3, 3, 42, 8, 11, 29, 1, 60, 7, 2];
    const full = tf.tensor2d([sequence], undefined, 'int32');
    const reference = model.forward(full);
    const V = model.config.vocabSize;
    const cache = new KVCache(model.config.numLayers);
    // A 4-token prompt, then a 3-token chunk after cached positions (the masked path), then one at a time.
    const chunks = [sequence.slice(0, 4), sequence.slice(4, 7), ...sequence.slice(7).map((t) => [t])];
    let at = 0;
    for (const chunk of chunks) {
      const ids = tf.tensor2d([chunk], undefined, 'int32');
      const logits = model.forwardWithCache(ids, cache);
      const expected = tf.slice(reference, [0, at, 0], [1, chunk.length, V]);
      expect(maxAbsDiff(await valuesOf(logits), await valuesOf(expected)), `positions ${at}..${at + chunk.length - 1}`).toBeLessThan(1e-4);
      tf.dispose([ids, logits, expected]);
      at += chunk.length;
      expect(cache.length).toBe(at);
    }
    tf.dispose([full, reference]);
    cache.dispose();
  });

  it('generates the same tokens as recomputing the sequence, greedy and sampled, and leaks nothing', async () => {
    const prompt = [1, 12, 7];
    let before = 0;
    for (const options of [{ maxNewTokens: 24 }, { maxNewTokens: 24, temperature: 0.9, topK: 20, topP: 0.95, seed: 3 }]) {
      const cached = await generate(model, prompt, options);
      const uncached = await generate(model, prompt, { ...options, useCache: false });
      expect(cached.tokens).toEqual(uncached.tokens);
      expect(cached.tokens).toHaveLength(24);
      expect(new Set(cached.tokens).size).toBeGreaterThan(1);
      // Counted from the second round: the first fills the model's own bounded caches (RoPE tables, masks).
      if (before) expect(tf.memory().numTensors).toBe(before);
      before = tf.memory().numTensors;
    }
  });
});

describe.each(testBackends(['cpu', 'wasm']))('KV cache with a LoRA adapter on %s', (backend) => {
  it('cached and uncached generation agree token for token on llama-tiny', async () => {
    await initBackend(backend);
    const model = await loadCausalLM(path.join(fixtures, 'llama-tiny'));
    const adapter = lora.create(model, LoraSettingsSchema.parse({ r: 4, dropout: 0.1, targetModules: ['q_proj', 'v_proj', 'down_proj'] }), 5);
    const state = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [k, t] of adapter.stateDict()) {
      state.set(k, { shape: t.shape, data: Float32Array.from(await valuesOf(t), (v, i) => (k.includes('lora_B') ? 0.5 * Math.cos(3 * i + k.length) : v)) });
      t.dispose();
    }
    adapter.loadStateDict(state);
    const options = { maxNewTokens: 20, temperature: 1, seed: 11, adapters: adapter };
    const cached = await generate(model, [1], options);
    expect(cached.tokens).toEqual((await generate(model, [1], { ...options, useCache: false })).tokens);
    // The adapter is in effect (dropout stays off: generation is not training).
    expect(cached.tokens).not.toEqual((await generate(model, [1], { ...options, adapters: null })).tokens);
    adapter.dispose();
    model.dispose();
    await initBackend('cpu');
  });
});
