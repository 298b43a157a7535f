// The memory plan of a training run, made before the model loads: what the weights, the adapter and
// its optimizer state, the activations of one micro-batch and the largest temporary (a chunk of
// logits) take on the chosen backend, against that backend's real limits: wasm32's 4 GiB heap
// (every tensor of the wasm backend lives in it), WebGPU's maxBufferSize and
// maxStorageBufferBindingSize (the largest single tensor), and the machine's RAM. It picks the
// micro-batch (gradient accumulation, train/accumulate.ts) when the run does not set one, and a run
// that cannot fit is refused before it starts, with the figures and the settings that would fit.
import os from 'node:os';
import type { BackendName } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { ArchitectureShape, Family } from '../models/architecture.ts';
import { defaultChunkTokens } from '../kernels/head-cross-entropy.ts';
import { vocabShardRows } from '../kernels/head-product.ts';
import { tf } from '../tf.ts';

const F32 = 4;
/** A frozen weight held 16-bit (kernels/half-weights.ts). */
const HALF = 2;

/**
 * Floats kept per token during one training step on the tfjs backends, per unit of each dimension
 * (train/accumulate.ts trainStep). tfjs has no fused kernels: variableGrads keeps every op output of
 * the forward pass on its tape (the ones each op saves for its gradient), and the backward pass makes
 * a gradient of the same size for each. tfjs itself keeps both until the step ends (2x the outputs);
 * kernels/release-gradients.ts frees each node's saved tensors and gradients once the backward is past
 * it, so the peak comes early in the backward: about 1.25x the forward's outputs (measured: the
 * peak fell by 31-34% on a GPT-2 shape, with and without recomputation). The counts below are the op
 * outputs times that factor:
 *
 * - HIDDEN, per layer per unit of hidden size: two LayerNorms (mean, centred, square, variance,
 *   rsqrt, normalised, scaled, shifted: ~8 each), attention (c_attn and its bias 6, q/k/v split and
 *   head transposes 6, merged heads 2, c_proj and bias 2, residual 1), MLP c_proj, bias and residual 3,
 *   LoRA on the default targets (dropout mask and output, x A, (x A) B, scaling, sum: ~15) and the
 *   embeddings: ~55 outputs, 68 floats.
 * - MLP, per layer per unit of the MLP width: GELU's tanh form 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))
 *   is 8 element-wise ops after c_fc and its bias: 10 outputs, 12 floats. SwiGLU (gate, up, sigmoid,
 *   silu, product) is 5 outputs, 6 floats; BERT's exact GELU (dense+bias, /sqrt 2, erf, +1, x, 0.5) 6, 7.
 * - ATTENTION, per layer per head per key position: scores, scaled, masked, softmax (exp, sum, divide):
 *   ~4 outputs of [B, heads, T, T], 5 floats.
 * - No logits: the LM head and the cross-entropy run fused in chunks of tokens (kernels/
 *   head-cross-entropy.ts); a chunk's temporaries are counted apart (runFigures' logitsChunk).
 *
 * The counts were checked against tf.profile's peakBytes on the cpu backend for GPT-2 shapes varying
 * hidden size, layers, MLP width, vocabulary and sequence length (test/unit/inspect-model.test.ts
 * checks the gpt2-tiny and llama-tiny fixtures); they hold within a few percent there.
 */
export const ACTIVATION_FLOATS = {
  hidden: 68,
  mlp: { gpt2: 12, llama: 6, bert: 7 } satisfies Record<Family, number>,
  attention: 5,
} as const;

/** param + gradient + AdamW's first and second moments, each an f32. */
export const ADAPTER_FLOATS_PER_PARAM = 4;

const GB = 1e9;
/** wasm32 addresses 4 GiB; tfjs-backend-wasm's module is built to grow to exactly that. */
export const WASM_HEAP_BYTES = 2 ** 32;
/** The share of a pool a plan may fill: allocator fragmentation and what the estimate leaves out need the rest. */
const USABLE_SHARE = 0.85;
/**
 * The wasm heap a step grows to, per byte of tensors the plan counts: the heap never shrinks, and
 * emscripten's allocator fragments between the passes' differently sized temporaries. Measured on
 * GPT-2 124M at 8 passes of 1 x 256 tokens: 4066 MiB of heap for a plan of 3090 MiB (1.32).
 */
