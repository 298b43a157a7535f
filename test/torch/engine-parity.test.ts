// Issue 12 acceptance: from the same initial tensors and the same batches, with dropout 0, the pytorch
// engine's per-step train loss equals the tfjs engine's within 1e-4 for 10 steps, and the adapters
// both write equal within 1e-5, for each method this engine offers on the GPT-2, Llama and Qwen2 fixtures.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunConfigInput } from '../../src-shared/config.ts';
import { readSafetensorsFile } from '../../src-worker/formats/safetensors.ts';
import { type EngineRun, failureOf, fixture, makeJob, runPytorch, runTfjs, toyDataset } from './engine-run.ts';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-torch-parity-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));
const dataset = toyDataset(work);
/** The toy rows with a "task" field (two tasks, alternating), for bias-aware LoRA's multi-task runs. */
const taskDataset = path.join(work, 'toy-tasks.jsonl');
fs.writeFileSync(
  taskDataset,
  fs
    .readFileSync(dataset, 'utf8')
    .trim()
    .split('\n')
    .map((line, i) => JSON.stringify({ ...JSON.parse(line), task: i % 2 === 0 ? 'animals' : 'speech' }))
    .join('\n') + '\n',
);

const training = { batchSize: 4, maxSteps: 10, maxSeqLen: 16, warmupSteps: 2, evalEvery: 5, evalBatches: 1, checkpointEvery: 10, seed: 7 };
const targets: Record<string, string[]> = {
  'gpt2-tiny': ['c_attn', 'c_proj'],
  'llama-tiny': ['q_proj', 'v_proj'],
  'llama-tiny-qwen2': ['q_proj', 'v_proj', 'down_proj'],
};

/** Bias-aware variants: each L_bias reading, and two tasks with L_align; the regularizer weights large enough to move the loss. */
const biasAwareVariants: Record<string, Record<string, unknown>> = {
  counterfactual: { reading: 'counterfactual', lambdaBias: 0.5, lambdaKl: 0.5 },
  adversarial: { reading: 'adversarial', epsilon: 0.5, lambdaBias: 0.5, lambdaKl: 0.5 },
  'multi-task': { reading: 'counterfactual', lambdaBias: 0.5, lambdaKl: 0.5, lambdaAlign: 0.5, tasks: ['animals', 'speech'], taskMixture: [1, 3] },
};

/** The variant picks a method's settings: bias-aware's reading and tasks; prompt tuning's `text` starts from a text's token embeddings. */
function settings(family: string, method: string, variant = ''): RunConfigInput {
  const lora = { r: 4, alpha: 8, dropout: 0, targetModules: targets[family], useRslora: family !== 'gpt2-tiny' };
  const learningRate = method === 'full' ? 1e-3 : 1e-2;
  // Each method's configuration carries only its own sections. Prompt tuning's virtual tokens and the
  // sequence fit GPT-2-tiny's 32 positions.
  const sectionsOf: Record<string, object> = {
    lora: { lora },
    'lora-plus': { lora, loraPlus: { ratio: 4 } },
    selora: { lora, selora: { hiddenSize: 8, lambdaSem: 0.5 } },
    'bias-aware': { lora, biasAware: biasAwareVariants[variant] },
    // The text's tokens come to the pytorch engine in the data plan, tokenized by the tfjs engine's tokenizer.
    'prompt-tuning': {
      promptTuning:
        variant === 'text' ? { numVirtualTokens: 8, init: 'text', initText: 'Animal sounds: the cat says' } : { numVirtualTokens: 8, init: 'random' },
    },
    houlsby: { houlsby: { bottleneckSize: 4 } },
  };
  // Whole prompts for the counterfactual variant: cut to 16 tokens, Llama's "He said the cow says" loses its "He".
  // (The multi-task variant stays at 16: at 32, gpt2-tiny's align_tasks.1 lora_A lands 2e-5 (tfjs) and 4e-5
  // (pytorch) from a float64 run, a float32 noise floor above the 1e-5 the comparison asks for.)
  const maxSeqLen = variant === 'counterfactual' ? 32 : training.maxSeqLen;
  return { method, ...(sectionsOf[method] ?? {}), training: { ...training, learningRate, maxSeqLen } } as RunConfigInput;
}

const families = ['gpt2-tiny', 'llama-tiny', 'llama-tiny-qwen2'];
/** [family, method, variant]. QLoRA is not among them: the tfjs engine simulates its quantization, the pytorch
 *  engine uses bitsandbytes on CUDA only (refused below), and the two quantizations need not agree to 1e-4. */
