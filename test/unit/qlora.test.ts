// QLoRA (METHODS.md section 6): blockwise absmax quantization within each format's error bound,
//   int8: |w - dq(w)| <= absmax / 127 / 2,   nf4: |w - dq(w)| <= absmax * (largest NF4 level gap) / 2,
// the memory the quantized weights occupy (codes + float32 scales against float32), the forward reading
// the dequantized weights, LoRA's gradients against finite differences over the quantized base, and a
// run that logs the memory figure and exports a plain PEFT LoRA.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LoraSettingsSchema } from '../../src-shared/config.ts';
import { ADAPTER_CONFIG_FILE } from '../../src-worker/formats/adapter-folder.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { QloraModel } from '../../src-worker/methods/qlora.ts';
import { dequantize, errorBoundPerAbsmax, NF4_LEVELS, quantize, quantizedBytes, type QuantizationFormat } from '../../src-worker/methods/quantize.ts';
import { createGPT2, randomGPT2Weights } from '../../src-worker/models/gpt2.ts';
import { tf } from '../../src-worker/tf.ts';
import { checkGradients } from '../helpers/finite-differences.ts';
import { gpt2, llama, logitsOf, lossOf, randomize, tinyGPT2 } from './baseline-models.ts';
import { maxAbsDiff } from '../../src-worker/export/probe.ts';
import { tempRoot, trainTiny } from './method-run.ts';

const root = tempRoot('lwb-qlora-');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const lora = LoraSettingsSchema.parse({ r: 2, alpha: 4, dropout: 0, targetModules: ['c_attn', 'c_fc', 'q_proj', 'down_proj'] });

function gaussian(n: number, seed: number): Float32Array {
  let s = seed;
  const next = () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return (s + 1) / (2 ** 31 + 1);
  };
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(next())) * Math.cos(2 * Math.PI * next()));
}

describe('blockwise quantization', () => {
  it('has the 16 NF4 levels, sorted, with -1, an exact 0 and 1; the largest gap is between -1 and the next level', () => {
    expect(NF4_LEVELS).toHaveLength(16);
    expect([...NF4_LEVELS].sort((a, b) => a - b)).toEqual(NF4_LEVELS);
    expect([NF4_LEVELS[0], NF4_LEVELS[7], NF4_LEVELS[15]]).toEqual([-1, 0, 1]);
    expect(errorBoundPerAbsmax('nf4')).toBeCloseTo((1 - 0.6961928009986877) / 2, 12);
    expect(errorBoundPerAbsmax('int8')).toBe(1 / 254);
  });

  it.each([
    ['int8', 64],
    ['int8', 7],
    ['nf4', 64],
    ['nf4', 5],
  ] as [QuantizationFormat, number][])(
    '%s with block size %i: every weight within the bound of its block absmax, and the bound is nearly reached',
    (format, blockSize) => {
      const data = gaussian(1000, 3);
      data[17] = 0; // a zero stays exactly zero in both formats
      data.fill(0, 640, 640 + 2 * blockSize); // whole zero blocks (scale 0)
      const q = quantize(data, [1000], format, blockSize);
      const back = dequantize(q);
      const bound = errorBoundPerAbsmax(format);
      let worst = 0; // largest error as a fraction of the bound
      for (let i = 0; i < data.length; i++) {
        const absmax = q.scales[Math.floor(i / blockSize)]!;
        const error = Math.abs(back[i]! - data[i]!);
        expect(error, `weight ${i}`).toBeLessThanOrEqual(bound * absmax * (1 + 1e-6) + 1e-7);
        if (absmax > 0) worst = Math.max(worst, error / (bound * absmax));
      }
      expect(back[17]).toBe(0);
      expect(back.subarray(640 + blockSize, 640 + 2 * blockSize).every((x) => x === 0)).toBe(true);
      expect(worst).toBeGreaterThan(0.5);
      // Every block's largest weight is represented exactly (up to float rounding): it maps to level +-1.
      expect(Math.abs(back[data.indexOf(Math.max(...data))]! - Math.max(...data))).toBeLessThan(1e-6);
    },
  );

  it('stores int8 in ~4x and NF4 in ~8x less memory than float32, minus the float32 scales', () => {
    const n = 64 * 1000;
    const data = gaussian(n, 5);
    const int8 = quantize(data, [n], 'int8', 64);
    const nf4 = quantize(data, [n], 'nf4', 64);
    expect(quantizedBytes(int8)).toBe(n + 1000 * 4);
    expect(quantizedBytes(nf4)).toBe(n / 2 + 1000 * 4);
    // 4 / (1 + 4/64) and 4 / (1/2 + 4/64).
    expect((4 * n) / quantizedBytes(int8)).toBeCloseTo(64 / 17, 6);
    expect((4 * n) / quantizedBytes(nf4)).toBeCloseTo(64 / 9, 6);
  });
});

