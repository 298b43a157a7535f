// 16-bit base weights (kernels/half-weights.ts): the WidenHalf kernel against a reference conversion
// for every one of the 65536 bit patterns of f16 and bf16 (subnormals, infinities, NaNs, -0) on cpu
// and wasm; and models loaded from bf16 and f16 checkpoints, which hold their block matrices 16-bit,
// against the same values widened to f32 at load (the logits must agree: the values are identical),
// and LoRA's gradients through them, with blocks recomputed or not.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src-worker/backend.ts';
import type { Batch } from '../../src-worker/data/batcher.ts';
import { floatToBf16, floatToHalf, type HalfFormat } from '../../src-worker/formats/half-bits.ts';
import { loadCausalLM, readWeights } from '../../src-worker/formats/model-folder.ts';
import { serializeSafetensors } from '../../src-worker/formats/safetensors.ts';
import { HalfWeight } from '../../src-worker/kernels/half-weights.ts';
import { getMethod } from '../../src-worker/methods/index.ts';
import { createGPT2, gpt2ConfigFromHF } from '../../src-worker/models/gpt2.ts';
import { createLlama, llamaConfigFromHF } from '../../src-worker/models/llama.ts';
import type { WeightData } from '../../src-worker/models/random-weights.ts';
import { KVCache } from '../../src-worker/models/kv-cache.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { tf } from '../../src-worker/tf.ts';
import { causalLossTerm, shiftedTargets } from '../../src-worker/train/causal-loss.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
const BACKENDS = ['cpu', 'wasm'] as const;
const ALL_BITS = Uint16Array.from({ length: 65536 }, (_, i) => i);

/** bf16 is the top half of an f32, by definition. */
function bf16Reference(h: number): number {
  return new Float32Array(new Uint32Array([h << 16]).buffer)[0]!;
}