const cases: [string, string, string][] = [
  ...families.flatMap((f) => ['lora', 'lora-plus', 'full', 'prompt-tuning', 'houlsby'].map((m) => [f, m, ''] as [string, string, string])),
  // Llama has no bias terms: BitFit is refused there (and by the tfjs engine alike).
  ['gpt2-tiny', 'bitfit', ''],
  ['llama-tiny-qwen2', 'bitfit', ''],
  ['llama-tiny', 'prompt-tuning', 'text'],
  ...families.map((f) => [f, 'selora', ''] as [string, string, string]),
  ...families.flatMap((f) => Object.keys(biasAwareVariants).map((v) => [f, 'bias-aware', v] as [string, string, string])),
];

/**
 * SeLoRA's g and bias-aware LoRA's regularizers get early gradients that are second-order small (B and g's
 * last layer start at zero), which AdamW's m / sqrt(v) scales up to steps of about lr: their rounding shows in
 * the adapter. These runs use transformers' eager attention, whose rounding is the closest to the tfjs engine's
 * plain attention: with sdpa's fused CPU kernel gpt2-tiny's selora_g.0.weight lands 1.7e-5 from a float64 run
 * (the tfjs engine's: 6e-6) and 2.4e-5 from the tfjs engine's; with eager, 7e-6.
 */
const conditioned = new Set(['selora', 'bias-aware']);

/**
 * The attention key biases (GPT-2's middle third of c_attn.bias, Qwen2's k_proj.bias) add the same
 * q.b_k to every score of a query's softmax, which the softmax ignores: their gradient is exactly zero
 * in exact arithmetic, and what each engine computes is rounding noise that AdamW's m / sqrt(v) turns
 * into steps of +-lr. They change no output (the probe logits below are compared whole), so the tensor
 * comparison leaves them out; every other trained element must agree within 1e-5.
 */
function isKeyBias(key: string, index: number, size: number): boolean {
  if (key.endsWith('.k_proj.bias')) return true;
  return key.endsWith('.attn.c_attn.bias') && index >= size / 3 && index < (2 * size) / 3;
}

/** Largest |difference| between two runs' adapter tensors (key biases aside); every key must be in both. */
async function adapterDiff(a: string, b: string): Promise<number> {
  expect(fs.existsSync(path.join(b, 'adapter_config.json')), b).toBe(fs.existsSync(path.join(a, 'adapter_config.json')));
  const ta = (await readSafetensorsFile(path.join(a, 'adapter_model.safetensors'))).tensors;
  const tb = (await readSafetensorsFile(path.join(b, 'adapter_model.safetensors'))).tensors;
  expect([...tb.keys()].sort()).toEqual([...ta.keys()].sort());
  let max = 0;
  for (const [key, t] of ta) {
    const other = tb.get(key)!;
    expect(other.shape, key).toEqual(t.shape);
    for (let i = 0; i < t.data.length; i++) if (!isKeyBias(key, i, t.data.length)) max = Math.max(max, Math.abs(t.data[i]! - other.data[i]!));
  }
  return max;
}

/** Largest |difference| between the probe logits each engine wrote with its final adapter. */
async function probeDiff(a: string, b: string): Promise<number> {
  const pa = (await readSafetensorsFile(path.join(a, 'probe.safetensors'))).tensors;
  const pb = (await readSafetensorsFile(path.join(b, 'probe.safetensors'))).tensors;
  expect(pb.get('input_ids')!.data).toEqual(pa.get('input_ids')!.data);
  const la = pa.get('logits')!;
  const lb = pb.get('logits')!;
  expect(lb.shape).toEqual(la.shape);
  let max = 0;
  for (let i = 0; i < la.data.length; i++) max = Math.max(max, Math.abs(la.data[i]! - lb.data[i]!));
  return max;
}

/**
 * The regularizers each engine logged (loss/<name>, flatten/max_logit_diff): the same names, and values
 * within 1e-4 relative to their size. Returns the largest such relative difference.
 */
