// SeLoRA (METHODS.md section 3): starts as LoRA, the batched per-example forward, the Gram form of
// L_sem against brute force, finite-difference gradients through the task loss and L_sem, flattening,
// the native round trip, and a short run through runTraining with export verification.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoraSettingsSchema, SeloraSettingsSchema, type LoraSettings } from '../../src-shared/config.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { FLATTENED_ADAPTER_DIR } from '../../src-worker/formats/adapter-folder.ts';
import { ADAPTER_CONFIG_FILE, readSidecar, tensorsToData } from '../../src-worker/formats/adapter-folder.ts';
import { getMethod } from '../../src-worker/methods/index.ts';
import { lora } from '../../src-worker/methods/lora.ts';
import { gramFrobenius, selora, SeloraModel, SEMANTIC_MEAN_KEY } from '../../src-worker/methods/selora.ts';
import { cosineSimilarity as cosine } from '../../src-worker/eval/metrics.ts';
import type { AdapterModel } from '../../src-worker/methods/types.ts';
import { createGPT2, randomGPT2Weights, type GPT2Config } from '../../src-worker/models/gpt2.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { tf } from '../../src-worker/tf.ts';
import { AdamW } from '../../src-worker/train/adamw.ts';
import { trainStep } from '../../src-worker/train/loop.ts';
import { mean, tempRoot, trainTiny, type MethodRun } from './method-run.ts';
import { checkGradients } from '../helpers/finite-differences.ts';
import { maxAbsDiff } from '../../src-worker/export/probe.ts';
import { tinyGPT2 } from './baseline-models.ts';

const tiny: GPT2Config = { ...tinyGPT2, nPositions: 8 };
const root = tempRoot('lw-selora-');
const ids = [
  [1, 5, 9, 2, 7, 3],
  [4, 4, 0, 23, 11, 6],
  [1, 5, 9, 3, 3, 3],
];
const prompts = [
  [1, 5, 9],
  [4, 4, 0, 23],
  [1, 5, 9, 3],
];

const loraSettings = (over: Partial<LoraSettings> = {}) => LoraSettingsSchema.parse({ r: 2, alpha: 4, dropout: 0, targetModules: ['c_attn', 'c_fc'], ...over });
const make = (model: CausalLM, hiddenSize = 3, lambdaSem = 1) =>
  new SeloraModel(model, SeloraSettingsSchema.parse({ hiddenSize, lambdaSem }), loraSettings(), 3);

/** Seeded values for every zero-initialised tensor (lora_B, g's last layer), which would hide gradients. */
function randomize(adapter: AdapterModel, seed: number): void {
  for (const p of adapter.trainable()) {
    if (p.group === 'lora_B' || /selora_g\.2\./.test(p.name)) p.variable.assign(tf.randomUniform(p.variable.shape, -0.5, 0.5, 'float32', seed++));
  }
}

function logitsOf(model: CausalLM, adapter: AdapterModel | null, rows = ids): Float32Array {
  return tf.tidy(() => model.forward(tf.tensor2d(rows, undefined, 'int32'), { adapters: adapter, training: false }).dataSync() as Float32Array);
}

beforeAll(async () => {
  await initBackend('cpu');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('SeLoRA forward', () => {
  it("with g = 0 (its init) gives exactly LoRA's logits, and a trained g changes them per example", () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 4, 0.3));
    const plain = lora.create(model, loraSettings(), 3);
    const se = make(model);
    for (const adapter of [plain, se])
      for (const p of adapter.trainable()) if (p.group === 'lora_B') p.variable.assign(tf.randomUniform(p.variable.shape, -0.5, 0.5, 'float32', 21));
    se.prepare(model, prompts);
    expect(logitsOf(model, se)).toEqual(logitsOf(model, plain));
    randomize(se, 30);
    se.prepare(model, prompts);
    expect(maxAbsDiff(logitsOf(model, se), logitsOf(model, plain))).toBeGreaterThan(1e-2);
    plain.dispose();
    se.dispose();
    model.dispose();
  });

  it('gives each example its own M(s): the batch equals the examples run one at a time', () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 4, 0.3));
    const se = make(model);
    randomize(se, 40);
    se.prepare(model, prompts);
    const batched = logitsOf(model, se);
    const V = tiny.vocabSize * ids[0]!.length;
    ids.forEach((row, b) => {
      se.prepare(model, [prompts[b]!]);
      expect(maxAbsDiff(logitsOf(model, se, [row]), batched.slice(b * V, (b + 1) * V))).toBeLessThan(1e-5);
    });
    // Different prompts really give different updates for the same tokens.
    se.prepare(model, [prompts[1]!]);
    expect(maxAbsDiff(logitsOf(model, se, [ids[0]!]), batched.slice(0, V))).toBeGreaterThan(1e-3);
    se.dispose();
    model.dispose();
  });
});

