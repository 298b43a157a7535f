// One backend, one process: forward and LoRA train-step throughput of every model family the workbench
// loads (GPT-2; Llama and Qwen2 through the Llama loader; BERT, forward only), on the shapes in
// bench/families.json, which bench/torch_families.py reads too. Prints one JSON line per row; bench/run.ts
// runs it once per backend beside the PyTorch figures.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { backendNames, type BackendName } from '../src-shared/config.ts';
import type { BackendInfo } from '../src-shared/runs.ts';
import { initBackend } from '../src-worker/backend.ts';
import type { Batch } from '../src-worker/data/batcher.ts';
import { getMethod } from '../src-worker/methods/index.ts';
import { bertConfigFromHF, createBert, randomBertWeights } from '../src-worker/models/bert.ts';
import { createGPT2, gpt2ConfigFromHF, randomGPT2Weights } from '../src-worker/models/gpt2.ts';
import { createLlama, llamaConfigFromHF, randomLlamaWeights } from '../src-worker/models/llama.ts';
import type { CausalLM } from '../src-worker/models/types.ts';
import { tf } from '../src-worker/tf.ts';
import { AdamW } from '../src-worker/train/adamw.ts';
import { trainStep } from '../src-worker/train/loop.ts';

export interface FamilySpec {
  config: Record<string, unknown>;
  loraTargets: string[];
}
export interface FamiliesFile {
  batch: number;
  seq: number;
  lora: { r: number; alpha: number; dropout: number; lr: number };
  families: Record<string, FamilySpec>;
}
export const families = JSON.parse(readFileSync(join(import.meta.dirname, 'families.json'), 'utf-8')) as FamiliesFile;

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'wasm' },
    // Each row runs warm-up steps, then timed steps until it has min-steps and budget-s seconds, or max-steps.
    'budget-s': { type: 'string', default: '6' },
    'min-steps': { type: 'string', default: '3' },
    'max-steps': { type: 'string', default: '10' },
    // One warm-up step compiles every kernel (webgpu: every shader, seconds each on a CPU Vulkan driver).
    warmup: { type: 'string', default: '1' },
  },
});
const backend = values.backend as BackendName;
if (!backendNames.includes(backend)) throw new Error(`--backend must be one of ${backendNames.join(', ')}`);
const budgetMs = 1000 * Number(values['budget-s']);
const [minSteps, maxSteps, warmup] = [values['min-steps'], values['max-steps'], values.warmup].map((v) => Number.parseInt(String(v), 10)) as [
  number,
  number,
  number,
];

let info: BackendInfo;
try {
  info = await initBackend(backend);
} catch (error) {
  console.log(JSON.stringify({ backend, unavailable: (error as Error).message }));
  process.exit(0);
}

const { batch: B, seq: T } = families;
let state = 12345;
// The same token stream as bench/lora-step.ts (an LCG), reduced to each vocabulary.
const tokens = Int32Array.from({ length: B * T }, () => (state = (state * 1103515245 + 12345) % 2 ** 31));
const idsFor = (vocab: number) => tokens.map((t) => t % vocab);

/** Median milliseconds of `step` after warm-up; every step must finish its device work before returning. */
async function time(step: () => Promise<void>): Promise<{ ms: number; steps: number }> {
  for (let i = 0; i < warmup; i++) await step();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < maxSteps && (times.length < minSteps || performance.now() - start < budgetMs)) {
    const t0 = performance.now();
    await step();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)]!, steps: times.length };
}

function report(family: string, mode: 'forward' | 'train', result: { ms: number; steps: number }, params: number): void {
  console.log(
    JSON.stringify({
      backend: info.name,
      adapter: info.adapter,
      family,
      mode,
      step_ms: result.ms,
      steps: result.steps,
      tokens_per_s: (B * T * 1000) / result.ms,
      params,
    }),
  );
}

function causalLM(family: string, spec: FamilySpec): CausalLM {
  if (spec.config.model_type === 'gpt2') {
    const config = gpt2ConfigFromHF(spec.config);
    return createGPT2(config, randomGPT2Weights(config, 0));
  }
  const config = llamaConfigFromHF(spec.config, `bench/families.json ${family}`);
  return createLlama(config, randomLlamaWeights(config, 0));
}

async function benchCausalLM(family: string, spec: FamilySpec): Promise<void> {
  const model = causalLM(family, spec);
  const ids = tf.tensor2d(idsFor(model.config.vocabSize), [B, T], 'int32');
  // Forward as evaluation scores: logits on the device, one number read back to wait for them.
  const forward = await time(async () => {
    const total = tf.tidy(() => tf.sum(model.forward(ids)));
    await total.data();
    total.dispose();
  });
  report(family, 'forward', forward, model.parameterCount());
  ids.dispose();

  const method = getMethod('lora');
  const { r, alpha, dropout, lr } = families.lora;
  const adapter = method.create(model, method.parseSettings({ r, alpha, dropout, targetModules: spec.loraTargets }), 0);
  const params = adapter.trainable();
  const optimizer = new AdamW(
    ['lora_A', 'lora_B'].map((group) => ({
      name: group,
      lr,
      weightDecay: 0,
      params: params.filter((p) => p.group === group).map(({ name, variable }) => ({ name, variable })),
    })),
  );
  const nameOf = new Map(params.map((p) => [p.variable.name, p.name]));
  const variables = params.map((p) => p.variable);
  const batch: Batch = { inputIds: idsFor(model.config.vocabSize), lossMask: new Float32Array(B * T).fill(1), batchSize: B, seqLen: T, tokenCount: B * T };
  let step = 0;
  // trainStep reads the loss and the gradient norm back, so it returns after the device finished.
  const train = await time(async () => {
    await trainStep(model, adapter, optimizer, batch, 1, nameOf, variables, step++);
  });
  report(family, 'train', train, model.parameterCount());
  optimizer.dispose();
  adapter.dispose();
  model.dispose();
}

async function benchBert(family: string, spec: FamilySpec): Promise<void> {
  const config = bertConfigFromHF(spec.config, `bench/families.json ${family}`);
  const encoder = createBert(config, randomBertWeights(config, 0));
  const ids = tf.tensor2d(idsFor(config.vocabSize), [B, T], 'int32');
  const mask = tf.ones([B, T]) as tf.Tensor2D;
  // The masked-LM forward pseudo-log-likelihood scoring runs.
  const forward = await time(async () => {
    const total = tf.tidy(() => tf.sum(encoder.mlmLogits(ids, mask)));
    await total.data();
    total.dispose();
  });
  report(family, 'forward', forward, encoder.parameterCount());
  tf.dispose([ids, mask]);
  encoder.dispose();
}

for (const [family, spec] of Object.entries(families.families)) {
  try {
    if (spec.config.model_type === 'bert') await benchBert(family, spec);
    else await benchCausalLM(family, spec);
  } catch (error) {
    console.log(JSON.stringify({ backend: info.name, family, failed: (error as Error).message.split('\n')[0] }));
  }
}
process.exit(0);
