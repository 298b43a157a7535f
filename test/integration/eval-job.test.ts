// Evaluation jobs through the real worker, started as the main process starts it: a bias job with
// an adapter folder read back from disk, a robustness job, a stop, and a job the schema rejects.
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunConfigSchema } from '../../src-shared/config.ts';
import { EvalJobSchema, type EvalJobInput } from '../../src-shared/eval.ts';
import { WorkerToMainSchema, type MainToWorker, type WorkerToMain } from '../../src-shared/worker-protocol.ts';
import { startEngineWorker } from '../../src-main/worker-thread.ts';
import { hashDatasetPath } from '../../src-worker/eval/job.ts';
import { AdapterSidecarSchema, SIDECAR_FILE } from '../../src-worker/formats/adapter-folder.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
const modelDir = path.join(fixtures, 'gpt2-tiny');
const evalData = path.join(fixtures, 'datasets', 'eval');
const root = fs.mkdtempSync(path.join(tmpdir(), 'lw-eval-job-'));
const adapterDir = path.join(root, 'adapter');

function runWorker(
  job: MainToWorker | Record<string, unknown>,
  options: { stopAtOnce?: boolean } = {},
): Promise<{ messages: WorkerToMain[]; exitCode: number }> {
  return new Promise((resolve, reject) => {
    const worker = startEngineWorker();
    const messages: WorkerToMain[] = [];
    worker.on('message', (raw: unknown) => messages.push(WorkerToMainSchema.parse(raw)));
    worker.on('error', reject);
    worker.on('exit', (exitCode) => resolve({ messages, exitCode }));
    worker.postMessage(job);
    if (options.stopAtOnce) worker.postMessage({ type: 'stop' } satisfies MainToWorker);
  });
}

const evalJob = (input: Omit<EvalJobInput, 'type'>): MainToWorker => EvalJobSchema.parse({ type: 'eval', ...input });
const ofType = <T extends WorkerToMain['type']>(messages: WorkerToMain[], type: T) =>
  messages.filter((m): m is Extract<WorkerToMain, { type: T }> => m.type === type);