describe('semantic consistency loss', () => {
  it('the Gram formula equals ||B D A||_F^2 built from full matrices', () => {
    const [r, nIn, nOut, P] = [3, 7, 5, 4];
    const a = tf.randomNormal([r, nIn], 0, 1, 'float32', 1) as tf.Tensor2D;
    const b = tf.randomNormal([nOut, r], 0, 1, 'float32', 2) as tf.Tensor2D;
    const d = tf.randomNormal([P, r, r], 0, 1, 'float32', 3) as tf.Tensor3D;
    const gram = gramFrobenius(d, tf.matMul(a, a, false, true), tf.matMul(b, b, true, false)).dataSync();
    const brute = tf.unstack(d).map((dp) => tf.sum(tf.square(tf.matMul(tf.matMul(b, dp), a))).dataSync()[0]!);
    for (let p = 0; p < P; p++) expect(Math.abs(gram[p]! - brute[p]!) / brute[p]!).toBeLessThan(1e-5);
    tf.dispose([a, b, d]);
  });

  it('L_sem equals the mean over pairs of max(0, cos) ||Delta W_i - Delta W_j||_F^2 summed over layers, from full Delta W', () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 6, 0.3));
    const se = make(model);
    randomize(se, 50);
    // Chosen so one pair has a negative cosine, which must count as 0.
    const s = [
      [1, 0, 0, 0, 0, 0, 0, 1],
      [0.5, 1, 0, 0, 0, 0, 0, 0],
      [-1, 0.2, 0, 0, 0, 0, 0, -1],
    ];
    se.setSemantics(tf.tensor2d(s));
    const value = se.semanticLoss().dataSync()[0]!;
    const state = new Map([...se.stateDict()].map(([k, t]) => [k, t]));
    let expected = 0;
    for (const path of ['transformer.h.0.attn.c_attn', 'transformer.h.0.mlp.c_fc', 'transformer.h.1.attn.c_attn', 'transformer.h.1.mlp.c_fc']) {
      const a = state.get(`base_model.model.${path}.lora_A.weight`)! as tf.Tensor2D;
      const b = state.get(`base_model.model.${path}.lora_B.weight`)! as tf.Tensor2D;
      const deltaW = tf.unstack(se.mixing(path, tf.tensor2d(s))).map((m) => tf.matMul(tf.matMul(b, m as tf.Tensor2D), a));
      let sum = 0;
      let pairs = 0;
      for (let i = 0; i < s.length; i++) {
        for (let j = i + 1; j < s.length; j++) {
          const w = Math.max(0, cosine(Float32Array.from(s[i]!), Float32Array.from(s[j]!)));
          sum += w * tf.sum(tf.square(tf.sub(deltaW[i]!, deltaW[j]!))).dataSync()[0]!;
          pairs++;
        }
      }
      expected += sum / pairs;
    }
    expect(cosine(Float32Array.from(s[0]!), Float32Array.from(s[2]!))).toBeLessThan(0);
    expect(expected).toBeGreaterThan(1e-3);
    expect(Math.abs(value - expected) / expected).toBeLessThan(1e-5);
    tf.dispose([...state.values()]);
    se.dispose();
    model.dispose();
  });
});

