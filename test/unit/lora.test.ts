// LoRA as METHODS.md section 1 and PEFT define it: starts equal to the base model, gradients agree
// with finite differences, the adapted forward matches PyTorch (y = x W + b + s x A^T B^T) on the
// fixture weights, PEFT's tensor names and config, and target selection with named errors.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoraSettingsSchema, type LoraSettings } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { readSafetensorsFile } from '../../src-worker/formats/safetensors.ts';
import { getMethod, methodIds, registerMethod } from '../../src-worker/methods/index.ts';
import { lora, LoraModel, selectTargets } from '../../src-worker/methods/lora.ts';
import type { AdapterModel } from '../../src-worker/methods/types.ts';
import { createGPT2, randomGPT2Weights, type GPT2Config } from '../../src-worker/models/gpt2.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { tf } from '../../src-worker/tf.ts';
import { checkGradients } from '../helpers/finite-differences.ts';
import { maxAbsDiff } from '../../src-worker/export/probe.ts';
import { lossOf, tinyGPT2 } from './baseline-models.ts';

const fixtureDir = path.join(import.meta.dirname, '..', 'fixtures', 'gpt2-tiny');
const reference = JSON.parse(fs.readFileSync(path.join(fixtureDir, 'logits.json'), 'utf-8')) as {
  input_ids: number[][];
  logits: number[];
  lora: { r: number; alpha: number; logits: number[] };
};
const tiny: GPT2Config = { ...tinyGPT2, nPositions: 8 };

const settings = (over: Partial<LoraSettings> = {}): LoraSettings => LoraSettingsSchema.parse({ dropout: 0, ...over });

function logitsOf(model: CausalLM, ids: number[][], adapters?: AdapterModel, training = false): Float32Array {
  const input = tf.tensor2d(ids, undefined, 'int32');
  const out = model.forward(input, { adapters, training });
  const data = out.dataSync() as Float32Array;
  tf.dispose([input, out]);
  return data;
}

/** Replaces every lora_B (PEFT starts it at zero, which hides the adapter) with seeded values. */
function randomizeB(adapter: AdapterModel, seed: number, std = 0.3): void {
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  let s = seed;
  for (const [name, t] of adapter.stateDict()) {
    const data = t.dataSync() as Float32Array;
    if (name.endsWith('lora_B.weight')) {
      for (let i = 0; i < data.length; i++) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        data[i] = (s / 2 ** 32 - 0.5) * 2 * std;
      }
    }
    tensors.set(name, { shape: t.shape, data: Float32Array.from(data) });
    t.dispose();
  }
  adapter.loadStateDict(tensors);
}

beforeAll(async () => {
  await initBackend('cpu');
});

afterAll(async () => {
  await initBackend('cpu');
});

describe('LoRA starts at the base model', () => {
  it('with B = 0 the adapted logits equal the base logits exactly; with B random they differ', async () => {
    const model = await loadCausalLM(fixtureDir);
    const adapter = lora.create(model, settings({ r: 4, targetModules: ['c_attn', 'c_proj', 'c_fc'] }), 42);
    const base = logitsOf(model, reference.input_ids);
    expect(maxAbsDiff(logitsOf(model, reference.input_ids, adapter), base)).toBe(0);
    randomizeB(adapter, 1);
    expect(maxAbsDiff(logitsOf(model, reference.input_ids, adapter), base)).toBeGreaterThan(0.1);
    adapter.dispose();
    model.dispose();
  });
});

describe.each(['cpu', 'wasm'] as const)('LoRA parity with PyTorch on %s', (backend) => {
  it('the adapted forward (s x A^T B^T added to c_attn) matches torch within 1e-4', async () => {
    await initBackend(backend);
    const before = tf.memory().numTensors;
    const model = await loadCausalLM(fixtureDir);
    const adapter = lora.create(model, settings({ r: reference.lora.r, alpha: reference.lora.alpha, targetModules: ['c_attn'] }), 0);
    adapter.loadStateDict((await readSafetensorsFile(path.join(fixtureDir, 'lora-c_attn', 'adapter_model.safetensors'))).tensors);
    const adapted = logitsOf(model, reference.input_ids, adapter);
    expect(maxAbsDiff(adapted, reference.lora.logits)).toBeLessThan(1e-4);
    // The delta is large compared with the tolerance, so the check is not vacuous.
    expect(maxAbsDiff(reference.lora.logits, reference.logits)).toBeGreaterThan(1);
    adapter.dispose();
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
    await initBackend('cpu');
  });
});

