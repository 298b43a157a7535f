// Full fine-tuning and BitFit (METHODS.md section 6): both train base parameters through the model's
// `parameter` hook. Gradients against finite differences on GPT-2 and Llama (whose linear weights the
// forward keeps transposed), BitFit touching only biases, the refusals with their reasons, training
// that lowers the loss, and exports PEFT cannot misread (no adapter_config.json) that still round-trip.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, SIDECAR_FILE } from '../../src-worker/formats/adapter-folder.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { readSafetensorsFile } from '../../src-worker/formats/safetensors.ts';
import { bitfit, createBitFit, createFullFineTuning, full, FULL_FINE_TUNING_MAX_PARAMS } from '../../src-worker/methods/base-parameters.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { tf } from '../../src-worker/tf.ts';
import { checkGradients } from '../helpers/finite-differences.ts';
import { adamWStep, gpt2, llama, logitsOf, lossOf } from './baseline-models.ts';
import { maxAbsDiff } from '../../src-worker/export/probe.ts';
import { mean, tempRoot, trainTiny } from './method-run.ts';

const root = tempRoot('lwb-full-');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe.each(['cpu', 'wasm'] as const)('gradients of trained base parameters on %s', (backend) => {
  it.each([
    ['full fine-tuning, GPT-2 (tied head, position table)', () => gpt2(), (m: CausalLM) => createFullFineTuning(m, { trainEmbeddings: true })],
    ['full fine-tuning, Llama (untied head, transposed weights)', () => llama(), (m: CausalLM) => createFullFineTuning(m, { trainEmbeddings: true })],
    ['BitFit, GPT-2', () => gpt2(), (m: CausalLM) => createBitFit(m, { includeNormBiases: true })],
    ['BitFit, Qwen2 (q/k/v biases)', () => llama({ modelType: 'qwen2', qkvBias: true }), (m: CausalLM) => createBitFit(m, { includeNormBiases: true })],
  ])('%s: match central finite differences for every tensor', async (_name, makeModel, makeAdapter) => {
    await initBackend(backend);
    const model = makeModel();
    const adapter = makeAdapter(model);
    const { loss, dispose } = lossOf(model, adapter);
    const trainable = adapter.trainable();
    expect(checkGradients(loss, trainable, { entriesPerTensor: 1, rtol: 2e-2, atol: 2e-4 })).toBe(trainable.length);
    dispose();
    adapter.dispose();
    model.dispose();
    await initBackend('cpu');
  });
});