describe('SeLoRA gradients', () => {
  it("match central finite differences for A, B and g's weights through the task loss and L_sem", () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 11, 0.3));
    const se = make(model, 3, 1);
    randomize(se, 60);
    se.prepare(model, prompts);
    const input = tf.tensor2d(ids, undefined, 'int32');
    const targets = tf.oneHot(
      tf.tensor2d(
        ids.map((row) => [...row.slice(1), 0]),
        undefined,
        'int32',
      ),
      tiny.vocabSize,
    );
    const loss = () =>
      tf.tidy(() => {
        const task = tf.neg(tf.mean(tf.sum(tf.mul(targets, tf.logSoftmax(model.forward(input, { adapters: se, training: true }))), -1)));
        return tf.add(task, tf.mul(se.semanticLoss(), 1)) as tf.Scalar;
      });
    const trainable = se.trainable();
    expect(new Set(trainable.map((p) => p.group))).toEqual(new Set(['lora_A', 'lora_B', 'selora_g']));
    expect(checkGradients(loss, trainable, { atol: 2e-4 })).toBe(trainable.length);
    tf.dispose([input, targets]);
    se.dispose();
    model.dispose();
  });

  it.each(['cpu', 'wasm'] as const)('L_sem alone reaches A, B and g on %s (its gradient is not zero for any group)', async (backend) => {
    // wasm lacks some gradient kernels (gather's UnsortedSegmentSum): L_sem must avoid them.
    await initBackend(backend);
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 12, 0.3));
    const se = make(model);
    randomize(se, 70);
    se.prepare(model, prompts);
    const trainable = se.trainable();
    const { value, grads } = tf.variableGrads(
      () => se.semanticLoss(),
      trainable.map((p) => p.variable),
    );
    expect(value.dataSync()[0]!).toBeGreaterThan(0);
    for (const group of ['lora_A', 'lora_B', 'selora_g']) {
      const norm = trainable.filter((p) => p.group === group).reduce((n, p) => n + tf.sum(tf.abs(grads[p.variable.name]!)).dataSync()[0]!, 0);
      expect(norm, group).toBeGreaterThan(1e-4);
    }
    tf.dispose([value, ...Object.values(grads)]);
    se.dispose();
    model.dispose();
    await initBackend('cpu');
  });
});

describe('SeLoRA training step', () => {
  it('adds lambda_sem L_sem to the loss, reports it, and leaves no tensors behind', async () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 13, 0.3));
    const se = make(model, 3, 0.5);
    randomize(se, 100);
    const trainable = se.trainable();
    const optimizer = new AdamW([{ name: 'all', lr: 1e-2, weightDecay: 0, params: trainable.map((p) => ({ name: p.name, variable: p.variable })) }]);
    const batch = { inputIds: Int32Array.from(ids.flat()), lossMask: new Float32Array(ids.flat().length).fill(1), batchSize: 3, seqLen: 6, tokenCount: 18 };
    const nameOf = new Map(trainable.map((p) => [p.variable.name, p.name]));
    const variables = trainable.map((p) => p.variable);
    se.prepare(model, prompts);
    const expectedSem = se.semanticLoss();
    const first = await trainStep(model, se, optimizer, batch, 1, nameOf, variables, 1, prompts);
    expect(first.regularizers.sem).toBeCloseTo(expectedSem.dataSync()[0]!, 5);
    expectedSem.dispose();
    const before = tf.memory().numTensors;
    const second = await trainStep(model, se, optimizer, batch, 1, nameOf, variables, 2, prompts);
    expect(tf.memory().numTensors).toBe(before);
    expect(Number.isFinite(second.loss)).toBe(true);
    optimizer.dispose();
    se.dispose();
    model.dispose();
  });
});