describe.each(['cpu', 'wasm'] as const)('LoRA gradients on %s', (backend) => {
  it('match central finite differences for A and B in several layers', async () => {
    await initBackend(backend);
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 11, 0.3));
    const adapter = lora.create(model, settings({ r: 2, alpha: 4, targetModules: ['c_attn', 'c_fc'] }), 3);
    randomizeB(adapter, 5);
    const { loss, dispose } = lossOf(model, adapter);
    const trainable = adapter.trainable();
    expect(checkGradients(loss, trainable, { entriesPerTensor: 2, rtol: 1e-2 })).toBe(2 * trainable.length);
    dispose();
    adapter.dispose();
    model.dispose();
    await initBackend('cpu');
  });

  it('reach only the adapter: base weights are plain tensors', () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 2, 0.3));
    const adapter = lora.create(model, settings({ r: 2 }), 1);
    const ids = tf.tensor2d([[1, 2, 3]], undefined, 'int32');
    const { value, grads } = tf.variableGrads(() => tf.mean(model.forward(ids, { adapters: adapter })) as tf.Scalar);
    expect(Object.keys(grads).sort()).toEqual(
      adapter
        .trainable()
        .map((t) => t.variable.name)
        .sort(),
    );
    tf.dispose([value, ids, ...Object.values(grads)]);
    adapter.dispose();
    model.dispose();
  });
});

