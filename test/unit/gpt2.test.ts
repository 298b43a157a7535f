// GPT-2 against PyTorch: scripts/make-fixtures-gpt2.py evaluates GPT2LMHeadModel in float64 on the
// float32 weights of test/fixtures/gpt2-tiny; our float32 forward must agree within 1e-4 on cpu and
// wasm (and on webgpu under `npm run test:webgpu`, see test/helpers/backends.ts). Plus the properties
// a causal LM must have whatever its weights.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { createGPT2, geluNew, gpt2ConfigFromHF, randomGPT2Weights, type GPT2Config } from '../../src-worker/models/gpt2.ts';
import { frozenLinear, matMul } from '../../src-worker/models/ops.ts';
import type { AdapterHooks } from '../../src-worker/models/types.ts';
import { tf } from '../../src-worker/tf.ts';
import { testBackends, valuesOf } from '../helpers/backends.ts';
import { maxAbsDiff } from '../../src-worker/export/probe.ts';

const fixtureDir = path.join(import.meta.dirname, '..', 'fixtures', 'gpt2-tiny');
const reference = JSON.parse(fs.readFileSync(path.join(fixtureDir, 'logits.json'), 'utf-8')) as {
  input_ids: number[][];
  shape: number[];
  logits: number[];
};
const tiny: GPT2Config = {
  vocabSize: 40,
  nPositions: 16,
  nEmbd: 16,
  nLayer: 2,
  nHead: 4,
  nInner: 64,
  layerNormEpsilon: 1e-5,
  activation: 'gelu_new',
  scaleAttnByInverseLayerIdx: false,
};

afterAll(async () => {
  await initBackend('cpu');
});

describe.each(testBackends(['cpu', 'wasm']))('GPT-2 parity with PyTorch on %s', (backend) => {
  it('logits match GPT2LMHeadModel within 1e-4 and nothing leaks', async () => {
    await initBackend(backend);
    const before = tf.memory().numTensors;
    const model = await loadCausalLM(fixtureDir);
    const ids = tf.tensor2d(reference.input_ids, undefined, 'int32');
    const logits = model.forward(ids);
    expect(logits.shape).toEqual(reference.shape);
    expect(maxAbsDiff(await valuesOf(logits), reference.logits)).toBeLessThan(1e-4);
    tf.dispose([ids, logits]);
    model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('GPT-2 forward', () => {
  it('is causal: changing a later token leaves earlier logits unchanged', async () => {
    await initBackend('cpu');
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 7, 0.2));
    const a = tf.tensor2d([[3, 1, 4, 1, 5, 9]], undefined, 'int32');
    const b = tf.tensor2d([[3, 1, 4, 1, 5, 2]], undefined, 'int32');
    const la = model.forward(a);
    const lb = model.forward(b);
    const prefix = (t: tf.Tensor3D) => tf.slice(t, [0, 0, 0], [1, 5, tiny.vocabSize]).dataSync();
    expect(maxAbsDiff(prefix(la), prefix(lb))).toBe(0);
    expect(maxAbsDiff(la.dataSync(), lb.dataSync())).toBeGreaterThan(1e-3);
    tf.dispose([a, b, la, lb]);
    model.dispose();
  });

  it('logits are the final hidden states times the tied embedding', async () => {
    const weights = randomGPT2Weights(tiny, 3, 0.2);
    const model = createGPT2(tiny, weights);
    const ids = tf.tensor2d(
      [
        [0, 5, 7],
        [39, 2, 2],
      ],
      undefined,
      'int32',
    );
    const hidden = model.hiddenStates(ids);
    expect(hidden.shape).toEqual([2, 3, 16]);
    const wte = tf.tensor2d(weights.get('transformer.wte.weight')!.data, [40, 16]);
    const expected = tf.matMul(tf.reshape(hidden, [6, 16]), wte, false, true);
    const logits = model.forward(ids);
    expect(maxAbsDiff(logits.dataSync(), expected.dataSync())).toBeLessThan(1e-5);
    tf.dispose([ids, hidden, wte, expected, logits]);
    model.dispose();
  });

  it('consults the adapter hooks at every linear layer, by module path', () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 5, 0.2));
    const seen: string[] = [];
    const recorder: AdapterHooks = {
      delta: (p, x) => {
        seen.push(`${p}:${x.shape[1]}`);
        return null;
      },
    };
    const ids = tf.tensor2d([[1, 2, 3]], undefined, 'int32');
    const base = model.forward(ids);
    const observed = model.forward(ids, { adapters: recorder });
    expect(maxAbsDiff(base.dataSync(), observed.dataSync())).toBe(0);
    expect(seen).toEqual(
      [0, 1].flatMap((i) => [
        `transformer.h.${i}.attn.c_attn:16`,
        `transformer.h.${i}.attn.c_proj:16`,
        `transformer.h.${i}.mlp.c_fc:16`,
        `transformer.h.${i}.mlp.c_proj:64`,
      ]),
    );
    expect(model.linearModules().map((m) => [m.path, m.inFeatures, m.outFeatures, m.fanInFanOut])).toContainEqual(['transformer.h.1.mlp.c_fc', 16, 64, true]);
    // A delta on one module moves the output (not a constant one: ln_f would remove it).
    const shift: AdapterHooks = { delta: (p, x) => (p === 'transformer.h.1.mlp.c_proj' ? tf.slice(x, [0, 0], [-1, 16]) : null) };
    const shifted = model.forward(ids, { adapters: shift });
    expect(maxAbsDiff(base.dataSync(), shifted.dataSync())).toBeGreaterThan(1e-3);
    tf.dispose([ids, base, observed, shifted]);
    model.dispose();
  });

  it('rejects sequences longer than n_positions', () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 1));
    const ids = tf.zeros([1, 17], 'int32') as tf.Tensor2D;
    expect(() => model.forward(ids)).toThrow(/exceeds the model's 16 positions/);
    ids.dispose();
    model.dispose();
  });
});