function regularizerDiff(tfjs: EngineRun, torch: EngineRun): number {
  const of = (run: EngineRun) => new Map(run.points.filter((p) => /^(loss|flatten)\//.test(p.name)).map((p) => [`${p.name}@${p.step}`, p.value]));
  const [a, b] = [of(tfjs), of(torch)];
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  let max = 0;
  for (const [key, value] of a) max = Math.max(max, Math.abs(value - b.get(key)!) / Math.max(1, Math.abs(value)));
  return max;
}

describe('pytorch engine parity with the tfjs engine', () => {
  for (const [family, method, variant] of cases) {
    const name = variant ? `${method}-${variant}` : method;
    it(`${family} ${name}: 10 steps of train loss within 1e-4, adapters within 1e-5`, async () => {
      const input = settings(family, method, variant);
      const data = variant === 'multi-task' ? taskDataset : dataset;
      const tfjs = await runTfjs(makeJob(path.join(work, `${family}-${name}-tfjs`), fixture(family), data, input));
      const torch = await runPytorch(makeJob(path.join(work, `${family}-${name}-torch`), fixture(family), data, { ...input, engine: 'pytorch' }), {
        env: conditioned.has(method) ? { WORKBENCH_TORCH_ATTENTION: 'eager' } : {},
      });
      expect(failureOf(torch)).toBeNull();
      expect(torch.exitCode).toBe(0);
      const steps = [...tfjs.losses.keys()].sort((x, y) => x - y);
      expect(steps).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
      const lossDiffs = steps.map((s) => Math.abs(tfjs.losses.get(s)! - torch.losses.get(s)!));
      const maxLoss = Math.max(...lossDiffs);
      const [tfjsAdapter, torchAdapter] = ['tfjs', 'torch'].map((engine) => path.join(work, `${family}-${name}-${engine}`, 'adapter'));
      let maxAdapter = await adapterDiff(tfjsAdapter!, torchAdapter!);
      let maxProbe = await probeDiff(tfjsAdapter!, torchAdapter!);
      // SeLoRA and multi-task adapters also write the plain LoRA they export as (flattened/): it must agree too.
      const flat = ['tfjs', 'torch'].map((engine) => path.join(work, `${family}-${name}-${engine}`, 'adapter', 'flattened'));
      expect(fs.existsSync(flat[1]!)).toBe(fs.existsSync(flat[0]!));
      if (fs.existsSync(flat[0]!)) {
        maxAdapter = Math.max(maxAdapter, await adapterDiff(flat[0]!, flat[1]!));
        maxProbe = Math.max(maxProbe, await probeDiff(flat[0]!, flat[1]!));
      }
      const maxRegularizer = regularizerDiff(tfjs, torch);
      if (variant === 'counterfactual') {
        // The swap found demographic terms to act on: the bias term is not a constant 0.
        expect(Math.max(...torch.points.filter((p) => p.name === 'loss/bias_counterfactuals').map((p) => p.value))).toBeGreaterThan(0);
      }
      console.log(
        `parity ${family} ${name}: max |loss diff| ${maxLoss.toExponential(2)}, max |adapter diff| ${maxAdapter.toExponential(2)}, max |probe logit diff| ${maxProbe.toExponential(2)}, max regularizer diff ${maxRegularizer.toExponential(2)}, loss ${tfjs.losses.get(1)!.toFixed(4)} -> ${tfjs.losses.get(10)!.toFixed(4)}`,
      );
      expect(maxLoss).toBeLessThanOrEqual(1e-4);
      expect(maxAdapter).toBeLessThanOrEqual(1e-5);
      expect(maxProbe).toBeLessThanOrEqual(1e-4);
      expect(maxRegularizer).toBeLessThanOrEqual(1e-4);
      // Training moved the loss: the comparison is not of two untouched models.
      expect(tfjs.losses.get(10)!).toBeLessThan(tfjs.losses.get(1)! - 0.05);
    });
  }

  it('qlora is refused where torch has no CUDA, naming bitsandbytes and what to do instead', async () => {
    const input = { ...settings('gpt2-tiny', 'lora'), method: 'qlora', engine: 'pytorch' } as RunConfigInput;
    // No visible CUDA device: what a CPU-only torch sees, on any machine.
    const torch = await runPytorch(makeJob(path.join(work, 'qlora-torch'), fixture('gpt2-tiny'), dataset, input), { env: { CUDA_VISIBLE_DEVICES: '' } });
    expect(torch.exitCode).not.toBe(0);
    const message = failureOf(torch);
    expect(message).toMatch(/QLoRA on the pytorch engine quantizes the base model with bitsandbytes, which needs an NVIDIA GPU with CUDA/);
    expect(message).toMatch(/Train QLoRA with the tfjs engine/);
    expect(message).toMatch(/requirements-cuda\.txt/);
    expect(torch.losses.size).toBe(0);
  });
});
