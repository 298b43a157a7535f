// LoRA+ (METHODS.md section 2): the LoRA layer with lora_B at lambda times lora_A's learning rate.
// lambda = 1 must be plain LoRA step for step; the export is a plain PEFT LoRA with lambda only in the sidecar.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultRunConfig, LoraSettingsSchema, RunConfigSchema, type RunConfigOf, StoredRunConfigSchema } from '../../src-shared/config.ts';
import { settingsSectionsOf } from '../../src-shared/methods.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { ADAPTER_CONFIG_FILE, SIDECAR_FILE } from '../../src-worker/formats/adapter-folder.ts';
import { methodSettingsOf } from '../../src-shared/methods.ts';
import { getMethod } from '../../src-worker/methods/index.ts';
import { lora } from '../../src-worker/methods/lora.ts';
import { loraPlus, LoraPlusModel } from '../../src-worker/methods/lora-plus.ts';
import type { AdapterModel } from '../../src-worker/methods/types.ts';
import { createGPT2, randomGPT2Weights, type GPT2Config } from '../../src-worker/models/gpt2.ts';
import { tf } from '../../src-worker/tf.ts';
import { mean, tempRoot, trainTiny, type MethodRun } from './method-run.ts';
import { lossOf as nextTokenLoss, tinyGPT2 } from './baseline-models.ts';

const tiny: GPT2Config = { ...tinyGPT2, nPositions: 8 };
const root = tempRoot('lw-lora-plus-');

beforeAll(async () => {
  await initBackend('cpu');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('LoRA+ settings and registry', () => {
  it('is registered, reads the lora and loraPlus sections, and names a bad field', () => {
    expect(getMethod('lora-plus')).toBe(loraPlus);
    const config = <RunConfigOf<'lora-plus'>>RunConfigSchema.parse({ method: 'lora-plus', lora: { r: 4 }, loraPlus: { ratio: 8 } });
    expect(settingsSectionsOf('lora-plus').map((s) => s.settingsKey)).toEqual(['lora', 'loraPlus']);
    expect(methodSettingsOf(config)).toEqual({ lora: config.lora, loraPlus: { ratio: 8, learningRateB: null } });
    // LoRA's own settings are still the bare section, so LoRA checkpoints written before compare equal.
    expect(methodSettingsOf(defaultRunConfig())).toEqual(defaultRunConfig().lora);
    expect(() => loraPlus.parseSettings({ lora: {}, loraPlus: { ratio: 0 } })).toThrow(/LoRA\+ settings: ratio:/);
    expect(RunConfigSchema.safeParse({ method: 'dora' }).success).toBe(false);
    // A configuration stored before the other methods existed still parses, with its method's defaults.
    const old = <RunConfigOf<'lora-plus'>>(
      StoredRunConfigSchema.parse({ method: 'lora-plus', lora: { r: 2, alpha: 4, dropout: 0, targetModules: ['c_attn'], useRslora: false } })
    );
    expect(old.loraPlus.ratio).toBe(16);
  });

  it('scales only lora_B: by lambda, or to learningRateB when given', () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 1, 0.3));
    const settings = LoraSettingsSchema.parse({ r: 2, dropout: 0 });
    const byRatio = new LoraPlusModel(model, { ratio: 16, learningRateB: null }, settings, 1);
    const byRate = new LoraPlusModel(model, { ratio: 16, learningRateB: 4e-3 }, settings, 1);
    expect([byRatio.learningRateScale('lora_A', 1e-3), byRatio.learningRateScale('lora_B', 1e-3)]).toEqual([1, 16]);
    expect(byRate.learningRateScale('lora_B', 1e-3)).toBeCloseTo(4, 12);
    expect(byRate.learningRateScale('lora_A', 1e-3)).toBe(1);
    byRatio.dispose();
    byRate.dispose();
    model.dispose();
  });
});

