// Bias-aware LoRA with L_align (METHODS.md section 4): one adapter per task, the mixture outside
// training, its exact flattened form, and multi-task runs end to end (runTraining on gpt2-tiny, cpu).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunConfigSchema, type RunConfigInput } from '../../src-shared/config.ts';
import type { WorkerToMain } from '../../src-shared/worker-protocol.ts';
import { exportAdapter } from '../../src-worker/export/index.ts';
import { maxAbsDiff, probeLogits, readProbe } from '../../src-worker/export/probe.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { BiasAwareModel } from '../../src-worker/methods/bias-aware.ts';
import { alignLossOverModules } from '../../src-worker/methods/align.ts';
import { readExpert } from '../../src-worker/sg-lora/merge.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { runTraining } from '../../src-worker/train/loop.ts';
import { tf } from '../../src-worker/tf.ts';
import { tempRoot } from './method-run.ts';

const modelDir = path.join(import.meta.dirname, '..', 'fixtures', 'gpt2-tiny');
const lora = { r: 2, alpha: 4, dropout: 0, targetModules: ['c_attn'], useRslora: false };
const bias = (extra: object) => ({
  lambdaBias: 0,
  lambdaKl: 0,
  reading: 'counterfactual' as const,
  epsilon: 0.1,
  lambdaAlign: 0,
  tasks: [] as string[],
  taskMixture: [] as number[],
  ...extra,
});

