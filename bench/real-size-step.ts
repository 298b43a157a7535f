// One model of a real shape with random weights, one backend, one process: the memory plan
// (train/memory-plan.ts) for the batch, then LoRA training steps through trainStep with the plan's
// micro-batches, and one JSON line: tokens/s, peak RSS, the wasm heap, or the plan's refusal.
// With --workers N the batch's rows are split between this thread and N - 1 replicas, as a run does
// (train/data-parallel.ts): the random weights are then written to a model folder that every worker
// loads (in the --dtype given), and the peak RSS is the whole process's, replicas included.
// bench/real-sizes.ts runs it next to bench/peft_lora_step.py (transformers + PEFT on torch CPU).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type BackendName, RunConfigSchema } from '../src-shared/config.ts';
import { startEngineWorker } from '../src-main/worker-thread.ts';
import { initBackend } from '../src-worker/backend.ts';
import type { Batch } from '../src-worker/data/batcher.ts';
import type { ArchitectureShape } from '../src-worker/models/architecture.ts';
import { methodOf } from '../src-worker/methods/index.ts';
import { loadCausalLM } from '../src-worker/formats/model-folder.ts';
import { serializeSafetensors } from '../src-worker/formats/safetensors.ts';
import { ReplicaGroup } from '../src-worker/train/data-parallel.ts';
import { createGPT2, gpt2ConfigFromHF, gpt2ParameterShapes, randomGPT2Weights } from '../src-worker/models/gpt2.ts';
import { createLlama, llamaConfigFromHF, llamaParameterShapes, randomLlamaWeights } from '../src-worker/models/llama.ts';
import { setWasmWeightPacking } from '../src-worker/models/ops.ts';
import type { CausalLM } from '../src-worker/models/types.ts';
import { halfStorable, type HalfFormat } from '../src-worker/formats/half-bits.ts';
import { halfStorageAvailable } from '../src-worker/kernels/half-weights.ts';
import { tf } from '../src-worker/tf.ts';
import { AdamW } from '../src-worker/train/adamw.ts';
import { trainStep } from '../src-worker/train/accumulate.ts';
import { activeDeviceLimits, backendLimits, planMemory } from '../src-worker/train/memory-plan.ts';

/** The shapes of the models, as their config.json files give them. */
const SHAPES: Record<string, Record<string, unknown>> = {
  gpt2: { model_type: 'gpt2', n_embd: 768, n_layer: 12, n_head: 12, vocab_size: 50257, n_positions: 1024 },
  smollm2: {
    model_type: 'llama',
    hidden_size: 576,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    intermediate_size: 1536,
    vocab_size: 49152,
    tie_word_embeddings: true,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
  },
  qwen2: {
    model_type: 'qwen2',
    hidden_size: 896,
    num_hidden_layers: 24,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    intermediate_size: 4864,
    vocab_size: 151936,
    tie_word_embeddings: true,
    max_position_embeddings: 32768,
  },
  tinyllama: {
    model_type: 'llama',
    hidden_size: 2048,
    num_hidden_layers: 22,
    num_attention_heads: 32,
    num_key_value_heads: 4,
    intermediate_size: 5632,
    vocab_size: 32000,
    max_position_embeddings: 2048,
  },
};

const { values } = parseArgs({
  options: {
    family: { type: 'string', default: 'gpt2' },
    backend: { type: 'string', default: 'wasm' },
    method: { type: 'string', default: 'lora' },
    batch: { type: 'string', default: '8' },
    seq: { type: 'string', default: '256' },
    steps: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '1' },
    // Rows per pass; unset, the plan picks the largest that fits (on webgpu that can be most of the machine's RAM).
    'micro-batch': { type: 'string' },
    workers: { type: 'string', default: '1' },
    // bf16 or f16: the random weights' block matrices rounded to it, as a checkpoint in that dtype holds them (Qwen2.5 ships bf16).
    dtype: { type: 'string', default: 'f32' },
  },
});
const int = (key: 'batch' | 'seq' | 'steps' | 'warmup') => Number.parseInt(String(values[key]), 10);
const family = String(values.family);
const json = SHAPES[family];
if (!json) throw new Error(`--family must be one of ${Object.keys(SHAPES).join(', ')}`);
const dtype = String(values.dtype);
if (!['f32', 'bf16', 'f16'].includes(dtype)) throw new Error('--dtype must be f32, bf16 or f16');
const halfFormat: HalfFormat | null = dtype === 'f32' ? null : dtype === 'bf16' ? 'BF16' : 'F16';
const backend = values.backend as BackendName;
const info = await initBackend(backend);
const [B, T] = [int('batch'), int('seq')];
const microBatchSize = values['micro-batch'] === undefined ? null : Number.parseInt(values['micro-batch'], 10);
const workers = Number.parseInt(String(values.workers), 10);