export const WASM_HEAP_PER_TENSOR_BYTE = 1.35;
/** Node, V8 and the libraries before any tensor: measured ~250-350 MB RSS for a worker with tfjs loaded. */
const PROCESS_BASELINE_BYTES = 350 * 2 ** 20;

export interface BackendLimits {
  backend: BackendName;
  /** Bytes every tensor of the backend shares (wasm: the heap; cpu, tensorflow, webgpu: RAM). */
  poolBytes: number;
  poolLabel: string;
  /** The largest single tensor the backend can hold (webgpu's binding and buffer limits); null: no limit below the pool. */
  maxTensorBytes: number | null;
  maxTensorLabel: string | null;
  /** The machine's available RAM, for what lives outside the backend's pool. */
  ramBytes: number;
}

export interface DeviceLimits {
  maxBufferSize?: number;
  maxStorageBufferBindingSize?: number;
}

/** The limits of `backend`; webgpu's come from the device tfjs opened (pass its `limits`). */
export function backendLimits(backend: BackendName, gpuLimits: DeviceLimits | null = null, ramBytes = os.freemem()): BackendLimits {
  if (backend === 'wasm') {
    return {
      backend,
      poolBytes: Math.min(WASM_HEAP_BYTES, ramBytes),
      poolLabel: ramBytes < WASM_HEAP_BYTES ? 'the available RAM' : "wasm32's 4 GiB heap",
      maxTensorBytes: null,
      maxTensorLabel: null,
      ramBytes,
    };
  }
  if (backend === 'webgpu' && gpuLimits) {
    const binding = gpuLimits.maxStorageBufferBindingSize ?? Infinity;
    const buffer = gpuLimits.maxBufferSize ?? Infinity;
    const maxTensorBytes = Math.min(binding, buffer);
    const label = binding <= buffer ? "the adapter's maxStorageBufferBindingSize" : "the adapter's maxBufferSize";
    return {
      backend,
      poolBytes: ramBytes,
      poolLabel: 'the available RAM',
      maxTensorBytes: Number.isFinite(maxTensorBytes) ? maxTensorBytes : null,
      maxTensorLabel: label,
      ramBytes,
    };
  }
  return { backend, poolBytes: ramBytes, poolLabel: 'the available RAM', maxTensorBytes: null, maxTensorLabel: null, ramBytes };
}

/** webgpu's device limits when the active tfjs backend is webgpu (its backend holds the device it opened). */
export function activeDeviceLimits(): DeviceLimits | null {
  if (tf.getBackend() !== 'webgpu') return null;
  return (tf.backend() as unknown as { device?: { limits?: DeviceLimits } }).device?.limits ?? null;
}

/** The largest single tensor the active backend holds (models/lm-head.ts shards the vocabulary above it); null: no such limit. */
export function activeMaxTensorBytes(): number | null {
  return tf.getBackend() === 'webgpu' ? backendLimits('webgpu', activeDeviceLimits()).maxTensorBytes : null;
}

export interface MemoryPlanRequest {
  shape: ArchitectureShape;
  parameterCount: number;
  batchSize: number;
  /** The run's sequence length, already capped at the model's positions. */
  seqLen: number;
  /** training.microBatchSize; null lets the plan choose. */
  microBatchSize: number | null;
  trainableParams: number;
  /** QLoRA: how many base parameters are held quantized (in JavaScript, outside the backend) and the largest module, dequantized per use. */
  quantized: { params: number; largestModuleParams: number } | null;
  /**
   * The plan before the model loads, which counts every weight as stored whatever the method: QLoRA
   * quantizes only after loading, so it would not lower this plan's figure and is not offered.
   */
  beforeLoad?: boolean;
  /**
   * Base parameters held 16-bit and widened per use (kernels/half-weights.ts): the block matrices of
   * an f16/bf16 checkpoint on a backend with the WidenHalf kernel (cpu, wasm); 0 or absent otherwise.
   */
  halfParams?: number;
  /**
   * The parameters a 16-bit copy of the checkpoint would hold 16-bit on this backend (its block
   * matrices), for the refusal's advice when the checkpoint is f32; 0 or absent where none would.
   */
  halfStorableParams?: number;
  limits: BackendLimits;
  /**
   * False when recomputation would cost more than it saves: methods that train the base weights
   * (every block would return a zero gradient for every other block's weights).
   */
  allowRecompute?: boolean;
  /**
   * Parameters of the largest tensor the method trains (full fine-tuning's embedding): trained
   * tensors are held whole, where the frozen vocabulary tables are sharded to the backend's largest tensor.
   */
  largestTrainedTensorParams?: number;
}