describe('LoRA layout and PEFT names', () => {
  let model: CausalLM;
  beforeAll(async () => {
    model = await loadCausalLM(fixtureDir);
  });
  afterAll(() => model.dispose());

  it('stores A [r, in] and B [out, r] under base_model.model.<path>.lora_{A,B}.weight', () => {
    const adapter = lora.create(model, settings({ r: 4, targetModules: ['c_attn', 'c_proj'] }), 7);
    const state = adapter.stateDict();
    expect(state.get('base_model.model.transformer.h.0.attn.c_attn.lora_A.weight')!.shape).toEqual([4, 32]);
    expect(state.get('base_model.model.transformer.h.0.attn.c_attn.lora_B.weight')!.shape).toEqual([96, 4]);
    expect(state.get('base_model.model.transformer.h.1.mlp.c_proj.lora_A.weight')!.shape).toEqual([4, 128]);
    expect(state.get('base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight')!.shape).toEqual([32, 4]);
    expect(state.size).toBe(2 * 2 * 3); // 2 layers x (attn.c_attn, attn.c_proj, mlp.c_proj) x (A, B)
    expect(adapter.trainableParamCount()).toBe(2 * 4 * (32 + 96 + (32 + 32) + (128 + 32)));
    expect(new Set(adapter.trainable().map((t) => t.group))).toEqual(new Set(['lora_A', 'lora_B']));
    expect(adapter.trainable().every((t) => t.group === (t.name.includes('lora_A') ? 'lora_A' : 'lora_B'))).toBe(true);

    // stateDict hands out copies: disposing them leaves the adapter intact.
    tf.dispose([...state.values()]);
    expect(adapter.stateDict().size).toBe(12);
    adapter.dispose();
  });

  it('initializes A kaiming-uniform (bound 1/sqrt(in)), B zero, deterministically per seed and module', () => {
    const a = lora.create(model, settings({ r: 8, targetModules: ['c_fc'] }), 1);
    const b = lora.create(model, settings({ r: 8, targetModules: ['c_fc'] }), 1);
    const c = lora.create(model, settings({ r: 8, targetModules: ['c_fc'] }), 2);
    const get = (m: AdapterModel, key: string) => {
      const t = m.stateDict().get(`base_model.model.transformer.h.${key}.weight`)!;
      const data = t.dataSync() as Float32Array;
      t.dispose();
      return data;
    };
    const a0 = get(a, '0.mlp.c_fc.lora_A');
    expect(Math.max(...a0.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(32));
    expect(Math.max(...a0.map(Math.abs))).toBeGreaterThan(0.9 / Math.sqrt(32)); // fills the interval
    expect(Math.abs(a0.reduce((s, v) => s + v, 0) / a0.length)).toBeLessThan(0.03);
    expect(Array.from(get(a, '0.mlp.c_fc.lora_B')).every((v) => v === 0)).toBe(true);
    expect(Array.from(a0)).toEqual(Array.from(get(b, '0.mlp.c_fc.lora_A')));
    expect(Array.from(a0)).not.toEqual(Array.from(get(c, '0.mlp.c_fc.lora_A')));
    expect(Array.from(a0)).not.toEqual(Array.from(get(a, '1.mlp.c_fc.lora_A')));
    for (const m of [a, b, c]) m.dispose();
  });

  it('scales by alpha / r, or alpha / sqrt(r) with rsLoRA', () => {
    const plain = new LoraModel(model, settings({ r: 4, alpha: 8 }), 0);
    const rs = new LoraModel(model, settings({ r: 4, alpha: 8, useRslora: true }), 0);
    expect(plain.scaling).toBe(2);
    expect(rs.scaling).toBe(4);
    // Same A and B, so the rsLoRA delta is exactly twice the plain one.
    randomizeB(plain, 3);
    randomizeB(rs, 3);
    const x = tf.randomNormal([5, 32], 0, 1, 'float32', 1);
    const dPlain = plain.delta('transformer.h.0.attn.c_attn', x, false)!;
    const dRs = rs.delta('transformer.h.0.attn.c_attn', x, false)!;
    expect(maxAbsDiff(dRs.dataSync(), tf.mul(dPlain, 2).dataSync())).toBeLessThan(1e-5);
    expect(plain.delta('transformer.h.0.mlp.c_fc', x, false)).toBeNull();
    tf.dispose([x, dPlain, dRs]);
    plain.dispose();
    rs.dispose();
  });

  it('applies inverted dropout to the adapter input only when training, reproducibly', () => {
    const make = () => {
      const m = new LoraModel(model, settings({ r: 4, dropout: 0.5, targetModules: ['c_attn'] }), 9);
      randomizeB(m, 4);
      return m;
    };
    const [m1, m2] = [make(), make()];
    const x = tf.ones([64, 32]);
    const path0 = 'transformer.h.0.attn.c_attn';
    const evalDelta = m1.delta(path0, x, false)!;
    const t1 = m1.delta(path0, x, true)!;
    const t1b = m1.delta(path0, x, true)!;
    const t2 = m2.delta(path0, x, true)!;
    expect(maxAbsDiff(t1.dataSync(), evalDelta.dataSync())).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(t1.dataSync(), t1b.dataSync())).toBeGreaterThan(1e-3); // a fresh mask per call
    expect(maxAbsDiff(t1.dataSync(), t2.dataSync())).toBe(0); // the same run seed gives the same masks
    // Inverted dropout keeps the expectation: averaged over many masks (100 calls x 64 identical rows),
    // the delta approaches the eval one; one mask alone is off by about its own size.
    const samples = Array.from({ length: 100 }, () => m1.delta(path0, x, true)!);
    const mean = tf.mean(tf.stack(samples), [0, 1]);
    const evalRow = tf.slice(evalDelta, [0, 0], [1, -1]);
    const scale = Math.max(...Array.from(evalRow.dataSync(), Math.abs));
    expect(maxAbsDiff(mean.dataSync(), evalRow.dataSync()) / scale).toBeLessThan(0.1);
    expect(maxAbsDiff(tf.slice(t1, [0, 0], [1, -1]).dataSync(), evalRow.dataSync()) / scale).toBeGreaterThan(0.2);
    tf.dispose([x, evalDelta, evalRow, t1, t1b, t2, mean, ...samples]);
    m1.dispose();
    m2.dispose();
  });

  it('loadStateDict names missing, unexpected and misshapen tensors', () => {
    const adapter = lora.create(model, settings({ r: 4, targetModules: ['c_attn'] }), 0);
    const full = new Map([...adapter.stateDict()].map(([k, t]) => [k, { shape: t.shape, data: t.dataSync() as Float32Array }]));
    const error = (tensors: Map<string, { shape: number[]; data: Float32Array }>) => {
      try {
        adapter.loadStateDict(tensors);
      } catch (e) {
        expect((e as WorkbenchError).code).toBe('format_invalid');
        return (e as Error).message;
      }
      throw new Error('expected loadStateDict to throw');
    };
    const missing = new Map(full);
    missing.delete('base_model.model.transformer.h.1.attn.c_attn.lora_B.weight');
    expect(error(missing)).toMatch(/missing base_model\.model\.transformer\.h\.1\.attn\.c_attn\.lora_B\.weight/);
    const extra = new Map(full).set('base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight', { shape: [4, 32], data: new Float32Array(128) });
    expect(error(extra)).toMatch(/unexpected base_model\.model\.transformer\.h\.0\.mlp\.c_fc\.lora_A\.weight/);
    const misshapen = new Map(full).set('base_model.model.transformer.h.0.attn.c_attn.lora_A.weight', { shape: [8, 32], data: new Float32Array(256) });
    expect(error(misshapen)).toMatch(/lora_A\.weight has shape \[8,32\], expected \[4,32\]/);
    adapter.dispose();
  });

  it('writes the PEFT LoraConfig fields', () => {
    const adapter = lora.create(model, settings({ r: 4, alpha: 8, dropout: 0.1, targetModules: ['c_proj', 'c_attn'] }), 0);
    expect(adapter.peftConfig('gpt2-tiny')).toEqual({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 4,
      lora_alpha: 8,
      lora_dropout: 0.1,
      target_modules: ['c_attn', 'c_proj'],
      fan_in_fan_out: true,
      bias: 'none',
      use_rslora: false,
      base_model_name_or_path: 'gpt2-tiny',
      inference_mode: true,
      modules_to_save: null,
      init_lora_weights: true,
      layers_to_transform: null,
      layers_pattern: null,
      rank_pattern: {},
      alpha_pattern: {},
      revision: null,
    });
    adapter.dispose();
  });
});