const isGpt2 = json.model_type === 'gpt2';
const gpt2 = isGpt2 ? gpt2ConfigFromHF(json) : null;
const llama = isGpt2 ? null : llamaConfigFromHF(json);
const C = gpt2?.nEmbd ?? llama!.hiddenSize;
const I = gpt2?.nInner ?? llama!.intermediateSize;
const V = gpt2?.vocabSize ?? llama!.vocabSize;
const heads = gpt2?.nHead ?? llama!.numAttentionHeads;
const layers = gpt2?.nLayer ?? llama!.numHiddenLayers;
const shape: ArchitectureShape = {
  family: isGpt2 ? 'gpt2' : 'llama',
  layers,
  hiddenSize: C,
  heads,
  kvHeads: llama?.numKeyValueHeads ?? heads,
  vocabSize: V,
  maxPositions: gpt2?.nPositions ?? llama!.maxPositionEmbeddings,
  intermediateSize: I,
  defaultTargetShapes: [],
};
const targetModules = isGpt2 ? ['c_attn', 'c_proj'] : ['q_proj', 'v_proj'];
let model: CausalLM;
let modelDir: string | null = null;
let halfParams = 0;
// What a bf16 copy would hold 16-bit: the f32 run's refusal advises it.
let halfStorableParams = 0;
{
  // Scoped so that the JavaScript copies of the random weights can be collected once the model holds them.
  // As in a run, the plan sees the parameter count before any weight exists (TinyLlama's would not load).
  let parameterCount = 0;
  for (const [key, dims] of isGpt2 ? gpt2ParameterShapes(gpt2!) : llamaParameterShapes(llama!)) {
    const n = dims.reduce((p, d) => p * d, 1);
    parameterCount += n;
    if (halfStorageAvailable() && halfStorable(key, dims)) halfStorableParams += n;
  }
  if (halfFormat) halfParams = halfStorableParams;
  const limits = backendLimits(backend, activeDeviceLimits(), os.freemem());
  const preload = planMemory({
    shape,
    parameterCount,
    batchSize: B,
    seqLen: T,
    microBatchSize,
    trainableParams: 0,
    quantized: null,
    beforeLoad: true,
    halfParams,
    halfStorableParams,
    limits,
  });
  if (!preload.fits) {
    console.log(JSON.stringify({ family, backend: info.name, refused: preload.refusal }));
    process.exit(0);
  }
  if (workers > 1) {
    // Every worker loads the same folder, as a run's replicas do; a 16-bit --dtype writes a 16-bit checkpoint.
    modelDir = path.join(os.tmpdir(), `lw-bench-${family}-${dtype}`);
    if (!fs.existsSync(path.join(modelDir, 'model.safetensors'))) {
      fs.mkdirSync(modelDir, { recursive: true });
      const weights = isGpt2 ? randomGPT2Weights(gpt2!, 0, 0.02) : randomLlamaWeights(llama!, 0, 0.02);
      const stored = halfFormat === 'BF16' ? 'BF16' : halfFormat === 'F16' ? 'F16' : 'F32';
      fs.writeFileSync(path.join(modelDir, 'model.safetensors'), serializeSafetensors(weights, { format: 'pt' }, stored));
      fs.writeFileSync(path.join(modelDir, 'config.json'), JSON.stringify(json));
      // A model folder needs a tokenizer; the bench feeds token ids, so the test fixtures' small one does.
      const tokenizer = path.join(import.meta.dirname, '..', 'test', 'fixtures', 'tokenizer');
      for (const file of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(tokenizer, file), path.join(modelDir, file));
    }
    model = await loadCausalLM(modelDir);
  } else {
    const weights = isGpt2 ? randomGPT2Weights(gpt2!, 0, 0.02, halfFormat) : randomLlamaWeights(llama!, 0, 0.02, halfFormat);
    model = isGpt2 ? createGPT2(gpt2!, weights) : createLlama(llama!, weights);
  }
}
const config = RunConfigSchema.parse({
  method: String(values.method),
  lora: { r: 8, alpha: 16, dropout: 0.05, targetModules },
  backend,
  training: { batchSize: B, maxSeqLen: T, seed: 0, workers },
});
const { method, settings } = methodOf(config);
const adapter = method.create(model, settings, 0);
adapter.releaseFloatWeights?.();
const quantizedSizes = adapter.releaseFloatWeights ? adapter.targets.map((t) => t.inFeatures * t.outFeatures) : [];
const plan = planMemory({
  shape,
  parameterCount: model.parameterCount(),
  batchSize: B,
  seqLen: T,
  microBatchSize,
  trainableParams: adapter.trainableParamCount(),
  quantized: quantizedSizes.length ? { params: quantizedSizes.reduce((a, b) => a + b, 0), largestModuleParams: Math.max(...quantizedSizes) } : null,
  halfParams,
  halfStorableParams,
  limits: backendLimits(backend, activeDeviceLimits(), os.freemem()),
  largestTrainedTensorParams: Math.max(0, ...adapter.trainable().map((p) => p.variable.size)),
});
if (!plan.fits) {
  console.log(JSON.stringify({ family, backend: info.name, refused: plan.refusal }));
  process.exit(0);
}
setWasmWeightPacking(plan.wasmPacking);
console.error(plan.summary);
const replicas =
  workers > 1
    ? await ReplicaGroup.start(
        workers - 1,
        {
          modelDir: modelDir!,
          backend: info.name,
          config,
          fitPrompts: null,
          taskMixture: null,
          microBatchSize: plan.microBatchSize,
          recompute: plan.recompute,
          logitsChunkTokens: plan.logitsChunkTokens,
          wasmPacking: plan.wasmPacking,
        },
        () => startEngineWorker('replica'),
      )
    : null;