export interface MemoryFigures {
  /**
   * Base weights in the backend (f32, or 2 bytes for those held 16-bit), the quantized ones excepted
   * (one of them dequantized at a time); on wasm with cached packing also XNNPACK's packed copy of each
   * f32 weight (models/ops.ts); and the 16-bit weights' widened temporaries (see runFigures).
   */
  weights: number;
  /** 16-bit weights (halfParams) held at 2 bytes, included in `weights`. */
  halfWeights: number;
  /** Loading widens every weight but the 16-bit ones to f32 in the backend before QLoRA quantizes them. */
  loadPeak: number;
  adapter: number;
  /** Kept for the backward pass, per micro-batch. */
  activations: number;
  /** The largest temporary: a chunk of logits and its softmax gradient. */
  logitsChunk: number;
  total: number;
}

export type WasmPacking = 'cached' | 'per-call';

/** How a step runs: XNNPACK's packing on wasm ('none' elsewhere), and whether blocks are recomputed. */
export interface StepMode {
  packing: WasmPacking | 'none';
  recompute: boolean;
}

/** Floats per unit of hidden size per layer that recomputation keeps: each block's input, its gradient and slack. */
const RECOMPUTE_HIDDEN_FLOATS = 4;

export interface MemoryPlan {
  fits: boolean;
  microBatchSize: number;
  /** wasm: whether XNNPACK keeps a packed copy of every weight (fast) or packs per call (weights held once). */
  wasmPacking: WasmPacking;
  /** Recompute each block's activations in the backward pass (kernels/recompute.ts): on when nothing fits without it. */
  recompute: boolean;
  logitsChunkTokens: number;
  figures: MemoryFigures;
  limits: BackendLimits;
  /** One line for the run's log. */
  summary: string;
  /** Why the run cannot fit and what would, when it does not. */
  refusal: string | null;
}

/** Activation floats kept per token of a micro-batch at sequence length T (inspect-model.ts ACTIVATION_FLOATS, without the logits: the head runs in chunks). */
function activationFloatsPerToken(shape: ArchitectureShape, T: number): number {
  const mlp = ACTIVATION_FLOATS.mlp[shape.family ?? 'gpt2'];
  return shape.layers * (ACTIVATION_FLOATS.hidden * shape.hiddenSize + mlp * shape.intermediateSize + ACTIVATION_FLOATS.attention * shape.heads * T);
}

