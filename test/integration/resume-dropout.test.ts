// Issue 15, finding 7: with dropout (the default 0.05 and more), a run killed right after a checkpoint and
// resumed from it ends with the very adapter bytes of the run that was never interrupted. The dropout
// masks come from a counted random stream (src-worker/methods/lora.ts); the count is in the checkpoint.
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunConfigSchema } from '../../src-shared/config.ts';
import { WorkerToMainSchema, type TrainJob, type WorkerToMain } from '../../src-shared/worker-protocol.ts';
import { startEngineWorker } from '../../src-main/worker-thread.ts';
import { serializeSafetensors } from '../../src-worker/formats/safetensors.ts';
import { gpt2ConfigFromHF, randomGPT2Weights } from '../../src-worker/models/gpt2.ts';
import { FINAL_ADAPTER_DIR } from '../../src-worker/train/loop.ts';

const root = fs.mkdtempSync(path.join(tmpdir(), 'lw-resume-dropout-'));
const modelDir = path.join(root, 'model');
const datasetPath = path.join(root, 'train.jsonl');
const tokenizerFixtures = path.join(import.meta.dirname, '..', 'fixtures', 'tokenizer');

beforeAll(() => {
  const hf = { model_type: 'gpt2', vocab_size: 264, n_positions: 64, n_embd: 32, n_layer: 2, n_head: 4, eos_token_id: 263, bos_token_id: 263 };
  fs.mkdirSync(modelDir, { recursive: true });
  fs.writeFileSync(path.join(modelDir, 'config.json'), JSON.stringify(hf));
  fs.writeFileSync(path.join(modelDir, 'model.safetensors'), serializeSafetensors(randomGPT2Weights(gpt2ConfigFromHF(hf), 11), { format: 'pt' }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(tokenizerFixtures, f), path.join(modelDir, f));
  const rows = Array.from({ length: 40 }, (_, i) => JSON.stringify({ prompt: `Q: item ${i}?\nA:`, completion: ` answer ${i % 7}` }));
  fs.writeFileSync(datasetPath, `${rows.join('\n')}\n`);
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const job = (runDir: string, dropout: number, resumeFrom: string | null = null): TrainJob => ({
  type: 'train',
  runId: 'run-dropout',
  config: RunConfigSchema.parse({
    model: modelDir,
    dataset: datasetPath,
    backend: 'cpu',
    lora: { r: 4, alpha: 8, dropout, targetModules: ['c_attn', 'c_proj'] },
    training: {
      learningRate: 1e-2,
      batchSize: 4,
      maxSteps: 12,
      maxSeqLen: 32,
      warmupSteps: 2,
      evalEvery: 6,
      evalBatches: 1,
      checkpointEvery: 4,
      seed: 5,
      validationFraction: 0.1,
    },
  }),
  modelDir,
  datasetPath,
  runDir,
  resumeFrom,
});

/** Runs the engine as the main process does; with killAtCheckpoint, terminates it the moment that checkpoint is reported. */
function train(trainJob: TrainJob, killAtCheckpoint?: number): Promise<WorkerToMain[]> {
  return new Promise((resolve, reject) => {
    const worker = startEngineWorker();
    const messages: WorkerToMain[] = [];
    worker.on('message', (raw: unknown) => {
      const message = WorkerToMainSchema.parse(raw);
      messages.push(message);
      if (message.type === 'checkpoint' && message.step === killAtCheckpoint) void worker.terminate();
    });
    worker.on('error', reject);
    worker.on('exit', () => resolve(messages));
    worker.postMessage(trainJob);
  });
}

const adapterBytes = (runDir: string) => fs.readFileSync(path.join(runDir, FINAL_ADAPTER_DIR, 'adapter_model.safetensors'));

describe('resume with dropout', () => {
  it.each([0.05, 0.3])('killed at the step-8 checkpoint and resumed, dropout %s ends with the uninterrupted adapter bytes', async (dropout) => {
    const whole = path.join(root, `whole-${dropout}`);
    const killed = path.join(root, `killed-${dropout}`);
    const uninterrupted = await train(job(whole, dropout));
    expect(uninterrupted.filter((m) => m.type === 'failed')).toEqual([]);

    const first = await train(job(killed, dropout), 8);
    expect(first.some((m) => m.type === 'trained')).toBe(false);
    const checkpoint = first.find((m) => m.type === 'checkpoint' && m.step === 8) as Extract<WorkerToMain, { type: 'checkpoint' }>;
    const resumed = await train(job(killed, dropout, checkpoint.dir));
    expect(resumed.filter((m) => m.type === 'failed')).toEqual([]);
    expect(resumed.find((m) => m.type === 'trained')).toMatchObject({ step: 12 });

    const losses = (messages: WorkerToMain[]) =>
      messages.flatMap((m) => (m.type === 'metrics' ? m.points.filter((p) => p.name === 'train/loss' && p.step > 8).map((p) => p.value) : []));
    expect(losses(resumed)).toEqual(losses(uninterrupted));
    expect(adapterBytes(killed).equals(adapterBytes(whole))).toBe(true);
  });
});