describe('full fine-tuning', () => {
  it('trains every base parameter: 100% of the model, equal to it before a step', () => {
    const model = llama();
    const base = logitsOf(model, null);
    const adapter = full.create(model, full.parseSettings({}), 1);
    expect(adapter.trainableParamCount()).toBe(model.parameterCount());
    expect(adapter.trainsBaseParameters).toBe(true);
    expect(logitsOf(model, adapter)).toEqual(base);
    adamWStep(model, adapter);
    expect(maxAbsDiff(logitsOf(model, adapter), base)).toBeGreaterThan(1e-3);
    // The loaded model itself is untouched: evaluation without the adapter still sees the base.
    expect(logitsOf(model, null)).toEqual(base);
    adapter.dispose();
    model.dispose();
  });

  it('freezes the embeddings when asked', () => {
    const model = gpt2();
    const adapter = createFullFineTuning(model, { trainEmbeddings: false });
    const names = adapter.trainable().map((t) => t.name);
    expect(names).not.toContain('transformer.wte.weight');
    expect(names).not.toContain('transformer.wpe.weight');
    expect(names).toContain('transformer.h.0.attn.c_attn.weight');
    adapter.dispose();
    model.dispose();
  });

  it('saves Llama weights in the checkpoint layout and loads them back exactly', () => {
    const model = llama();
    const adapter = createFullFineTuning(model, { trainEmbeddings: true });
    adamWStep(model, adapter);
    const trained = logitsOf(model, adapter);
    const state = new Map([...adapter.stateDict()].map(([k, t]) => [k, { shape: t.shape, data: t.dataSync() as Float32Array, t }]));
    // nn.Linear layout [out, in]: q_proj maps 16 -> 16, gate_proj 16 -> 24.
    expect(state.get('model.layers.0.mlp.gate_proj.weight')!.shape).toEqual([24, 16]);
    const fresh = createFullFineTuning(model, { trainEmbeddings: true });
    fresh.loadStateDict(new Map([...state].map(([k, v]) => [k, { shape: v.shape, data: v.data }])));
    expect(logitsOf(model, fresh)).toEqual(trained);
    tf.dispose([...state.values()].map((v) => v.t));
    fresh.dispose();
    adapter.dispose();
    model.dispose();
  });

  it(`refuses models above ${FULL_FINE_TUNING_MAX_PARAMS / 1e6}M parameters and says why`, () => {
    const model = gpt2();
    const big = Object.assign(Object.create(model) as CausalLM, { parameterCount: () => 355_000_000 });
    let error: unknown;
    try {
      createFullFineTuning(big, { trainEmbeddings: true });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(WorkbenchError);
    expect((error as WorkbenchError).code).toBe('invalid_input');
    expect((error as Error).message).toMatch(/130M.*355M.*five times the model's memory.*LoRA or QLoRA/);
    model.dispose();
  });

  it('lowers the training loss in a run; reports 100% trainable; exports without adapter_config.json', async () => {
    const run = await trainTiny(root, 'full', { method: 'full', training: { learningRate: 3e-3, maxSteps: 16 } });
    const failed = run.messages.find((m) => m.type === 'failed');
    expect(failed).toBeUndefined();
    const started = run.messages.find((m) => m.type === 'started');
    expect(started).toMatchObject({ type: 'started' });
    if (started?.type === 'started') expect(started.trainableParams).toBe(started.totalParams);
    expect(run.messages.some((m) => m.type === 'log' && /Trainable parameters: .*, 100% of the base/.test(m.message))).toBe(true);
    const losses = run.points('train/loss').map((p) => p.value);
    expect(mean(losses.slice(-4))).toBeLessThan(mean(losses.slice(0, 4)) - 0.3);
    const adapterDir = path.join(run.runDir, 'adapter');
    expect(fs.existsSync(path.join(adapterDir, ADAPTER_CONFIG_FILE))).toBe(false);
    expect(fs.existsSync(path.join(adapterDir, SIDECAR_FILE))).toBe(true);
    const report = await run.exportTo(adapterDir, path.join(root, 'full-export'));
    expect(report.verification.passed).toBe(true);
    expect(report.peftLoadable).toBe(false);
    expect(report.note).toMatch(/PEFT cannot load/);
    expect(fs.existsSync(path.join(root, 'full-export', ADAPTER_CONFIG_FILE))).toBe(false);
  }, 60_000);
});

describe('BitFit', () => {
  it('changes only bias terms in a step: every other weight the forward uses is bitwise unchanged', () => {
    const model = gpt2();
    const adapter = bitfit.create(model, bitfit.parseSettings({}), 1);
    const names = adapter.trainable().map((t) => t.name);
    expect(names.length).toBeGreaterThan(0);
    expect(names.every((n) => n.endsWith('.bias'))).toBe(true);
    // Linear and LayerNorm biases, ln_f's included.
    expect(names).toEqual(expect.arrayContaining(['transformer.h.0.attn.c_attn.bias', 'transformer.h.1.ln_2.bias', 'transformer.ln_f.bias']));
    const effective = () =>
      new Map(model.namedParameters!().map((p) => [p.key, Float32Array.from((adapter.parameter!(p.key) ?? p.tensor).dataSync() as Float32Array)]));
    const before = effective();
    adamWStep(model, adapter, 1e-2);
    const after = effective();
    for (const [key, values] of before) {
      if (key.endsWith('.bias')) expect(maxAbsDiff(after.get(key)!, values), key).toBeGreaterThan(0);
      else expect(after.get(key), key).toEqual(values);
    }
    adapter.dispose();
    model.dispose();
  });

  it('counts only the biases: linear biases alone without LayerNorms', () => {
    const model = gpt2();
    const withNorms = createBitFit(model, { includeNormBiases: true });
    const linearOnly = createBitFit(model, { includeNormBiases: false });
    const C = 8;
    // Per layer: c_attn 3C, attn.c_proj C, c_fc 16, mlp.c_proj C; LayerNorms ln_1, ln_2 (C each) and ln_f.
    expect(linearOnly.trainableParamCount()).toBe(2 * (3 * C + C + 16 + C));
    expect(withNorms.trainableParamCount()).toBe(linearOnly.trainableParamCount() + 2 * 2 * C + C);
    withNorms.dispose();
    linearOnly.dispose();
    model.dispose();
  });

  it('fails on a Llama model, which has no biases, with a message that says so', () => {
    const model = llama();
    expect(() => createBitFit(model, { includeNormBiases: true })).toThrow(/BitFit trains bias terms, and this llama model has none/);
    model.dispose();
  });

  it('trains in a run and exports the biases alone, without adapter_config.json', async () => {
    const run = await trainTiny(root, 'bitfit', { method: 'bitfit', training: { maxSteps: 12 } });
    expect(run.messages.find((m) => m.type === 'failed')).toBeUndefined();
    const adapterDir = path.join(run.runDir, 'adapter');
    const saved = await readSafetensorsFile(path.join(adapterDir, ADAPTER_WEIGHTS_FILE));
    expect([...saved.tensors.keys()].every((k) => k.endsWith('.bias'))).toBe(true);
    expect(fs.existsSync(path.join(adapterDir, ADAPTER_CONFIG_FILE))).toBe(false);
    const report = await run.exportTo(adapterDir, path.join(root, 'bitfit-export'));
    expect(report.verification.passed).toBe(true);
    expect(report.note).toMatch(/PEFT cannot load this folder: it has no adapter type for bitfit/);
  }, 60_000);
});