/** The figures of one pass of m rows of T tokens (what inspect-model.ts's estimate shows too). */
export function runFigures(
  req: Pick<MemoryPlanRequest, 'shape' | 'parameterCount' | 'trainableParams' | 'quantized' | 'halfParams'>,
  m: number,
  T: number,
  chunkTokens: number,
  mode: StepMode = { packing: 'none', recompute: false },
): MemoryFigures {
  const { packing } = mode;
  const { shape } = req;
  const quantizedParams = req.quantized?.params ?? 0;
  const halfParams = req.halfParams ?? 0;
  // QLoRA's targets of a 16-bit checkpoint are among its 16-bit matrices (they stay held at 2 bytes).
  const f32Held = (req.parameterCount - Math.max(halfParams, quantizedParams)) * F32;
  const halfWeights = halfParams * HALF;
  // Packed copies: every stored f32 weight once more (the head's packing takes the embedding's place);
  // per-call packing still keeps the head's one copy (kernels/head-product.ts) and one layer's.
  const packed = packing === 'cached' ? f32Held : packing === 'per-call' ? F32 * shape.vocabSize * shape.hiddenSize : 0;
  // A 16-bit weight widened for a product lives until the backward pass has used it: one block's at a
  // time when blocks are recomputed, every block's otherwise. On wasm each also has XNNPACK's packing,
  // and the backward's dx = dy W^T a transposed copy with its own packing (models/ops.ts).
  const widenedCopies = packing === 'none' ? 1 : 4;
  const widened = F32 * widenedCopies * (mode.recompute ? halfParams / shape.layers : halfParams);
  const weights = f32Held + halfWeights + (req.quantized?.largestModuleParams ?? 0) * F32 + packed + widened;
  const loadPeak = (req.parameterCount - halfParams) * F32 + halfWeights;
  const adapter = req.trainableParams * ADAPTER_FLOATS_PER_PARAM * F32;
  // Recomputed: the blocks' inputs (and their gradients) stay, and one block's activations at a time.
  const activations = mode.recompute
    ? F32 * m * T * (shape.layers * RECOMPUTE_HIDDEN_FLOATS * shape.hiddenSize + activationFloatsPerToken(shape, T) / shape.layers)
    : F32 * m * T * activationFloatsPerToken(shape, T);
  // A chunk keeps about four [chunk, V] tensors alive (logits, softmax, one-hot, their difference), plus dh [m T, C].
  const logitsChunk = F32 * (4 * Math.min(chunkTokens, m * T) * shape.vocabSize + m * T * shape.hiddenSize);
  return { weights, halfWeights, loadPeak, adapter, activations, logitsChunk, total: Math.max(loadPeak, weights + adapter + activations + logitsChunk) };
}

/** Rows of the largest shard of the vocabulary tables (models/lm-head.ts VocabShards), V when they are held whole. */
function shardRows(req: Pick<MemoryPlanRequest, 'shape' | 'limits'>): number {
  const { shape } = req;
  return vocabShardRows(shape.vocabSize, shape.hiddenSize, req.limits.maxTensorBytes);
}

/**
 * The largest single tensor of a step (webgpu binds each tensor as one buffer): the largest weight
 * matrix, a shard of the vocabulary tables and a chunk's logits per shard, a trained tensor (held
 * whole), attention's scores and the MLP's activations.
 */
function largestTensorBytes(
  req: Pick<MemoryPlanRequest, 'shape' | 'limits' | 'largestTrainedTensorParams'>,
  m: number,
  T: number,
  chunkTokens: number,
): number {
  const { shape } = req;
  const C = shape.hiddenSize;
  const rows = shardRows(req);
  return (
    F32 *
    Math.max(
      rows * C,
      chunkTokens * rows,
      req.largestTrainedTensorParams ?? 0,
      C * Math.max(shape.intermediateSize, 3 * C),
      m * shape.heads * T * T,
      m * T * shape.intermediateSize,
    )
  );
}

const gb = (bytes: number) => `${(bytes / GB).toFixed(2)} GB`;

/** The mode that needs the least memory on the request's backend. */
function leanest(req: MemoryPlanRequest): StepMode {
  return { packing: req.limits.backend === 'wasm' ? 'per-call' : 'none', recompute: true };
}

function fitsIn(req: MemoryPlanRequest, m: number, T: number, chunkTokens: number, mode: StepMode = leanest(req)): boolean {
  const f = runFigures(req, m, T, chunkTokens, mode);
  const { limits } = req;
  if (f.total * (limits.backend === 'wasm' ? WASM_HEAP_PER_TENSOR_BYTE : 1) > limits.poolBytes * USABLE_SHARE) return false;
  // Outside a wasm heap the weights' JSON-free loading still passes through JS arrays once.
  if (f.total + PROCESS_BASELINE_BYTES > limits.ramBytes) return false;
  return limits.maxTensorBytes === null || largestTensorBytes(req, m, T, chunkTokens) <= limits.maxTensorBytes;
}

/** Chunk tokens so that one [chunk, V_s] tensor (a shard's logits) also stays within a webgpu binding. */
function chunkTokensFor(req: MemoryPlanRequest): number {
  const byBudget = defaultChunkTokens(req.shape.vocabSize);
  const max = req.limits.maxTensorBytes;
  return max === null ? byBudget : Math.max(1, Math.min(byBudget, Math.floor(max / (F32 * shardRows(req)))));
}