let root: string;
let model: CausalLM;
beforeAll(async () => {
  root = tempRoot('lw-align-');
  model = await loadCausalLM(modelDir);
});
afterAll(() => {
  model?.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

/** Gives every lora_B (all tasks) distinct nonzero values, as training would. */
function perturb(adapter: BiasAwareModel): void {
  const state = new Map<string, { shape: number[]; data: Float32Array }>();
  let k = 0;
  for (const [key, t] of adapter.stateDict()) {
    const data = Float32Array.from(t.dataSync());
    if (key.includes('lora_B')) for (let i = 0; i < data.length; i++) data[i] = 0.05 * Math.sin(++k * 0.77);
    state.set(key, { shape: [...t.shape], data });
    t.dispose();
  }
  adapter.loadStateDict(state);
}

describe('the multi-task layer', () => {
  it('applies one task in training and the mixture otherwise; the flattened LoRA is that mixture exactly', async () => {
    const adapter = new BiasAwareModel(model, bias({ tasks: ['a', 'b', 'c'], lambdaAlign: 1 }), lora, 5);
    try {
      perturb(adapter);
      const pi = [0.2, 0.3, 0.5];
      adapter.setTaskMixture(pi);
      const probe = {
        inputIds: [
          [3, 17, 40, 99, 5, 7],
          [8, 1, 2, 60, 61, 62],
        ],
      };
      const perTask = [];
      for (let t = 0; t < 3; t++) {
        adapter.selectTask(t);
        perTask.push(await probeLogits(model, adapter, probe));
      }
      adapter.selectTask(null);
      // The forward is linear in each adapter's update only through the first layer it touches, so
      // compare the mixture at the level of one module's delta instead of whole logits.
      const path0 = adapter.targets[0]!.path;
      const x = tf.randomNormal([4, adapter.targets[0]!.inFeatures], 0, 1, 'float32', 3);
      const mixed = adapter.delta(path0, x, false)!;
      const expected = tf.tidy(() =>
        pi
          .map((p, t) => {
            adapter.selectTask(t);
            const d = tf.mul(adapter.delta(path0, x, false)!, p);
            return d;
          })
          .reduce((a, b) => tf.add(a, b)),
      );
      adapter.selectTask(null);
      expect(maxAbsDiff(mixed.dataSync() as Float32Array, expected.dataSync() as Float32Array)).toBeLessThan(1e-6);
      tf.dispose([x, mixed, expected]);
      expect(maxAbsDiff(perTask[0]!.data, perTask[1]!.data)).toBeGreaterThan(1e-3);

      const native = await probeLogits(model, adapter, probe);
      const flat = await adapter.flattened!();
      try {
        expect(flat.peftConfig('m')).toMatchObject({ r: 6, lora_alpha: 12, use_rslora: false });
        expect(maxAbsDiff((await probeLogits(model, flat, probe)).data, native.data)).toBeLessThan(1e-5);
      } finally {
        flat.dispose();
      }

      const terms = adapter.regularizers();
      const align = terms.find((t) => t.name === 'align')!;
      expect(align.weight).toBe(1);
      const direct = alignLossOverModules(
        adapter.targets.map((m) =>
          [0, 1, 2].map((t) => {
            const state = adapter.stateDict();
            const key = (ab: 'A' | 'B') =>
              t === 0 ? `base_model.model.${m.path}.lora_${ab}.weight` : `base_model.model.${m.path}.align_tasks.${t}.lora_${ab}.weight`;
            const out = { a: state.get(key('A')) as tf.Tensor2D, b: state.get(key('B')) as tf.Tensor2D };
            return out;
          }),
        ),
      );
      expect(align.value.dataSync()[0]).toBeCloseTo(direct.dataSync()[0]!, 5);
      expect(align.value.dataSync()[0]).toBeGreaterThan(0);
      tf.dispose([...terms.map((t) => t.value), direct]);
    } finally {
      adapter.dispose();
    }
  });

  it('saves and reloads every task and the mixture', () => {
    const a = new BiasAwareModel(model, bias({ tasks: ['a', 'b'] }), lora, 5);
    const b = new BiasAwareModel(model, bias({ tasks: ['a', 'b'] }), lora, 6);
    try {
      perturb(a);
      a.setTaskMixture([0.7, 0.3]);
      const saved = new Map([...a.stateDict()].map(([k, t]) => [k, { shape: [...t.shape], data: Float32Array.from(t.dataSync()) }]));
      expect([...saved.keys()].filter((k) => a.extraStateKeys!.has(k)).length).toBe(2 * a.targets.length + 1);
      b.loadStateDict(saved);
      for (const [k, t] of b.stateDict()) expect(Array.from(t.dataSync()), k).toEqual(Array.from(saved.get(k)!.data));
    } finally {
      a.dispose();
      b.dispose();
    }
  });
});

describe('multi-task runs', () => {
  const datasetPath = () => path.join(root, 'tasks.jsonl');
  beforeAll(() => {
    const sounds = [
      ['cat', 'meow'],
      ['dog', 'woof'],
      ['cow', 'moo'],
      ['owl', 'hoot'],
    ];
    const colours = [
      ['grass', 'green'],
      ['sky', 'blue'],
      ['snow', 'white'],
      ['coal', 'black'],
    ];
    const rows = Array.from({ length: 32 }, (_, i) =>
      i % 2
        ? { prompt: `${sounds[i % 4]![0]} says`, completion: ` ${sounds[i % 4]![1]}`, task: 'sound' }
        : { prompt: `${colours[i % 4]![0]} is`, completion: ` ${colours[i % 4]![1]}`, task: 'colour' },
    );
    fs.writeFileSync(datasetPath(), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  });

  async function train(name: string, biasAware: object, resumeFrom: string | null = null): Promise<{ messages: WorkerToMain[]; runDir: string }> {
    const runDir = path.join(root, name);
    const config = RunConfigSchema.parse({
      model: modelDir,
      dataset: datasetPath(),
      backend: 'cpu',
      method: 'bias-aware',
      lora,
      biasAware: bias(biasAware),
      training: {
        learningRate: 3e-2,
        batchSize: 4,
        maxSteps: 10,
        maxSeqLen: 16,
        warmupSteps: 0,
        evalEvery: 5,
        evalBatches: 1,
        checkpointEvery: 5,
        seed: 3,
        validationFraction: 0.1,
      },
    } satisfies RunConfigInput);
    const messages: WorkerToMain[] = [];
    await runTraining(
      { type: 'train', runId: name, config, modelDir, datasetPath: datasetPath(), runDir, resumeFrom },
      { emit: (m) => messages.push(m), shouldStop: () => false },
    );
    expect(messages.filter((m) => m.type === 'failed')).toEqual([]);
    return { messages, runDir };
  }
  const series = (messages: WorkerToMain[], name: string) =>
    messages.flatMap((m) => (m.type === 'metrics' ? m.points.filter((p) => p.name === name).map((p) => p.value) : []));

  it('with one task and lambdaAlign 0 it trains exactly as bias-aware LoRA (rows may carry a task)', async () => {
    const plain = await train('plain', {});
    const single = await train('single', { tasks: ['colour'], lambdaAlign: 0 });
    expect(series(single.messages, 'train/loss')).toEqual(series(plain.messages, 'train/loss'));
    expect(series(single.messages, 'loss/align')).toEqual([]);
  }, 60_000);

  it('with two tasks it logs L_align, which a large lambdaAlign keeps smaller; the export is the mixture', async () => {
    const free = await train('free', { tasks: ['sound', 'colour'], lambdaAlign: 0 });
    const tied = await train('tied', { tasks: ['sound', 'colour'], lambdaAlign: 50, taskMixture: [1, 1] });
    const alignFree = series(free.messages, 'loss/align');
    const alignTied = series(tied.messages, 'loss/align');
    expect(alignFree).toHaveLength(10);
    // Every lora_B starts at zero, so the tasks agree exactly at step 1 and drift apart as they train.
    expect(alignFree[0]).toBe(0);
    expect(alignFree.at(-1)!).toBeGreaterThan(0);
    expect(alignTied.at(-1)!).toBeLessThan(0.5 * alignFree.at(-1)!);

    const adapterDir = path.join(tied.runDir, 'adapter');
    const flatDir = path.join(adapterDir, 'flattened');
    // The flattened LoRA is the mixture exactly, so flattening costs nothing but float rounding.
    const native = await readProbe(adapterDir);
    const flat = await readProbe(flatDir);
    expect(maxAbsDiff(native!.logits.data, flat!.logits.data)).toBeLessThan(1e-4);
    const peft = await exportAdapter({
      type: 'export',
      sourceDir: adapterDir,
      modelDir,
      outDir: path.join(root, 'out-native'),
      backend: 'cpu',
      format: 'peft',
    });
    expect(peft.verification.passed).toBe(true);
    const flattened = await exportAdapter({
      type: 'export',
      sourceDir: adapterDir,
      modelDir,
      outDir: path.join(root, 'out-flat'),
      backend: 'cpu',
      format: 'flattened',
    });
    expect(flattened.flattening!.maxAbsLogitDiffToNative).toBeLessThan(1e-4);
    expect(JSON.parse(fs.readFileSync(path.join(root, 'out-flat', 'adapter_config.json'), 'utf8'))).toMatchObject({ r: 4, lora_alpha: 8 });

    // As an SG-LoRA expert, a multi-task adapter is its mixture.
    const expert = await readExpert(adapterDir);
    expect(expert.dir).toBe(flatDir);
    expect([...expert.modules.values()].every((m) => m.a.rows === 4)).toBe(true);
    expect([...expert.modules.keys()].some((k) => k.includes('align_tasks'))).toBe(false);

    // Resumed from step 5, the run draws the same tasks and batches, so steps 6..10 repeat exactly.
    const at5 = tied.messages.find((m) => m.type === 'checkpoint' && m.step === 5);
    const resumed = await train(
      'tied-resumed',
      { tasks: ['sound', 'colour'], lambdaAlign: 50, taskMixture: [1, 1] },
      at5?.type === 'checkpoint' ? at5.dir : null,
    );
    const after5 = (messages: WorkerToMain[], name: string) =>
      messages.flatMap((m) => (m.type === 'metrics' ? m.points.filter((p) => p.name === name && p.step > 5).map((p) => p.value) : []));
    expect(at5).toBeDefined();
    expect(series(resumed.messages, 'train/loss')).toHaveLength(5); // steps 6..10 only: it did resume
    expect(after5(resumed.messages, 'train/loss')).toHaveLength(5);
    expect(after5(resumed.messages, 'train/loss')).toEqual(after5(tied.messages, 'train/loss'));
    expect(after5(resumed.messages, 'loss/align')).toEqual(after5(tied.messages, 'loss/align'));
  }, 120_000);

  it('refuses rows without one of the tasks, naming their lines', async () => {
    const runDir = path.join(root, 'bad');
    const config = RunConfigSchema.parse({
      model: modelDir,
      dataset: datasetPath(),
      backend: 'cpu',
      method: 'bias-aware',
      lora,
      biasAware: bias({ tasks: ['sound', 'other'] }),
      training: { maxSteps: 2, batchSize: 2, maxSeqLen: 16 },
    });
    const messages: WorkerToMain[] = [];
    await runTraining(
      { type: 'train', runId: 'bad', config, modelDir, datasetPath: datasetPath(), runDir, resumeFrom: null },
      { emit: (m) => messages.push(m), shouldStop: () => false },
    );
    const failed = messages.find((m) => m.type === 'failed');
    expect(failed?.type === 'failed' && failed.error.message).toMatch(/training rows name no task of biasAware.tasks.*line \d+ \("colour"\)/);
  });
});