const params = adapter.trainable();
const optimizer = new AdamW([{ name: 'all', lr: 2e-3, weightDecay: 0, params: params.map(({ name, variable }) => ({ name, variable })) }]);
const nameOf = new Map(params.map((p) => [p.variable.name, p.name]));
let state = 12345;
const inputIds = Int32Array.from({ length: B * T }, () => (state = (state * 1103515245 + 12345) % 2 ** 31) % V);
const batch: Batch = { inputIds, lossMask: new Float32Array(B * T).fill(1), batchSize: B, seqLen: T, tokenCount: B * T };
const heap = () => (tf.backend() as { wasm?: { HEAPU8: Uint8Array } }).wasm?.HEAPU8.length ?? 0;

// The process's high-water mark (getrusage, as the PEFT script reads it): replicas are threads of this process.
const maxRss = () => process.resourceUsage().maxRSS * 1024;
let peakRss = maxRss();
const times: number[] = [];
for (let step = 0; step < int('warmup') + int('steps'); step++) {
  const start = performance.now();
  await trainStep(
    model,
    adapter,
    optimizer,
    batch,
    1,
    nameOf,
    params.map((p) => p.variable),
    step + 1,
    undefined,
    { ...plan, replicas },
  );
  const elapsed = performance.now() - start;
  if (step >= int('warmup')) times.push(elapsed);
  peakRss = Math.max(peakRss, maxRss());
  console.error(`step ${step}: ${elapsed.toFixed(0)} ms, rss ${(peakRss / 2 ** 20).toFixed(0)} MiB, wasm heap ${(heap() / 2 ** 20).toFixed(0)} MiB`);
}
await replicas?.dispose();
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)]!;
console.log(
  JSON.stringify({
    family,
    backend: info.name,
    adapter: info.adapter,
    method: values.method,
    batch: B,
    seq: T,
    dtype,
    micro_batch: plan.microBatchSize,
    workers,
    packing: plan.wasmPacking,
    step_ms: median,
    tokens_per_s: (B * T * 1000) / median,
    peak_rss_mb: peakRss / 2 ** 20,
    wasm_heap_mb: heap() / 2 ** 20,
    plan_total_mb: plan.figures.total / 2 ** 20,
    base_params: model.parameterCount(),
    trainable_params: adapter.trainableParamCount(),
  }),
);