describe.each(['cpu', 'wasm'] as const)('ops.ts products on %s', (backend) => {
  // The wasm path replaces tfjs's MatMul gradient with explicit transposes; both must equal tf.matMul's.
  it('matMul and frozenLinear have the values and gradients of tf.matMul', async () => {
    await initBackend('cpu');
    const a = tf.randomNormal([2, 3, 5, 4], 0, 1, 'float32', 1);
    const b = tf.randomNormal([2, 3, 6, 4], 0, 1, 'float32', 2);
    const w = tf.randomNormal([4, 7], 0, 1, 'float32', 3);
    const bias = tf.randomNormal([7], 0, 1, 'float32', 4);
    const x = tf.randomNormal([5, 4], 0, 1, 'float32', 5);
    const r = tf.randomNormal([2, 3, 5, 6], 0, 1, 'float32', 6);
    const r2 = tf.randomNormal([5, 7], 0, 1, 'float32', 7);
    const loss = (y: tf.Tensor, weights: tf.Tensor) => tf.sum(tf.mul(y, weights));
    const reference = tf.grads((p: tf.Tensor, q: tf.Tensor) => loss(tf.matMul(p, q, false, true), r))([a, b]);
    const referenceX = tf.grad((p: tf.Tensor) => loss(tf.add(tf.matMul(p, w), bias), r2))(x);
    const referenceY = tf.add(tf.matMul(x, w), bias);
    await initBackend(backend);
    const ours = tf.grads((p: tf.Tensor, q: tf.Tensor) => loss(matMul(p, q, false, true), r))([a, b]);
    const wT = tf.transpose(w) as tf.Tensor2D;
    for (const weight of [{ w: w as tf.Tensor2D }, { wT }, { w: w as tf.Tensor2D, wT }]) {
      const y = frozenLinear(x as tf.Tensor2D, weight, bias as tf.Tensor1D);
      expect(maxAbsDiff(y.dataSync(), referenceY.dataSync())).toBeLessThan(1e-5);
      const gx = tf.grad((p: tf.Tensor) => loss(frozenLinear(p as tf.Tensor2D, weight, bias as tf.Tensor1D), r2))(x);
      expect(maxAbsDiff(gx.dataSync(), referenceX.dataSync())).toBeLessThan(1e-5);
      tf.dispose([y, gx]);
    }
    for (let i = 0; i < 2; i++) expect(maxAbsDiff(ours[i]!.dataSync(), reference[i]!.dataSync())).toBeLessThan(1e-5);
    tf.dispose([a, b, w, wT, bias, x, r, r2, referenceX, referenceY, ...reference, ...ours]);
    await initBackend('cpu');
  });
});