beforeAll(() => {
  // The fixture's PEFT adapter plus the sidecar the workbench writes next to every adapter it trains.
  fs.mkdirSync(adapterDir);
  for (const f of ['adapter_model.safetensors', 'adapter_config.json']) fs.copyFileSync(path.join(modelDir, 'lora-c_attn', f), path.join(adapterDir, f));
  const sidecar = AdapterSidecarSchema.parse({
    format: 'lora-workbench-adapter',
    version: 1,
    method: 'lora',
    runId: 'fixture-run',
    step: 7,
    trainableParams: 2 * 4 * (32 + 96),
    config: RunConfigSchema.parse({ model: modelDir, lora: { r: 4, alpha: 8, dropout: 0, targetModules: ['c_attn'] } }),
    backend: null,
    baseModel: { path: modelDir, fingerprint: null },
    createdAt: new Date(0).toISOString(),
  });
  fs.writeFileSync(path.join(adapterDir, SIDECAR_FILE), JSON.stringify(sidecar));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('eval jobs in the worker', () => {
  it('runs the bias suite with an adapter and returns figures with their provenance', async () => {
    const crowsPairs = path.join(evalData, 'crows-pairs.csv');
    const bbq = path.join(evalData, 'bbq.jsonl');
    const { messages, exitCode } = await runWorker(
      evalJob({
        modelDir,
        adapterDir,
        suite: 'bias',
        datasets: { crowsPairs, stereoSet: path.join(evalData, 'stereoset.json'), bbq },
        limit: 5,
        seed: 11,
        backend: 'cpu',
      }),
    );
    expect(ofType(messages, 'failed')).toEqual([]);
    expect(exitCode).toBe(0);
    const progress = ofType(messages, 'eval-progress');
    // 14 items plus the 5 BBQ twins of the counterfactual check.
    expect(progress.at(-1)).toMatchObject({ done: 19, total: 19 });
    const { result } = ofType(messages, 'evaluated')[0]!;
    expect(messages.at(-1)!.type).toBe('evaluated');
    expect(result).toMatchObject({
      suite: 'bias',
      seed: 11,
      backend: { name: 'cpu' },
      adapter: { dir: adapterDir, method: 'lora', runId: 'fixture-run', step: 7 },
    });
    expect(result.slices.map((s) => [s.dataset, s.count, s.limit])).toEqual([
      ['crows-pairs', 5, 5],
      ['stereoset', 4, 5],
      ['bbq', 5, 5],
    ]);
    expect(result.slices[0]!.sha256).toBe(await hashDatasetPath(crowsPairs));
    const bias = result.bias!;
    expect(bias.crowsPairs!.overall.count).toBe(5);
    expect(bias.crowsPairs!.biasScore).toBeGreaterThanOrEqual(0);
    expect(bias.crowsPairs!.biasScore).toBeLessThanOrEqual(1);
    expect(bias.bbq!.items).toHaveLength(5);
    expect(bias.representationShift!.count).toBe(5);
    expect(bias.representationShift!.shift).toBeGreaterThan(0);
    // gpt2-tiny: 2 layers x (c_attn 32*96 + 96, c_proj 32*32 + 32, c_fc 32*128 + 128, c_proj 128*32 + 32, 2 LayerNorms 4*32) + wte 264*32 + wpe 32*32 + ln_f 2*32.
    const baseParams = 2 * (32 * 96 + 96 + 32 * 32 + 32 + 32 * 128 + 128 + 128 * 32 + 32 + 4 * 32) + 264 * 32 + 32 * 32 + 2 * 32;
    expect(bias.parameterOverhead).toEqual({ trainable: 1024, base: baseParams, percent: (100 * 1024) / baseParams });
    // Every fixture BBQ item names an age, gender or religion term, so each has a twin.
    expect(bias.counterfactual).toMatchObject({ total: 5, count: 5, probabilityOf: 'gold' });
  });

  it('reports SemSim beside EM / F1, with the base model or an encoder folder as the encoder', async () => {
    const hotpotqa = path.join(fixtures, 'datasets', 'hotpotqa-official.json');
    const job = {
      modelDir,
      adapterDir: null,
      suite: 'hotpotqa' as const,
      datasets: { hotpotqa },
      limit: 2,
      backend: 'cpu' as const,
      maxNewTokens: 3,
      paragraphs: 'none' as const,
    };
    for (const encoderDir of [undefined, path.join(fixtures, 'bert-tiny')]) {
      const { messages, exitCode } = await runWorker(evalJob({ ...job, encoderDir }));
      expect(ofType(messages, 'failed')).toEqual([]);
      expect(exitCode).toBe(0);
      const { result } = ofType(messages, 'evaluated')[0]!;
      const { report, items, semanticEncoder } = result.hotpotqa!;
      expect(semanticEncoder).toBe(encoderDir ?? 'base model (mean-pooled final hidden states)');
      expect(items.every((i) => typeof i.semsim === 'number' && i.semsim >= -1 - 1e-6 && i.semsim <= 1 + 1e-6)).toBe(true);
      expect(report.overall.semsim).toBeCloseTo(items.reduce((s, i) => s + i.semsim!, 0) / items.length, 9);
    }
  });

  it('runs a robustness job on the base model', async () => {
    const { messages, exitCode } = await runWorker(
      evalJob({
        modelDir,
        adapterDir: null,
        suite: 'robustness',
        datasets: { qqp: path.join(fixtures, 'datasets', 'qqp.tsv') },
        limit: 2,
        seed: 5,
        backend: 'cpu',
        robustness: { task: 'qqp', families: ['typo'], levels: [0, 0.2] },
      }),
    );
    expect(exitCode).toBe(0);
    const { result } = ofType(messages, 'evaluated')[0]!;
    expect(result.adapter).toBeNull();
    expect(result.robustness!.curves.map((c) => [c.family, c.level])).toEqual([
      ['typo', 0],
      ['typo', 0.2],
    ]);
    expect(result.robustness!.count).toBe(2);
  });

  it('runs the perplexity suite on a text corpus and on OASST1 replies', async () => {
    const text = path.join(evalData, 'stories.txt');
    const oasst1 = path.join(fixtures, 'datasets', 'oasst1-messages.jsonl');
    const { messages, exitCode } = await runWorker(evalJob({ modelDir, adapterDir: null, suite: 'perplexity', datasets: { text, oasst1 }, backend: 'cpu' }));
    expect(ofType(messages, 'failed')).toEqual([]);
    expect(exitCode).toBe(0);
    const { result } = ofType(messages, 'evaluated')[0]!;
    expect(result.slices.map((s) => [s.dataset, s.count])).toEqual([
      ['text-corpus', 3],
      ['oasst1', result.perplexity!.oasst1!.count],
    ]);
    expect(result.slices[0]!.sha256).toBe(await hashDatasetPath(text));
    for (const lm of [result.perplexity!.text!, result.perplexity!.oasst1!]) {
      expect(lm.count).toBe(lm.items.length);
      expect(lm.tokens).toBe(lm.items.reduce((s, i) => s + i.tokens, 0));
      expect(lm.loss).toBeCloseTo(-lm.items.reduce((s, i) => s + i.logLikelihood, 0) / lm.tokens, 6);
      expect(lm.perplexity).toBeCloseTo(Math.exp(lm.loss), 6);
      // A random tiny model is near uniform over its 264 tokens.
      expect(lm.perplexity).toBeGreaterThan(50);
    }
    expect(result.perplexity!.text!.words).toBe(54);
    const progress = ofType(messages, 'eval-progress').at(-1)!;
    expect(progress.done).toBe(progress.total);
  });

  it('stops when asked, and rejects a job without the dataset its suite needs', async () => {
    const stopped = await runWorker(
      evalJob({ modelDir, adapterDir: null, suite: 'bias', datasets: { crowsPairs: path.join(evalData, 'crows-pairs.csv') }, backend: 'cpu' }),
      { stopAtOnce: true },
    );
    expect(stopped.messages.at(-1)).toEqual({ type: 'stopped', step: 0 });
    expect(ofType(stopped.messages, 'evaluated')).toEqual([]);

    const bad = await runWorker({ type: 'eval', modelDir, adapterDir: null, suite: 'qqp', datasets: {}, backend: 'cpu' });
    expect(bad.exitCode).toBe(1);
    expect(ofType(bad.messages, 'failed')[0]!.error).toMatchObject({ code: 'invalid_input' });
    expect(ofType(bad.messages, 'failed')[0]!.error.message).toMatch(/qqp dataset path/);
  });
});