describe('QLoRA over a quantized base', () => {
  it.each(['nf4', 'int8'] as const)('%s: the forward uses the dequantized weights (B = 0 equals a model built from them)', (format) => {
    const weights = randomGPT2Weights(tinyGPT2, 11, 0.3);
    const model = createGPT2(tinyGPT2, weights);
    const adapter = new QloraModel(model, { format, blockSize: 16 }, { ...lora, targetModules: ['c_attn', 'c_fc'] }, 1);
    const dequantized = new Map(weights);
    for (const [key, q] of adapter.quantized) dequantized.set(key, { shape: q.shape, data: dequantize(q) });
    const reference = createGPT2(tinyGPT2, dequantized);
    const adapted = logitsOf(model, adapter);
    expect(maxAbsDiff(adapted, logitsOf(reference, null))).toBeLessThan(1e-5);
    // The quantization error is visible in the logits, so the comparison above is not vacuous.
    expect(maxAbsDiff(adapted, logitsOf(model, null))).toBeGreaterThan(format === 'nf4' ? 1e-3 : 1e-5);
    const m = adapter.memory();
    expect(m.float32Bytes).toBe(4 * [...adapter.quantized.values()].reduce((n, q) => n + q.size, 0));
    // Per block of 16: 64 float32 bytes against 8 (nf4) or 16 (int8) code bytes plus a 4-byte scale.
    expect(m.factor).toBeCloseTo(format === 'nf4' ? 64 / (8 + 4) : 64 / (16 + 4), 6);
    adapter.dispose();
    reference.dispose();
    model.dispose();
  });

  it('frees the float32 copies for training: tensor memory falls by exactly their bytes and the adapted forward is unchanged', () => {
    const model = createGPT2(tinyGPT2, randomGPT2Weights(tinyGPT2, 12, 0.3));
    const adapter = new QloraModel(model, { format: 'nf4', blockSize: 16 }, { ...lora, targetModules: ['c_attn', 'c_fc'] }, 1);
    const before = logitsOf(model, adapter);
    const bytes = tf.memory().numBytes;
    adapter.releaseFloatWeights();
    expect(bytes - tf.memory().numBytes).toBe(adapter.memory().float32Bytes);
    expect(maxAbsDiff(logitsOf(model, adapter), before)).toBe(0);
    adapter.dispose();
    model.dispose();
  });

  it.each(['cpu', 'wasm'] as const)('LoRA gradients over the quantized base match central finite differences on %s', async (backend) => {
    await initBackend(backend);
    for (const model of [gpt2(), llama()]) {
      const adapter = new QloraModel(model, { format: 'nf4', blockSize: 64 }, lora, 3);
      randomize(adapter, /lora_B/, 5);
      const { loss, dispose } = lossOf(model, adapter);
      const trainable = adapter.trainable();
      expect(checkGradients(loss, trainable, { entriesPerTensor: 2, rtol: 1e-2, atol: 1e-4 })).toBe(2 * trainable.length);
      dispose();
      adapter.dispose();
      model.dispose();
    }
    await initBackend('cpu');
  });

  it('logs the quantized memory at run start and exports a plain PEFT LoRA', async () => {
    const run = await trainTiny(root, 'qlora', {
      method: 'qlora',
      lora: { r: 4, alpha: 8, targetModules: ['c_attn', 'c_fc'] },
      qlora: { format: 'nf4', blockSize: 64 },
      training: { maxSteps: 12 },
    });
    expect(run.messages.find((m) => m.type === 'failed')).toBeUndefined();
    const note = run.messages.find((m) => m.type === 'log' && m.message.startsWith('QLoRA:'));
    expect(note && note.type === 'log' ? note.message : '').toMatch(
      /4 adapted weights held in nf4 \(block size 64\): .* MB .* instead of .* MB in float32, 7\.11x smaller/,
    );
    expect(run.messages.some((m) => m.type === 'log' && /after freeing the float32 copies of the quantized weights/.test(m.message))).toBe(true);
    const adapterDir = path.join(run.runDir, 'adapter');
    const config = JSON.parse(fs.readFileSync(path.join(adapterDir, ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['c_attn', 'c_fc'] });
    const report = await run.exportTo(adapterDir, path.join(root, 'qlora-export'));
    expect(report.verification.passed).toBe(true);
  }, 60_000);
});