describe('gelu_new', () => {
  it('has the derivative of the tanh formula (custom gradient vs autodiff of the composite)', () => {
    const x = tf.linspace(-6, 6, 241);
    const composite = (v: tf.Tensor) => {
      const inner = tf.mul(tf.add(v, tf.mul(tf.pow(v, 3), 0.044715)), Math.sqrt(2 / Math.PI));
      return tf.mul(tf.mul(v, 0.5), tf.add(tf.tanh(inner), 1));
    };
    const ours = tf.grad((v: tf.Tensor) => tf.sum(geluNew(v)))(x);
    const reference = tf.grad((v: tf.Tensor) => tf.sum(composite(v)))(x);
    expect(maxAbsDiff(geluNew(x).dataSync(), composite(x).dataSync())).toBeLessThan(1e-6);
    expect(maxAbsDiff(ours.dataSync(), reference.dataSync())).toBeLessThan(1e-5);
    tf.dispose([x, ours, reference]);
  });
});

describe('loading checks', () => {
  const expectInvalid = (fn: () => unknown, pattern: RegExp) => {
    try {
      fn();
    } catch (error) {
      expect(error).toBeInstanceOf(WorkbenchError);
      expect((error as WorkbenchError).code).toBe('model_invalid');
      expect((error as WorkbenchError).message).toMatch(pattern);
      return;
    }
    throw new Error(`expected an error matching ${pattern}`);
  };

  it('names a missing tensor, a wrong shape and unexpected tensors', () => {
    const missing = randomGPT2Weights(tiny, 1);
    missing.delete('transformer.h.1.mlp.c_fc.bias');
    expectInvalid(() => createGPT2(tiny, missing), /missing tensor transformer\.h\.1\.mlp\.c_fc\.bias \(expected shape \[64\]\)/);

    const wrong = randomGPT2Weights(tiny, 1);
    wrong.set('transformer.h.0.attn.c_attn.weight', { shape: [48, 16], data: new Float32Array(48 * 16) });
    expectInvalid(() => createGPT2(tiny, wrong), /transformer\.h\.0\.attn\.c_attn\.weight has shape \[48,16\], expected \[16,48\]/);

    const extra = randomGPT2Weights(tiny, 1);
    extra.set('transformer.h.2.ln_1.weight', { shape: [16], data: new Float32Array(16) });
    expectInvalid(() => createGPT2(tiny, extra), /unexpected tensors for GPT-2 with 2 layers: transformer\.h\.2\.ln_1\.weight/);
  });

  it('reads Hugging Face config.json and names bad fields', () => {
    const hf = JSON.parse(fs.readFileSync(path.join(fixtureDir, 'config.json'), 'utf-8'));
    expect(gpt2ConfigFromHF(hf)).toEqual({
      vocabSize: 264,
      nPositions: 32,
      nEmbd: 32,
      nLayer: 2,
      nHead: 4,
      nInner: 128,
      layerNormEpsilon: 1e-5,
      activation: 'gelu_new',
      scaleAttnByInverseLayerIdx: false,
    });
    expectInvalid(() => gpt2ConfigFromHF({ ...hf, n_head: 5 }), /n_embd 32 is not divisible by n_head 5/);
    expectInvalid(() => gpt2ConfigFromHF({ ...hf, activation_function: 'swish' }), /activation_function "swish" is not supported; supported: gelu_new/);
    expectInvalid(() => gpt2ConfigFromHF({ ...hf, n_layer: undefined }), /"n_layer" is undefined, expected a positive integer/);
  });
});