/** IEEE 754 binary16, from its fields. */
function f16Reference(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return exp === 0 ? sign * (frac / 1024) * 2 ** -14 : sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

describe('WidenHalf', () => {
  for (const backend of BACKENDS) {
    for (const format of ['F16', 'BF16'] as const) {
      it(`widens every ${format} bit pattern exactly on ${backend}`, async () => {
        await initBackend(backend);
        const weight = new HalfWeight([65536 / 16, 16], format, ALL_BITS);
        const widened = tf.tidy(() => weight.widen().dataSync() as Float32Array);
        weight.dispose();
        const reference = format === 'F16' ? f16Reference : bf16Reference;
        const mismatches: string[] = [];
        for (let h = 0; h < 65536; h++) if (!Object.is(widened[h], reference(h))) mismatches.push(`0x${h.toString(16)}: ${widened[h]} vs ${reference(h)}`);
        expect(mismatches.slice(0, 5)).toEqual([]);
        // Known values: 1, the smallest subnormal, the largest finite, -0, inf.
        const known = format === 'F16' ? { 15360: 1, 1: 2 ** -24, 31743: 65504, 64512: -Infinity } : { 16256: 1, 1: 2 ** -133, 65408: -Infinity };
        for (const [bits, value] of Object.entries(known)) expect(widened[Number(bits)]).toBe(value);
        expect(Object.is(widened[0x8000], -0)).toBe(true);
      });
    }
    it(`keeps an odd count of values on ${backend}`, async () => {
      await initBackend(backend);
      const bits = Uint16Array.from([0x3c00, 0xc000, 0x3800], (b) => b);
      const weight = new HalfWeight([1, 3], 'F16', bits);
      expect(Array.from(tf.tidy(() => weight.widen().dataSync()))).toEqual([1, -2, 0.5]);
      weight.dispose();
    });
  }
});

/** A copy of a fixture folder whose weights are saved in `format` (the block matrices and everything else rounded to it). */
async function sixteenBitFolder(name: string, format: HalfFormat, into: string): Promise<{ dir: string; widened: Map<string, WeightData> }> {
  const source = path.join(fixtures, name);
  const dir = path.join(into, `${name}-${format}`);
  fs.mkdirSync(dir, { recursive: true });
  for (const file of fs.readdirSync(source))
    if (file.endsWith('.json') && file !== 'logits.json') fs.copyFileSync(path.join(source, file), path.join(dir, file));
  const f32 = await readWeights([path.join(source, 'model.safetensors')]);
  fs.writeFileSync(path.join(dir, 'model.safetensors'), serializeSafetensors(f32, undefined, format));
  // The same rounded values as plain f32 data: what the loader made of a 16-bit checkpoint before.
  const widened = new Map<string, WeightData>();
  const round = format === 'F16' ? floatToHalf : floatToBf16;
  const reference = format === 'F16' ? f16Reference : bf16Reference;
  for (const [key, w] of f32) widened.set(key, { shape: w.shape, data: Float32Array.from(w.data, (v) => reference(round(v))) });
  return { dir, widened };
}

function logitsOf(model: CausalLM, ids: number[][]): Float32Array {
  return tf.tidy(() => model.forward(tf.tensor2d(ids, [ids.length, ids[0]!.length], 'int32')).dataSync() as Float32Array);
}

function heldBytes(make: () => CausalLM): { model: CausalLM; bytes: number } {
  const before = tf.memory().numBytes;
  const model = make();
  return { model, bytes: tf.memory().numBytes - before };
}

describe('models with 16-bit weights', () => {
  const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'half-weights-'));
  afterAll(() => fs.rmSync(temp, { recursive: true, force: true }));
  const ids = [
    [1, 5, 3, 7, 2, 9],
    [4, 0, 8, 6, 11, 3],
  ];

  for (const backend of BACKENDS) {
    for (const [name, format] of [
      ['gpt2-tiny', 'BF16'],
      ['llama-tiny', 'BF16'],
      ['llama-tiny-qwen2', 'F16'],
    ] as const) {
      it(`${name} from a ${format} checkpoint gives the logits of the same values in f32, holding its block matrices at 2 bytes, on ${backend}`, async () => {
        await initBackend(backend);
        const { dir, widened } = await sixteenBitFolder(name, format, temp);
        const before = tf.memory().numBytes;
        const halfModel = await loadCausalLM(dir);
        const halfBytes = tf.memory().numBytes - before;
        const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf-8')) as Record<string, unknown>;
        const { model: f32Model, bytes: f32Bytes } = heldBytes(() =>
          name === 'gpt2-tiny' ? createGPT2(gpt2ConfigFromHF(config), widened) : createLlama(llamaConfigFromHF(config), widened),
        );
        const a = logitsOf(halfModel, ids);
        const b = logitsOf(f32Model, ids);
        let worst = 0;
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), 1e-3));
        expect(worst).toBeLessThan(1e-5);
        // The block matrices (every 2-D weight but the embeddings and the head) take half their f32 bytes.
        let blockParams = 0;
        for (const [key, w] of widened) if (w.shape.length === 2 && !/wte|wpe|embed_tokens|lm_head/.test(key)) blockParams += w.shape[0]! * w.shape[1]!;
        expect(f32Bytes - halfBytes).toBe(2 * blockParams);
        halfModel.dispose();
        f32Model.dispose();
      });
    }
  }
});

describe('decoding over 16-bit weights', () => {
  const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'half-decode-'));
  afterAll(() => fs.rmSync(temp, { recursive: true, force: true }));

  it('gives the KV-cached logits of the same values in f32 (wasm)', async () => {
    await initBackend('wasm');
    const { dir, widened } = await sixteenBitFolder('llama-tiny-qwen2', 'BF16', temp);
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf-8')) as Record<string, unknown>;
    const models = [await loadCausalLM(dir), createLlama(llamaConfigFromHF(config), widened)];
    const [half, f32] = models.map((model) => {
      const cache = new KVCache(model.config.numLayers);
      const out = [
        [3, 1, 4],
        [1, 5],
      ].flatMap((ids) => Array.from(tf.tidy(() => model.forwardWithCache(tf.tensor2d([ids], [1, ids.length], 'int32'), cache).dataSync())));
      cache.dispose();
      return out;
    }) as [number[], number[]];
    for (let i = 0; i < half.length; i++) expect(Math.abs(half[i]! - f32[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(Math.abs(f32[i]!), 1e-3));
    for (const m of models) m.dispose();
  });
});

