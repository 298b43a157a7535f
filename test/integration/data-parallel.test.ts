// Data parallel inside the tfjs engine (train/data-parallel.ts): replicas started as the engine's
// worker threads compute their rows' gradients, and a step with them equals the step on one worker
// (loss, gradient norm, the adapter after AdamW) on the GPT-2 and Llama fixtures, for LoRA and for
// SeLoRA (fitted, conditioned on each row's prompt, with a regularizer); a training run started
// through the engine's front door trains with two workers and says so.
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type RunConfig, RunConfigSchema } from '../../src-shared/config.ts';
import { WorkerToMainSchema, type MainToWorker, type WorkerToMain } from '../../src-shared/worker-protocol.ts';
import { startEngineWorker } from '../../src-main/worker-thread.ts';
import { initBackend } from '../../src-worker/backend.ts';
import type { Batch } from '../../src-worker/data/batcher.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { loadTokenizer } from '../../src-worker/formats/tokenizer.ts';
import { methodOf } from '../../src-worker/methods/index.ts';
import { tf } from '../../src-worker/tf.ts';
import { AdamW } from '../../src-worker/train/adamw.ts';
import { rowShares, trainStep } from '../../src-worker/train/accumulate.ts';
import { ReplicaGroup } from '../../src-worker/train/data-parallel.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');

afterAll(() => tf.disposeVariables());

const CASES: { fixture: string; config: Record<string, unknown> }[] = [
  { fixture: 'gpt2-tiny', config: { method: 'lora', lora: { r: 4, alpha: 8, dropout: 0, targetModules: ['c_attn', 'c_proj'] } } },
  { fixture: 'llama-tiny', config: { method: 'lora', lora: { r: 4, alpha: 8, dropout: 0, targetModules: ['q_proj', 'v_proj'] } } },
  { fixture: 'gpt2-tiny', config: { method: 'selora', lora: { r: 4, alpha: 8, dropout: 0, targetModules: ['c_attn'] }, selora: { lambdaSem: 0.5 } } },
];

/** `steps` optimizer steps on a fixed batch, with `replicas` (null: this thread alone); the adapter's values after each. */
async function train(
  modelDir: string,
  config: RunConfig,
  batch: Batch,
  prompts: number[][],
  steps: number,
  replicas: ReplicaGroup | null,
  microBatchSize: number | null,
) {
  const model = await loadCausalLM(modelDir);
  const { method, settings } = methodOf(config);
  const adapter = method.create(model, settings, config.training.seed);
  adapter.fit?.(model, prompts, await loadTokenizer(modelDir));
  const trainable = adapter.trainable();
  const optimizer = new AdamW([{ name: 'all', lr: 0.05, weightDecay: 0, params: trainable.map((p) => ({ name: p.name, variable: p.variable })) }]);
  const nameOf = new Map(trainable.map((p) => [p.variable.name, p.name]));
  const variables = trainable.map((p) => p.variable);
  const results: { loss: number; gradNorm: number; regularizers: Record<string, number> }[] = [];
  for (let step = 1; step <= steps; step++) {
    results.push(await trainStep(model, adapter, optimizer, batch, 1e6, nameOf, variables, step, prompts, { microBatchSize, replicas }));
  }
  const values = new Map(trainable.map((p) => [p.name, p.variable.dataSync().slice() as Float32Array]));
  optimizer.dispose();
  adapter.dispose();
  model.dispose();
  return { results, values };
}

describe('rowShares', () => {
  it('splits rows into contiguous shares, as equal as they come, dropping empty ones', () => {
    expect(rowShares(8, 2)).toEqual([
      [0, 4],
      [4, 8],
    ]);
    expect(rowShares(5, 3)).toEqual([
      [0, 2],
      [2, 4],
      [4, 5],
    ]);
    expect(rowShares(2, 3)).toEqual([
      [0, 1],
      [1, 2],
    ]);
  });
});