describe('SeLoRA export', () => {
  it('flattening at a fixed s reproduces the native adapter at that s', async () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 8, 0.3));
    const se = make(model);
    randomize(se, 80);
    const s = Float32Array.from([0.3, -1, 0.2, 0.5, 0, 1.5, -0.4, 0.1]);
    se.setSemantics(tf.tensor2d([...s, ...s, ...s], [3, 8]));
    const native = logitsOf(model, se);
    const flat = await se.flattened(s);
    expect(maxAbsDiff(logitsOf(model, flat), native)).toBeLessThan(1e-5);
    // At another s the flattened adapter is not the native one.
    se.prepare(model, prompts);
    expect(maxAbsDiff(logitsOf(model, flat), logitsOf(model, se))).toBeGreaterThan(1e-3);
    flat.dispose();
    se.dispose();
    model.dispose();
  });

  it('the native state (A, B, g, s_bar) round-trips into a fresh adapter', async () => {
    const model = createGPT2(tiny, randomGPT2Weights(tiny, 9, 0.3));
    const se = make(model);
    randomize(se, 90);
    se.fit(model, prompts);
    const state = await tensorsToData(se.stateDict());
    expect(state.get(SEMANTIC_MEAN_KEY)!.data.some((v) => v !== 0)).toBe(true);
    expect([...state.keys()].filter((k) => k.includes('selora_g'))).toHaveLength(4 * 4);
    const copy = selora.create(model, selora.parseSettings({ lora: loraSettings(), selora: { hiddenSize: 3, lambdaSem: 1 } }), 99);
    copy.loadStateDict(state);
    se.prepare(model, prompts);
    copy.prepare?.(model, prompts);
    expect(logitsOf(model, copy)).toEqual(logitsOf(model, se));
    // No semantics set: both fall back to s_bar, the flattened adapter's point.
    se.clearSemantics();
    const flat = await se.flattened();
    expect(maxAbsDiff(logitsOf(model, flat), logitsOf(model, se))).toBeLessThan(1e-5);
    state.delete(SEMANTIC_MEAN_KEY);
    expect(() => copy.loadStateDict(state)).toThrow(/missing base_model\.model\.selora\.semantic_mean/);
    flat.dispose();
    copy.dispose();
    se.dispose();
    model.dispose();
  });
});

describe('SeLoRA training through runTraining', () => {
  let run: MethodRun;
  beforeAll(async () => {
    run = await trainTiny(root, 'selora', { method: 'selora', selora: { hiddenSize: 8, lambdaSem: 0.1 } });
  }, 120_000);

  it('learns, logging L_sem as its own curve and one rate per group', () => {
    expect(run.messages.filter((m) => m.type === 'failed')).toEqual([]);
    const loss = run.points('train/loss').map((p) => p.value);
    expect(loss).toHaveLength(24);
    expect(mean(loss.slice(-4))).toBeLessThan(mean(loss.slice(0, 4)) - 0.3);
    const sem = run.points('loss/sem').map((p) => p.value);
    expect(sem).toHaveLength(24);
    expect(sem[0]).toBe(0); // B = 0 at the first step
    expect(sem.at(-1)!).toBeGreaterThan(0);
    for (const group of ['lora_A', 'lora_B', 'selora_g']) expect(run.points(`lr/${group}`)).toHaveLength(24);
    expect(getMethod('selora')).toBe(selora);
  });

  it('exports natively with verification passing, and flattened as a plain PEFT LoRA that verifies too', async () => {
    const adapterDir = path.join(run.runDir, 'adapter');
    const report = await run.exportTo(adapterDir, path.join(root, 'export-selora'));
    expect(report.verification).toMatchObject({ passed: true });
    const flatDir = path.join(adapterDir, FLATTENED_ADAPTER_DIR);
    const sidecar = await readSidecar(flatDir);
    expect(sidecar).toMatchObject({ method: 'lora', config: { method: 'lora' }, flattenedFrom: { method: 'selora' } });
    expect(sidecar.flattenedFrom!.maxAbsLogitDiff).toBeGreaterThan(0);
    expect(run.points('flatten/max_logit_diff').map((p) => p.value)).toEqual([sidecar.flattenedFrom!.maxAbsLogitDiff]);
    const peft = JSON.parse(fs.readFileSync(path.join(flatDir, ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
    expect(peft).toMatchObject({ peft_type: 'LORA', r: 8 });
    const flatReport = await run.exportTo(flatDir, path.join(root, 'export-selora-flat'));
    expect(flatReport.verification).toMatchObject({ passed: true });
  });
});