describe('training over 16-bit weights', () => {
  const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'half-train-'));
  afterAll(() => fs.rmSync(temp, { recursive: true, force: true }));

  for (const backend of BACKENDS) {
    it(`gives LoRA the gradients of the same values in f32, with and without recomputation, on ${backend}`, async () => {
      await initBackend(backend);
      const { dir, widened } = await sixteenBitFolder('llama-tiny', 'BF16', temp);
      const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf-8')) as Record<string, unknown>;
      const models = [await loadCausalLM(dir), createLlama(llamaConfigFromHF(config), widened)];
      const [B, T] = [2, 6];
      const batch: Batch = {
        inputIds: Int32Array.from({ length: B * T }, (_, i) => (i * 5 + 1) % 24),
        lossMask: new Float32Array(B * T).fill(1),
        batchSize: B,
        seqLen: T,
        tokenCount: B * T,
      };
      const method = getMethod('lora');
      const gradients = (model: CausalLM, recompute: boolean) => {
        // alpha / r and an init that makes B non-zero, so that both A and B get a gradient.
        const adapter = method.create(model, method.parseSettings({ r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj'] }), 0);
        const variables = adapter.trainable().map((p) => p.variable);
        for (const v of variables) v.assign(tf.fill(v.shape, 0.01 * (1 + (v.size % 3)), 'float32'));
        const ids = tf.tensor2d(batch.inputIds, [B, T], 'int32');
        const mask = tf.tensor2d(batch.lossMask, [B, T]);
        const { value, grads } = tf.variableGrads(
          () =>
            causalLossTerm(model, ids, mask, shiftedTargets(batch, 0, B, B * T), { adapters: adapter, training: true, recompute: recompute ? variables : null })
              .loss,
          variables,
        );
        const out = [value.dataSync()[0]!, ...variables.flatMap((v) => Array.from(grads[v.name]!.dataSync()))];
        tf.dispose([ids, mask, value, ...Object.values(grads)]);
        adapter.dispose();
        return out;
      };
      for (const recompute of [false, true]) {
        const [half, f32] = models.map((m) => gradients(m, recompute)) as [number[], number[]];
        expect(half.length).toBe(f32.length);
        expect(f32.slice(1).some((g) => g !== 0)).toBe(true);
        for (let i = 0; i < half.length; i++) expect(Math.abs(half[i]! - f32[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(Math.abs(f32[i]!), 1e-3));
      }
      for (const m of models) m.dispose();
    });
  }
});

describe('methods that read base weights', () => {
  const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'half-read-'));
  afterAll(() => fs.rmSync(temp, { recursive: true, force: true }));

  it('QLoRA quantizes bf16 weights as it quantizes the same values in f32, and runs after releasing the widened copies (cpu)', async () => {
    await initBackend('cpu');
    const { dir, widened } = await sixteenBitFolder('llama-tiny', 'BF16', temp);
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf-8')) as Record<string, unknown>;
    const models = [await loadCausalLM(dir), createLlama(llamaConfigFromHF(config), widened)];
    const method = getMethod('qlora');
    const settings = method.parseSettings({ lora: { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj'] }, qlora: { format: 'nf4' } });
    const ids = [[1, 5, 3, 7, 2, 9]];
    const [half, f32] = models.map((model) => {
      const adapter = method.create(model, settings, 0);
      adapter.releaseFloatWeights?.();
      const logits = tf.tidy(() => model.forward(tf.tensor2d(ids, [1, 6], 'int32'), { adapters: adapter }).dataSync() as Float32Array);
      adapter.dispose();
      return logits;
    }) as [Float32Array, Float32Array];
    for (let i = 0; i < half.length; i++) expect(Math.abs(half[i]! - f32[i]!)).toBeLessThanOrEqual(1e-5 * Math.max(Math.abs(f32[i]!), 1e-3));
    for (const m of models) m.dispose();
  });
});