describe('LoRA+ gradients', () => {
  it("are LoRA's gradients, and match central finite differences", () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 11, 0.3));
    const settings = LoraSettingsSchema.parse({ r: 2, alpha: 4, dropout: 0, targetModules: ['c_attn', 'c_fc'] });
    const plain = lora.create(model, settings, 3);
    const plus = loraPlus.create(model, { lora: settings, loraPlus: { ratio: 16, learningRateB: null } }, 3);
    // B = 0 hides A's gradient: give both the same nonzero B.
    for (const adapter of [plain, plus]) {
      for (const p of adapter.trainable()) if (p.group === 'lora_B') p.variable.assign(tf.randomUniform(p.variable.shape, -0.5, 0.5, 'float32', 9));
    }
    const losses = new Map([plain, plus].map((adapter) => [adapter, nextTokenLoss(model, adapter)]));
    const lossOf = (adapter: AdapterModel) => losses.get(adapter)!.loss;
    const gradsOf = (adapter: AdapterModel) => {
      const { value, grads } = tf.variableGrads(
        lossOf(adapter),
        adapter.trainable().map((p) => p.variable),
      );
      value.dispose();
      const out = new Map(adapter.trainable().map((p) => [p.name, grads[p.variable.name]!.dataSync() as Float32Array]));
      tf.dispose(Object.values(grads));
      return out;
    };
    const gPlain = gradsOf(plain);
    const gPlus = gradsOf(plus);
    expect([...gPlus.keys()]).toEqual([...gPlain.keys()]);
    for (const [name, g] of gPlus) expect(g, name).toEqual(gPlain.get(name));

    const eps = 1e-2;
    for (const { name, variable } of plus.trainable().slice(0, 4)) {
      const grad = gPlus.get(name)!;
      const values = variable.dataSync() as Float32Array;
      const i = [...grad.keys()].sort((a, b) => Math.abs(grad[b]!) - Math.abs(grad[a]!))[0]!;
      const at = (delta: number) => {
        const copy = Float32Array.from(values);
        copy[i] = values[i]! + delta;
        tf.tidy(() => variable.assign(tf.tensor(copy, variable.shape)));
        const l = lossOf(plus)();
        const v = l.dataSync()[0]!;
        l.dispose();
        return v;
      };
      const numeric = (at(eps) - at(-eps)) / (2 * eps);
      tf.tidy(() => variable.assign(tf.tensor(values, variable.shape)));
      expect(Math.abs(numeric - grad[i]!), `${name}[${i}]`).toBeLessThanOrEqual(1e-2 * Math.abs(grad[i]!) + 1e-4);
      expect(Math.abs(grad[i]!)).toBeGreaterThan(1e-3);
    }
    for (const { dispose } of losses.values()) dispose();
    plain.dispose();
    plus.dispose();
    model.dispose();
  });
});

describe('LoRA+ training through runTraining', () => {
  let plain: MethodRun;
  let ratio1: MethodRun;
  let ratio16: MethodRun;
  beforeAll(async () => {
    plain = await trainTiny(root, 'lora', { method: 'lora' });
    ratio1 = await trainTiny(root, 'lora-plus-1', { method: 'lora-plus', loraPlus: { ratio: 1 } });
    ratio16 = await trainTiny(root, 'lora-plus-16', { method: 'lora-plus', loraPlus: { ratio: 16 }, training: { learningRate: 5e-3 } });
  }, 120_000);

  it('with lambda = 1 retraces plain LoRA exactly', () => {
    for (const run of [plain, ratio1]) expect(run.messages.filter((m) => m.type === 'failed')).toEqual([]);
    const losses = plain.points('train/loss').map((p) => p.value);
    expect(losses).toHaveLength(24);
    expect(ratio1.points('train/loss').map((p) => p.value)).toEqual(losses);
    expect(ratio1.points('val/loss').map((p) => p.value)).toEqual(plain.points('val/loss').map((p) => p.value));
  });

  it('with lambda = 16 logs both rates, B at 16x A through the schedule, and learns', () => {
    expect(ratio16.messages.filter((m) => m.type === 'failed')).toEqual([]);
    const lrA = ratio16.points('lr/lora_A').map((p) => p.value);
    const lrB = ratio16.points('lr/lora_B').map((p) => p.value);
    expect(lrA).toHaveLength(24);
    lrB.forEach((b, k) => expect(b).toBeCloseTo(16 * lrA[k]!, 12));
    expect(lrA[1]).toBeCloseTo(5e-3, 12); // end of warmup: the peak
    const loss = ratio16.points('train/loss').map((p) => p.value);
    expect(mean(loss.slice(-4))).toBeLessThan(mean(loss.slice(0, 4)) - 0.3);
  });

  it('exports as plain PEFT LoRA with lambda in the sidecar only, and the export verifies', async () => {
    const adapterDir = path.join(ratio16.runDir, 'adapter');
    const peft = JSON.parse(fs.readFileSync(path.join(adapterDir, ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
    const plainPeft = JSON.parse(fs.readFileSync(path.join(plain.runDir, 'adapter', ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
    expect(peft).toEqual(plainPeft);
    expect(JSON.stringify(peft)).not.toMatch(/ratio|lora-plus|loraPlus/);
    const sidecar = JSON.parse(fs.readFileSync(path.join(adapterDir, SIDECAR_FILE), 'utf8')) as { method: string; config: { loraPlus: { ratio: number } } };
    expect(sidecar.method).toBe('lora-plus');
    expect(sidecar.config.loraPlus.ratio).toBe(16);
    const report = await ratio16.exportTo(adapterDir, path.join(root, 'export-lora-plus'));
    expect(report.verification).toMatchObject({ passed: true });
    expect(report.verification.maxAbsDiffToTrained).toBeLessThanOrEqual(1e-5);
  });
});