/** The plan for `req`: the largest micro-batch that fits (balanced over the passes), or a refusal with figures and advice. */
export function planMemory(req: MemoryPlanRequest): MemoryPlan {
  const T = req.seqLen;
  const B = req.batchSize;
  const chunkTokens = chunkTokensFor(req);
  const wasm = req.limits.backend === 'wasm';
  const largestFitting = (mode: StepMode): number | null => {
    if (req.microBatchSize !== null) {
      const asked = Math.min(req.microBatchSize, B);
      return fitsIn(req, asked, T, chunkTokens, mode) ? asked : null;
    }
    for (let candidate = B; candidate >= 1; candidate--) {
      // Equal passes: 8 rows that fit 3 at a time run as 3 + 3 + 2, 7 that fit 6 as 4 + 3.
      if (fitsIn(req, candidate, T, chunkTokens, mode)) return Math.ceil(B / Math.ceil(B / candidate));
    }
    return null;
  };
  // Fastest first: on wasm XNNPACK's cached packing (repacking per call costs about as much as a
  // pass's products), then recomputation (one more forward), then the weights held once.
  const modes: StepMode[] = wasm
    ? [
        { packing: 'cached', recompute: false },
        { packing: 'cached', recompute: true },
        { packing: 'per-call', recompute: false },
        { packing: 'per-call', recompute: true },
      ]
    : [
        { packing: 'none', recompute: false },
        { packing: 'none', recompute: true },
      ];
  let m: number | null = null;
  let mode = leanest(req);
  for (const candidate of modes.filter((c) => req.allowRecompute !== false || !c.recompute)) {
    m = largestFitting(candidate);
    if (m !== null) {
      mode = candidate;
      break;
    }
  }
  const chosen = m ?? Math.min(req.microBatchSize ?? 1, B);
  const figures = runFigures(req, chosen, T, chunkTokens, mode);
  const packing: WasmPacking = mode.packing === 'cached' ? 'cached' : 'per-call';
  const { limits } = req;
  const notes = [
    wasm ? (packing === 'cached' ? "with XNNPACK's packed copies" : 'held once, packed per call') : '',
    figures.halfWeights
      ? `${((req.halfParams ?? 0) / 1e6).toFixed(0)}M of them held 16-bit (${gb(figures.halfWeights)}) and widened per use, ${mode.recompute ? "one block's at a time" : "every block's kept for the backward pass"}`
      : '',
  ].filter(Boolean);
  const rows = shardRows(req);
  const shardCount = Math.ceil(req.shape.vocabSize / rows);
  const sharded = shardCount > 1 ? ` (the vocabulary tables in ${shardCount} shards of up to ${rows} rows, each within ${limits.maxTensorLabel})` : '';
  const parts = `weights ${gb(figures.weights)}${notes.length ? ` (${notes.join('; ')})` : ''}${sharded}, adapter and optimizer ${gb(figures.adapter)}, activations of a micro-batch of ${chosen} row${chosen === 1 ? '' : 's'}${mode.recompute ? ' with blocks recomputed' : ''} ${gb(figures.activations)}, largest temporary (a chunk of ${chunkTokens} tokens' logits) ${gb(figures.logitsChunk)}`;
  const passes = Math.ceil(B / chosen);
  // What the plan says whether or not it fits.
  const plan = { microBatchSize: chosen, wasmPacking: packing, recompute: mode.recompute, logitsChunkTokens: chunkTokens, figures, limits };
  if (m !== null) {
    const heap = wasm ? ` (a heap of about ${gb(figures.total * WASM_HEAP_PER_TENSOR_BYTE)} with the allocator's slack)` : '';
    const summary = `Memory plan (${limits.backend}): ${gb(figures.total)}${heap} of ${gb(limits.poolBytes)} (${limits.poolLabel}): ${parts}; batch ${B} x ${T} tokens in ${passes} pass${passes === 1 ? '' : 'es'} of ${chosen} row${chosen === 1 ? '' : 's'}.`;
    return { fits: true, ...plan, summary, refusal: null };
  }
  return { fits: false, ...plan, summary: '', refusal: refusalMessage(req, chosen, chunkTokens, figures, parts) };
}

