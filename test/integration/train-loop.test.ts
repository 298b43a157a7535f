// The training worker end to end: spawned as the main process spawns it, on a tiny random GPT-2 on
// disk, with the cpu backend. Trains, checkpoints, stops, resumes, exports and verifies.
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunConfigSchema, type RunConfig, type RunConfigOf } from '../../src-shared/config.ts';
import type { MetricPoint } from '../../src-shared/runs.ts';
import { WorkerToMainSchema, type ExportJob, type MainToWorker, type TrainJob, type WorkerToMain } from '../../src-shared/worker-protocol.ts';
import { startEngineWorker } from '../../src-main/worker-thread.ts';
import { writeAdapter } from '../../src-worker/export/write-adapter.ts';
import { makeProbe, probeLogits, writeProbe } from '../../src-worker/export/probe.ts';
import { serializeSafetensors } from '../../src-worker/formats/safetensors.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { getMethod } from '../../src-worker/methods/index.ts';
import { gpt2ConfigFromHF, randomGPT2Weights } from '../../src-worker/models/gpt2.ts';
import { tf } from '../../src-worker/tf.ts';
import { runTraining } from '../../src-worker/train/loop.ts';

const STEPS = 30;
const root = fs.mkdtempSync(path.join(tmpdir(), 'lw-train-loop-'));
const modelDir = path.join(root, 'model');
const datasetPath = path.join(root, 'train.jsonl');
const fixtures = path.join(import.meta.dirname, '..', 'fixtures', 'tokenizer');

const colors: Record<string, string> = {
  sky: 'blue',
  grass: 'green',
  snow: 'white',
  coal: 'black',
  blood: 'red',
  sun: 'yellow',
  orange: 'orange',
  plum: 'purple',
  lemon: 'yellow',
  cherry: 'red',
  leaf: 'green',
  sea: 'blue',
  milk: 'white',
  night: 'black',
  rose: 'red',
  lime: 'green',
};