describe.each(CASES)('data parallel on $fixture with $config.method', ({ fixture, config: raw }) => {
  it('two and three workers give the step of one worker: loss, gradient norm, regularizers and the adapter after 3 AdamW steps', async () => {
    await initBackend('cpu');
    const modelDir = path.join(fixtures, fixture);
    const config = RunConfigSchema.parse({ ...raw, backend: 'cpu' });
    const { input_ids: fixtureRows } = JSON.parse(fs.readFileSync(path.join(modelDir, 'logits.json'), 'utf-8')) as { input_ids: number[][] };
    // Four rows (the fixture's two and their reverses): three workers get unequal shares (2, 1, 1).
    const rows = [...fixtureRows, ...fixtureRows.map((row) => [...row].reverse())];
    const [B, T] = [rows.length, rows[0]!.length];
    // Rows score different numbers of tokens, so that the workers' shares weigh differently.
    const lossMask = Float32Array.from({ length: B * T }, (_, i) => (i % T <= 1 + Math.floor(i / T) ? 0 : 1));
    const batch: Batch = { inputIds: Int32Array.from(rows.flat()), lossMask, batchSize: B, seqLen: T, tokenCount: B * T };
    const prompts = rows.map((row) => row.slice(0, 4));

    // Micro-batches of one row everywhere: SeLoRA's L_sem pairs rows within a micro-batch, so the
    // workers must cut the batch where the single worker does (accumulate.ts: regularizers per micro-batch).
    const single = await train(modelDir, config, batch, prompts, 3, null, 1);
    for (const workers of [2, 3]) {
      const group = await ReplicaGroup.start(
        workers - 1,
        {
          modelDir,
          backend: 'cpu',
          config,
          fitPrompts: prompts,
          taskMixture: null,
          microBatchSize: 1,
          recompute: false,
          logitsChunkTokens: 7,
          wasmPacking: 'cached',
        },
        () => startEngineWorker('replica'),
      );
      try {
        const parallel = await train(modelDir, config, batch, prompts, 3, group, 1);
        parallel.results.forEach((r, k) => {
          expect(Math.abs(r.loss - single.results[k]!.loss)).toBeLessThan(1e-5);
          expect(Math.abs(r.gradNorm - single.results[k]!.gradNorm) / single.results[k]!.gradNorm).toBeLessThan(1e-5);
          for (const [name, value] of Object.entries(single.results[k]!.regularizers)) expect(Math.abs(r.regularizers[name]! - value)).toBeLessThan(1e-5);
        });
        expect([...parallel.values.keys()]).toEqual([...single.values.keys()]);
        let maxDiff = 0;
        for (const [name, value] of single.values) {
          const other = parallel.values.get(name)!;
          for (let i = 0; i < value.length; i++) maxDiff = Math.max(maxDiff, Math.abs(value[i]! - other[i]!));
        }
        expect(maxDiff).toBeLessThan(1e-5);
        // The adapter moved: equality is not two untouched adapters.
        expect(single.results[2]!.loss).toBeLessThan(single.results[0]!.loss);
      } finally {
        await group.dispose();
      }
    }
  }, 120_000);
});

describe('replica failures', () => {
  it('a replica that cannot load the model fails the start with the loader’s message', async () => {
    const config = RunConfigSchema.parse({ backend: 'cpu' });
    const init = {
      modelDir: path.join(tmpdir(), 'lw-no-such-model'),
      backend: 'cpu' as const,
      config,
      fitPrompts: null,
      taskMixture: null,
      microBatchSize: 1,
      recompute: false,
      logitsChunkTokens: 8,
      wasmPacking: 'cached' as const,
    };
    await expect(ReplicaGroup.start(1, init, () => startEngineWorker('replica'))).rejects.toThrow(/lw-no-such-model/);
  }, 60_000);
});

describe('a training run with training.workers 2', () => {
  it('starts a replica, logs the split and trains to the end', async () => {
    const root = fs.mkdtempSync(path.join(tmpdir(), 'lw-data-parallel-'));
    const datasetPath = path.join(root, 'train.jsonl');
    fs.writeFileSync(
      datasetPath,
      Array.from({ length: 24 }, (_, i) => JSON.stringify({ prompt: `Q: ${i} plus one?\nA:`, completion: ` ${i + 1}` })).join('\n'),
    );
    const config = RunConfigSchema.parse({
      backend: 'cpu',
      training: { maxSteps: 4, batchSize: 4, workers: 2, evalEvery: 4, checkpointEvery: 2, maxSeqLen: 24 },
    });
    const worker = startEngineWorker();
    const messages: WorkerToMain[] = [];
    const done = new Promise<void>((resolve) => {
      worker.on('message', (raw) => {
        const message = WorkerToMainSchema.parse(raw);
        messages.push(message);
        if (message.type === 'trained' || message.type === 'failed') resolve();
      });
    });
    worker.postMessage({
      type: 'train',
      runId: 'run-dp',
      config,
      modelDir: path.join(fixtures, 'gpt2-tiny'),
      datasetPath,
      runDir: path.join(root, 'run'),
      resumeFrom: null,
    } satisfies MainToWorker);
    await done;
    await worker.terminate();
    const failed = messages.find((m) => m.type === 'failed');
    expect(failed).toBeUndefined();
    const logs = messages.flatMap((m) => (m.type === 'log' ? [m.message] : []));
    expect(logs.some((line) => /^Data parallel: 2 workers \(training\.workers\), each training 2 of the batch's 4 rows per step/.test(line))).toBe(true);
    const losses = messages.flatMap((m) => (m.type === 'metrics' ? m.points.filter((p) => p.name === 'train/loss').map((p) => p.value) : []));
    expect(losses).toHaveLength(4);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(fs.existsSync(path.join(root, 'run', 'adapter', 'adapter_model.safetensors'))).toBe(true);
  }, 120_000);
});
