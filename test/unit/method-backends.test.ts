// Every method's training on another backend against the same run on cpu: a few steps of runTraining on
// gpt2-tiny (dropout 0, so nothing random depends on the backend), the task loss and every regularizer
// step by step. Setup and per-step paths that read tensors back synchronously (dataSync) fail on webgpu
// in Node, which has no OffscreenCanvas: `npm run test:webgpu` runs this file on Dawn to keep them out.
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunConfigSchema, type BackendName, type RunConfigInput } from '../../src-shared/config.ts';
import type { WorkerToMain } from '../../src-shared/worker-protocol.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { exportAdapter } from '../../src-worker/export/index.ts';
import { runTraining } from '../../src-worker/train/loop.ts';
import { testBackends } from '../helpers/backends.ts';

const modelDir = path.join(import.meta.dirname, '..', 'fixtures', 'gpt2-tiny');
const lora = { r: 4, alpha: 8, dropout: 0 };
const bias = { lambdaBias: 0.5, lambdaKl: 0.5, epsilon: 0.05, lambdaAlign: 0, tasks: [] as string[], taskMixture: [] as number[] };

const CASES: { name: string; config: RunConfigInput }[] = [
  { name: 'lora', config: { method: 'lora', lora } },
  { name: 'lora-plus', config: { method: 'lora-plus', lora, loraPlus: { ratio: 16 } } },
  { name: 'selora', config: { method: 'selora', lora, selora: { hiddenSize: 8, lambdaSem: 0.1 } } },
  { name: 'bias-aware (counterfactual)', config: { method: 'bias-aware', lora, biasAware: { ...bias, reading: 'counterfactual' } } },
  { name: 'bias-aware (adversarial)', config: { method: 'bias-aware', lora, biasAware: { ...bias, reading: 'adversarial' } } },
  {
    name: 'bias-aware (two tasks, L_align)',
    config: { method: 'bias-aware', lora, biasAware: { ...bias, reading: 'counterfactual', tasks: ['sound', 'colour'], lambdaAlign: 1 } },
  },
  { name: 'full', config: { method: 'full' } },
  { name: 'bitfit', config: { method: 'bitfit' } },
  { name: 'prompt-tuning', config: { method: 'prompt-tuning', promptTuning: { numVirtualTokens: 8 } } },
  { name: 'houlsby', config: { method: 'houlsby' } },
  { name: 'qlora (nf4)', config: { method: 'qlora', lora, qlora: { format: 'nf4', blockSize: 64 } } },
  { name: 'qlora (int8)', config: { method: 'qlora', lora, qlora: { format: 'int8', blockSize: 64 } } },
];
const STEPS = 3;

let root: string;
const datasetPath = () => path.join(root, 'tasks.jsonl');
beforeAll(() => {
  root = fs.mkdtempSync(path.join(tmpdir(), 'lw-method-backends-'));
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
  // "he"/"she" give the counterfactual reading of L_bias something to swap.
  const rows = Array.from({ length: 32 }, (_, i) =>
    i % 2
      ? { prompt: `${i % 4 ? 'he' : 'she'} says ${sounds[i % 4]![0]}`, completion: ` ${sounds[i % 4]![1]}`, task: 'sound' }
      : { prompt: `${colours[i % 4]![0]} is`, completion: ` ${colours[i % 4]![1]}`, task: 'colour' },
  );
  fs.writeFileSync(datasetPath(), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
});
afterAll(async () => {
  fs.rmSync(root, { recursive: true, force: true });
  await initBackend('cpu');
});

/** Each logged loss series (train/loss and loss/<regularizer>) of a short run, and the run's folder. */
async function lossesOn(backend: BackendName, name: string, config: RunConfigInput): Promise<{ series: Map<string, number[]>; runDir: string }> {
  const runDir = path.join(root, `${name.replace(/\W+/g, '-')}-${backend}`);
  const parsed = RunConfigSchema.parse({
    ...config,
    model: modelDir,
    dataset: datasetPath(),
    backend,
    training: {
      learningRate: 1e-2,
      batchSize: 4,
      maxSteps: STEPS,
      maxSeqLen: 16,
      warmupSteps: 0,
      evalEvery: STEPS,
      evalBatches: 1,
      checkpointEvery: STEPS,
      seed: 3,
      validationFraction: 0.1,
    },
  });
  const messages: WorkerToMain[] = [];
  await runTraining(
    { type: 'train', runId: name, config: parsed, modelDir, datasetPath: datasetPath(), runDir, resumeFrom: null },
    { emit: (m) => messages.push(m), shouldStop: () => false },
  );
  const failed = messages.find((m) => m.type === 'failed');
  if (failed) throw new Error(`${name} failed on ${backend}: ${failed.error.message}`);
  const series = new Map<string, number[]>();
  for (const m of messages) {
    if (m.type !== 'metrics') continue;
    for (const p of m.points) if (p.name === 'train/loss' || p.name.startsWith('loss/')) series.set(p.name, [...(series.get(p.name) ?? []), p.value]);
  }
  return { series, runDir };
}

describe.each(testBackends(['wasm']))('every method trains on %s', (backend) => {
  it.each(CASES)("$name: each step's losses match cpu, and the export verifies", async ({ name, config }) => {
    const { series: reference } = await lossesOn('cpu', name, config);
    const { series: other, runDir } = await lossesOn(backend, name, config);
    expect(reference.get('train/loss')).toHaveLength(STEPS);
    expect([...other.keys()].sort()).toEqual([...reference.keys()].sort());
    for (const [metric, values] of reference) {
      const got = other.get(metric)!;
      // Three optimizer steps of float32 kernels that sum in different orders: agree to 1e-3 of the value.
      values.forEach((v, i) => expect(Math.abs(got[i]! - v), `${metric} at step ${i + 1}`).toBeLessThanOrEqual(1e-3 * Math.max(1, Math.abs(v))));
    }
    // The export reloads the adapter on this backend, applies it and compares logits (QLoRA quantizes again, SeLoRA pools again).
    const report = await exportAdapter({
      type: 'export',
      sourceDir: path.join(runDir, 'adapter'),
      modelDir,
      outDir: path.join(runDir, 'export'),
      backend,
      format: 'peft',
    });
    expect(report.verification.passed).toBe(true);
  });
});
