// One backend, one process: times the LoRA training step the app runs (src-worker/train/loop.ts's
// trainStep: forward, backward to the adapter only, clipping, AdamW) on a GPT-2-shaped model with random
// weights, and prints one JSON line. bench/run.ts runs it once per backend beside the PyTorch reference.
import { parseArgs } from 'node:util';
import { backendNames, type BackendName } from '../src-shared/config.ts';
import { initBackend } from '../src-worker/backend.ts';
import type { Batch } from '../src-worker/data/batcher.ts';
import { getMethod } from '../src-worker/methods/index.ts';
import { createGPT2, gpt2ConfigFromHF, randomGPT2Weights } from '../src-worker/models/gpt2.ts';
import { tf } from '../src-worker/tf.ts';
import { AdamW } from '../src-worker/train/adamw.ts';
import { trainStep } from '../src-worker/train/loop.ts';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'wasm' },
    'n-embd': { type: 'string', default: '128' },
    'n-layer': { type: 'string', default: '4' },
    'n-head': { type: 'string', default: '4' },
    vocab: { type: 'string', default: '4096' },
    seq: { type: 'string', default: '64' },
    batch: { type: 'string', default: '8' },
    // Rows per forward/backward pass (gradient accumulation); default: the whole batch.
    'micro-batch': { type: 'string' },
    'n-positions': { type: 'string' },
    rank: { type: 'string', default: '8' },
    steps: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
  },
});
const int = (key: keyof typeof values) => Number.parseInt(String(values[key]), 10);
const backend = values.backend as BackendName;
if (!backendNames.includes(backend)) throw new Error(`--backend must be one of ${backendNames.join(', ')}`);

let info;
try {
  info = await initBackend(backend);
} catch (error) {
  // Not an error of the benchmark: the backend is simply not available on this machine.
  console.log(JSON.stringify({ backend, unavailable: (error as Error).message }));
  process.exit(0);
}
const config = gpt2ConfigFromHF({
  n_embd: int('n-embd'),
  n_layer: int('n-layer'),
  n_head: int('n-head'),
  vocab_size: int('vocab'),
  n_positions: values['n-positions'] ? int('n-positions') : Math.max(256, int('seq')),
});
const model = createGPT2(config, randomGPT2Weights(config, 0));
const method = getMethod('lora');
const adapter = method.create(model, method.parseSettings({ r: int('rank'), alpha: 2 * int('rank'), dropout: 0.05, targetModules: ['c_attn', 'c_proj'] }), 0);
const params = adapter.trainable();
const optimizer = new AdamW(
  ['lora_A', 'lora_B'].map((group) => ({
    name: group,
    lr: 2e-3,
    weightDecay: 0,
    params: params.filter((p) => p.group === group).map(({ name, variable }) => ({ name, variable })),
  })),
);
const nameOf = new Map(params.map((p) => [p.variable.name, p.name]));
const variables = params.map((p) => p.variable);

const batchSize = int('batch');
const seqLen = int('seq');
let state = 12345;
const inputIds = Int32Array.from({ length: batchSize * seqLen }, () => (state = (state * 1103515245 + 12345) % 2 ** 31) % config.vocabSize);
const batch: Batch = { inputIds, lossMask: new Float32Array(batchSize * seqLen).fill(1), batchSize, seqLen, tokenCount: batchSize * seqLen };

/** The wasm module's linear memory (it only grows), 0 on other backends. */
function wasmHeapBytes(): number {
  const backend = tf.backend() as { wasm?: { HEAPU8: Uint8Array } };
  return backend.wasm?.HEAPU8.length ?? 0;
}

let peakRss = process.memoryUsage().rss;
let peakTensorBytes = 0;
const times: number[] = [];
for (let step = 0; step < int('warmup') + int('steps'); step++) {
  const start = performance.now();
  await trainStep(model, adapter, optimizer, batch, 1, nameOf, variables, step, undefined, {
    microBatchSize: values['micro-batch'] ? int('micro-batch') : null,
  });
  const elapsed = performance.now() - start;
  if (step >= int('warmup')) times.push(elapsed);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  peakTensorBytes = Math.max(peakTensorBytes, tf.memory().numBytes);
  if (process.env.BENCH_VERBOSE)
    console.error(
      `step ${step}: ${elapsed.toFixed(0)} ms, rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB, wasm heap ${(wasmHeapBytes() / 2 ** 20).toFixed(0)} MiB`,
    );
}
times.sort((a, b) => a - b);
const medianMs = times[Math.floor(times.length / 2)]!;
console.log(
  JSON.stringify({
    backend: info.name,
    adapter: info.adapter,
    step_ms: medianMs,
    tokens_per_s: (batchSize * seqLen * 1000) / medianMs,
    peak_rss_mb: peakRss / 2 ** 20,
    peak_tensor_mb: peakTensorBytes / 2 ** 20,
    wasm_heap_mb: wasmHeapBytes() / 2 ** 20,
    micro_batch: values['micro-batch'] ? int('micro-batch') : batchSize,
    trainable_params: adapter.trainableParamCount(),
    base_params: model.parameterCount(),
  }),
);