function refusalMessage(req: MemoryPlanRequest, m: number, chunkTokens: number, figures: MemoryFigures, parts: string): string {
  const { limits, shape } = req;
  const T = req.seqLen;
  const need = `${shape.family ?? 'The model'} with ${(req.parameterCount / 1e6).toFixed(0)}M parameters at batch ${req.batchSize} x ${T} tokens needs ${gb(figures.total)} on the ${limits.backend} backend (${parts}${figures.loadPeak > figures.weights ? `; loading widens every weight to f32 first: ${gb(figures.loadPeak)}` : ''})`;
  const largest = largestTensorBytes(req, m, T, chunkTokens);
  const tensorLimit = limits.maxTensorBytes !== null && largest > limits.maxTensorBytes;
  const trainedOver = tensorLimit && F32 * (req.largestTrainedTensorParams ?? 0) === largest;
  const limit = tensorLimit
    ? `its largest tensor (${gb(largest)}${trainedOver ? ', a trained one, held whole' : ''}) exceeds ${limits.maxTensorLabel} (${gb(limits.maxTensorBytes!)})`
    : `${limits.poolLabel} holds ${gb(limits.poolBytes)} (${Math.round(USABLE_SHARE * 100)}% of it is planned for tensors)`;
  const advice: string[] = [];
  if (trainedOver) advice.push('frozen embeddings (full fine-tuning with trainEmbeddings false) or an adapter method such as LoRA');
  let smallest: number | null = null;
  for (let k = Math.min(m, req.batchSize); k >= 1; k--)
    if (fitsIn(req, k, T, chunkTokens)) {
      smallest = k;
      break;
    }
  if (smallest !== null) advice.push(`training.microBatchSize ${smallest} or less (or leave it unset and the plan picks it)`);
  let longest = 0;
  for (let lo = 8, hi = T; lo <= hi; ) {
    const mid = (lo + hi) >> 1;
    if (fitsIn(req, 1, mid, chunkTokens)) {
      longest = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  if (smallest === null && longest >= 8) advice.push(`training.maxSeqLen ${longest} or less, at microBatchSize 1`);
  const storable = req.halfStorableParams ?? 0;
  if (storable > (req.halfParams ?? 0)) {
    const asHalf = { ...req, halfParams: storable };
    if (fitsIn(asHalf, 1, T, chunkTokens)) {
      advice.push(
        `the checkpoint saved in bf16 (model.to(torch.bfloat16).save_pretrained(folder)): ${limits.backend} then holds its ${(storable / 1e6).toFixed(0)}M block-matrix weights at 2 bytes instead of 4 (${gb(storable * (F32 - HALF))} less), which rounds them to bf16's 8-bit mantissa`,
      );
    }
  }
  const quantizingWouldHelp = !req.quantized && figures.loadPeak < limits.poolBytes * USABLE_SHARE && figures.weights > figures.activations;
  if (quantizingWouldHelp && !req.beforeLoad) advice.push("QLoRA (method qlora, NF4): the adapted layers' weights are held at 4 bits outside the backend");
  if (limits.backend === 'wasm' && figures.total + PROCESS_BASELINE_BYTES < limits.ramBytes) {
    advice.push(`the cpu or tensorflow backend, which are limited by the machine's RAM (${gb(limits.ramBytes)} available) rather than the 4 GiB heap`);
  }
  advice.push('the PyTorch engine');
  const afterLoad =
    quantizingWouldHelp && req.beforeLoad
      ? ' QLoRA would not lower this figure: it quantizes the adapted layers only once the checkpoint has loaded at its stored precision.'
      : '';
  return `${need}, but ${limit}.${afterLoad} Settings that would fit: ${advice.join('; ')}.`;
}

/** The RAM one worker of the run takes under the plan: its backend's pool (the wasm heap with its slack) and the process's baseline. */
export function workerBytes(plan: Pick<MemoryPlan, 'figures' | 'limits'>): number {
  return plan.figures.total * (plan.limits.backend === 'wasm' ? WASM_HEAP_PER_TENSOR_BYTE : 1) + PROCESS_BASELINE_BYTES;
}

/** Throws the plan's refusal as an out_of_memory error (before the model loads). */
export function assertPlanFits(plan: MemoryPlan): void {
  if (!plan.fits) throw new WorkbenchError('out_of_memory', plan.refusal!, { figures: plan.figures, limits: plan.limits });
}