function writeFixtures(): void {
  const hf = { model_type: 'gpt2', vocab_size: 264, n_positions: 64, n_embd: 32, n_layer: 2, n_head: 4, eos_token_id: 263, bos_token_id: 263 };
  fs.mkdirSync(modelDir, { recursive: true });
  fs.writeFileSync(path.join(modelDir, 'config.json'), JSON.stringify(hf));
  const weights = randomGPT2Weights(gpt2ConfigFromHF(hf), 2024);
  // With GPT-2's init (std 0.02) the tied output embedding is so small that logits stay within a few
  // tenths of uniform whatever the adapter does; a 10x larger embedding lets 30 steps show real learning.
  const wte = weights.get('transformer.wte.weight')!;
  for (let i = 0; i < wte.data.length; i++) wte.data[i]! *= 10;
  fs.writeFileSync(path.join(modelDir, 'model.safetensors'), serializeSafetensors(weights, { format: 'pt' }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(fixtures, f), path.join(modelDir, f));
  const rows: string[] = [];
  const nouns = Object.keys(colors);
  for (let i = 0; i < 80; i++) {
    const noun = nouns[i % nouns.length]!;
    rows.push(JSON.stringify({ prompt: `Q: color of the ${noun}?\nA:`, completion: ` ${colors[noun]}` }));
  }
  fs.writeFileSync(datasetPath, `${rows.join('\n')}\n`);
}

const config = <RunConfigOf<'lora'>>RunConfigSchema.parse({
  model: modelDir,
  dataset: datasetPath,
  backend: 'cpu',
  // No dropout, so a resumed run must retrace the uninterrupted run's losses exactly.
  lora: { r: 8, alpha: 16, dropout: 0, targetModules: ['c_attn', 'c_proj'] },
  training: {
    learningRate: 1e-2,
    batchSize: 8,
    maxSteps: STEPS,
    maxSeqLen: 48,
    warmupSteps: 3,
    evalEvery: 10,
    evalBatches: 2,
    checkpointEvery: 10,
    seed: 7,
    validationFraction: 0.1,
  },
});

const trainJob = (runDir: string, resumeFrom: string | null = null, overrides: Partial<RunConfig['training']> = {}): TrainJob => ({
  type: 'train',
  runId: path.basename(runDir),
  config: { ...config, training: { ...config.training, ...overrides } },
  modelDir,
  datasetPath,
  runDir,
  resumeFrom,
});

/** Starts the engine exactly as the main process does and collects its messages until it exits. */
function runWorker(job: MainToWorker, options: { stopAfterStep?: number } = {}): Promise<{ messages: WorkerToMain[]; exitCode: number }> {
  return new Promise((resolve, reject) => {
    const worker = startEngineWorker();
    const messages: WorkerToMain[] = [];
    let stopSent = false;
    worker.on('message', (raw: unknown) => {
      const message = WorkerToMainSchema.parse(raw);
      messages.push(message);
      if (options.stopAfterStep !== undefined && !stopSent && message.type === 'progress' && message.progress.step >= options.stopAfterStep) {
        stopSent = true;
        worker.postMessage({ type: 'stop' } satisfies MainToWorker);
      }
    });
    worker.on('error', reject);
    worker.on('exit', (exitCode) => resolve({ messages, exitCode }));
    worker.postMessage(job);
  });
}

const ofType = <T extends WorkerToMain['type']>(messages: WorkerToMain[], type: T) =>
  messages.filter((m): m is Extract<WorkerToMain, { type: T }> => m.type === type);
const points = (messages: WorkerToMain[], name: string): MetricPoint[] => ofType(messages, 'metrics').flatMap((m) => m.points.filter((p) => p.name === name));
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

let full: { messages: WorkerToMain[]; exitCode: number };
const fullRunDir = path.join(root, 'run-full');

beforeAll(async () => {
  writeFixtures();
  full = await runWorker(trainJob(fullRunDir));
});

afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('training worker', () => {
  it('trains for maxSteps with falling loss, reporting progress and metrics', () => {
    const { messages, exitCode } = full;
    expect(ofType(messages, 'failed')).toEqual([]);
    expect(exitCode).toBe(0);
    const started = messages[messages.findIndex((m) => m.type !== 'log')]!;
    expect(started).toMatchObject({ type: 'started', backend: { name: 'cpu' } });
    // r = 8 on c_attn (32 -> 96) and attn/mlp c_proj (32 -> 32, 128 -> 32) in 2 layers.
    const perLayer = 8 * (32 + 96) + 8 * (32 + 32) + 8 * (128 + 32);
    expect(started).toMatchObject({ trainableParams: 2 * perLayer });

    const progress = ofType(messages, 'progress').map((m) => m.progress);
    expect(progress.map((p) => p.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    expect(progress.every((p) => p.maxSteps === STEPS && p.tokensPerSecond > 0 && p.stepTimeMs > 0)).toBe(true);
    expect(progress.at(-1)!.etaSeconds).toBe(0);

    const loss = points(messages, 'train/loss').map((p) => p.value);
    expect(loss).toHaveLength(STEPS);
    expect(mean(loss.slice(-5))).toBeLessThan(mean(loss.slice(0, 5)) - 0.5);
    expect(points(messages, 'val/loss').map((p) => p.step)).toEqual([10, 20, 30]);
    const lrA = points(messages, 'lr/lora_A');
    expect(lrA.map((p) => p.value)).toEqual(points(messages, 'lr/lora_B').map((p) => p.value));
    expect(lrA[2]!.value).toBeCloseTo(1e-2, 10); // end of warmup
    expect(lrA.at(-1)!.value).toBeCloseTo(1e-3, 10); // cosine floor
    for (const name of ['grad_norm', 'tokens_per_s', 'step_time_ms', 'memory_mb']) expect(points(messages, name)).toHaveLength(STEPS);
    expect(ofType(messages, 'metrics').length).toBeLessThanOrEqual(STEPS);
    expect(messages.at(-1)!.type).toBe('trained');
  });

  it('writes checkpoints atomically, keeping the last two, and the final adapter with its probe', () => {
    expect(ofType(full.messages, 'checkpoint').map((m) => m.step)).toEqual([10, 20, 30]);
    expect(fs.readdirSync(path.join(fullRunDir, 'checkpoints')).sort()).toEqual(['step-000020', 'step-000030']);
    expect(fs.readdirSync(path.join(fullRunDir, 'checkpoints', 'step-000020')).sort()).toEqual([
      'adapter_config.json',
      'adapter_model.safetensors',
      'optimizer.safetensors',
      'trainer_state.json',
      'workbench_adapter.json',
    ]);
    const trained = ofType(full.messages, 'trained')[0]!;
    expect(trained).toMatchObject({ adapterDir: path.join(fullRunDir, 'adapter'), step: STEPS });
    expect(fs.readdirSync(trained.adapterDir).sort()).toEqual([
      'adapter_config.json',
      'adapter_model.safetensors',
      'probe.safetensors',
      'workbench_adapter.json',
    ]);
  });

  it('stops on request with a checkpoint, and a resumed run retraces the uninterrupted losses', async () => {
    const runDir = path.join(root, 'run-stopped');
    const stopped = await runWorker(trainJob(runDir), { stopAfterStep: 12 });
    expect(stopped.exitCode).toBe(0);
    const stop = ofType(stopped.messages, 'stopped')[0]!;
    expect(stop.step).toBeGreaterThanOrEqual(12);
    expect(stop.step).toBeLessThan(STEPS);
    expect(ofType(stopped.messages, 'trained')).toEqual([]);
    const checkpoint = ofType(stopped.messages, 'checkpoint').at(-1)!;
    expect(checkpoint.step).toBe(stop.step);

    const resumed = await runWorker(trainJob(runDir, checkpoint.dir));
    expect(ofType(resumed.messages, 'failed')).toEqual([]);
    expect(ofType(resumed.messages, 'progress')[0]!.progress.step).toBe(stop.step + 1);
    expect(ofType(resumed.messages, 'trained')[0]!.step).toBe(STEPS);
    const fullLoss = points(full.messages, 'train/loss');
    const resumedLoss = points(resumed.messages, 'train/loss');
    expect(resumedLoss.map((p) => p.step)).toEqual(fullLoss.slice(stop.step).map((p) => p.step));
    resumedLoss.forEach((p, i) => expect(p.value).toBeCloseTo(fullLoss[stop.step + i]!.value, 5));
  });

  it('exports the final adapter and a checkpoint, verified against the trained logits', async () => {
    const outDir = path.join(root, 'export-final');
    const exported = await runWorker({
      type: 'export',
      sourceDir: path.join(fullRunDir, 'adapter'),
      modelDir,
      outDir,
      backend: 'cpu',
      format: 'peft',
    } satisfies ExportJob);
    expect(ofType(exported.messages, 'failed')).toEqual([]);
    const report = ofType(exported.messages, 'exported')[0]!.report;
    expect(report.verification).toMatchObject({ passed: true });
    expect(report.verification.maxAbsDiffToTrained).toBeLessThanOrEqual(1e-5);
    expect(report.verification.maxAbsDiffToBase).toBeGreaterThan(1e-4);
    expect(fs.readdirSync(outDir).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'workbench_adapter.json']);
    expect(exported.exitCode).toBe(0);

    const fromCheckpoint = await runWorker({
      type: 'export',
      sourceDir: path.join(fullRunDir, 'checkpoints', 'step-000020'),
      modelDir,
      outDir: path.join(root, 'export-ckpt'),
      backend: 'cpu',
      format: 'peft',
    });
    expect(ofType(fromCheckpoint.messages, 'exported')[0]!.report.verification.passed).toBe(true);
  });

  it('refuses to export an untrained adapter (B = 0) with export_mismatch', async () => {
    const model = await loadCausalLM(modelDir);
    const lora = getMethod('lora');
    const adapter = lora.create(model, lora.parseSettings(config.lora), 1);
    const sourceDir = path.join(root, 'untrained');
    await writeAdapter(adapter, sourceDir, {
      baseModelNameOrPath: modelDir,
      sidecar: {
        format: 'lora-workbench-adapter',
        version: 1,
        method: 'lora',
        runId: 'untrained',
        step: 0,
        trainableParams: adapter.trainableParamCount(),
        config,
        backend: null,
        baseModel: { path: modelDir, fingerprint: null },
        createdAt: new Date().toISOString(),
      },
    });
    const probe = makeProbe([[40, 50, 60, 70]], 263);
    await writeProbe(sourceDir, probe, await probeLogits(model, adapter, probe), 'cpu');
    adapter.dispose();
    model.dispose();
    const result = await runWorker({ type: 'export', sourceDir, modelDir, outDir: path.join(root, 'export-untrained'), backend: 'cpu', format: 'peft' });
    const failed = ofType(result.messages, 'failed')[0]!;
    expect(failed.error.code).toBe('export_mismatch');
    expect(failed.error.message).toMatch(/equals the base model/);
    expect(result.exitCode).toBe(1);
  });

  it('answers an invalid message with invalid_input and a stop before any job by exiting', async () => {
    const bad = await runWorker({ type: 'train', runId: 'x' } as unknown as MainToWorker);
    expect(ofType(bad.messages, 'failed')[0]!.error.code).toBe('invalid_input');
    expect(bad.exitCode).toBe(1);
    const idle = await runWorker({ type: 'stop' });
    expect(idle).toEqual({ messages: [], exitCode: 0 });
  });

  it('reports a bad dataset row as a failed message naming the line', async () => {
    const badData = path.join(root, 'bad.jsonl');
    fs.writeFileSync(badData, '{"prompt": "a", "completion": "b"}\n{"prompt": "c"}\n');
    const result = await runWorker({ ...trainJob(path.join(root, 'run-bad')), datasetPath: badData });
    const failed = ofType(result.messages, 'failed')[0]!;
    expect(failed.error).toMatchObject({ code: 'dataset_invalid', details: { errors: [{ line: 2 }] } });
  });
});

describe('runTraining in process', () => {
  it('keeps the number of live tensors flat across steps (with dropout, eval and checkpoints)', async () => {
    const counts: number[] = [];
    const messages: WorkerToMain[] = [];
    await runTraining(
      {
        ...trainJob(path.join(root, 'run-memory'), null, { maxSteps: 8, evalEvery: 3, checkpointEvery: 3 }),
        config: { ...config, lora: { ...config.lora, dropout: 0.1 }, training: { ...config.training, maxSteps: 8, evalEvery: 3, checkpointEvery: 3 } },
      },
      {
        emit: (m) => {
          messages.push(m);
          if (m.type === 'progress') counts.push(tf.memory().numTensors);
        },
        shouldStop: () => false,
      },
    );
    expect(ofType(messages, 'failed')).toEqual([]);
    expect(counts).toHaveLength(8);
    // The model caches a causal mask per sequence length on first use; from then on every step must
    // leave exactly as many tensors as it found.
    expect(new Set(counts.slice(1)).size).toBe(1);
    expect(ofType(messages, 'trained')).toHaveLength(1);
  });
});