describe('target selection', () => {
  const modules = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'].flatMap((m, j) =>
    [0, 1].map((i) => ({ path: `transformer.h.${i}.${m}`, inFeatures: 8 + j, outFeatures: 8, fanInFanOut: true })),
  );
  const paths = (patterns: string[]) =>
    selectTargets(modules, patterns)
      .targets.map((m) => m.path)
      .sort();

  it('matches names as PEFT does: the last component or a dotted suffix', () => {
    expect(paths(['c_attn'])).toEqual(['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn']);
    expect(paths(['c_proj'])).toHaveLength(4);
    expect(paths(['attn.c_proj'])).toEqual(['transformer.h.0.attn.c_proj', 'transformer.h.1.attn.c_proj']);
    expect(() => paths(['proj'])).toThrow(/match no linear layer/); // not a suffix at a dot
  });

  it('searches /regex/ patterns in the full path and exports an exact regex when names would select more', () => {
    expect(paths(['/h\\.1\\.mlp/'])).toEqual(['transformer.h.1.mlp.c_fc', 'transformer.h.1.mlp.c_proj']);
    expect(selectTargets(modules, ['/c_fc$/']).peftTargetModules).toEqual(['c_fc']);
    expect(selectTargets(modules, ['/h\\.1\\.mlp/']).peftTargetModules).toBe('transformer\\.h\\.1\\.mlp\\.c_fc|transformer\\.h\\.1\\.mlp\\.c_proj');
    expect(selectTargets(modules, ['attn.c_proj', 'c_fc', 'q_proj']).peftTargetModules).toEqual(['attn.c_proj', 'c_fc']);
    expect(selectTargets(modules, ['/h\\.0\\.attn\\.c_proj/', 'c_fc']).peftTargetModules).toBe(
      'transformer\\.h\\.0\\.attn\\.c_proj|transformer\\.h\\.0\\.mlp\\.c_fc|transformer\\.h\\.1\\.mlp\\.c_fc',
    );
  });

  it('lists the available module names when nothing matches, and rejects a bad regex', () => {
    let error: unknown;
    try {
      selectTargets(modules, ['q_proj', 'v_proj']);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(WorkbenchError);
    expect((error as WorkbenchError).code).toBe('invalid_input');
    expect((error as WorkbenchError).message).toMatch(/match no linear layer.*Available module names: c_attn, c_proj, c_fc/);
    expect(() => selectTargets(modules, ['/(/'])).toThrow(/not a valid regular expression/);
  });
});

describe('method registry', () => {
  it('finds lora, lists known ids for an unknown one, refuses duplicates', () => {
    expect(getMethod('lora')).toBe(lora);
    expect(methodIds()).toEqual(['lora', 'lora-plus', 'selora', 'bias-aware', 'full', 'bitfit', 'prompt-tuning', 'houlsby', 'qlora']);
    expect(() => getMethod('dora')).toThrow(
      /Unknown method "dora"; known methods: lora, lora-plus, selora, bias-aware, full, bitfit, prompt-tuning, houlsby, qlora\./,
    );
    expect(() => registerMethod(lora)).toThrow(/already registered/);
    expect(() => getMethod('lora').parseSettings({ r: 0 })).toThrow(/r:/);
  });
});
