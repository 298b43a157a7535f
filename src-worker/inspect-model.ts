// The `inspect-model` job: what a model folder is (family, size, dtypes, chat template) and how much
// memory a LoRA run on it will take, read from config.json and the safetensors headers only, so a
// multi-gigabyte folder is inspected in milliseconds.
import path from 'node:path';
import { WorkbenchError } from '../src-shared/errors.ts';
import type { EngineName } from '../src-shared/config.ts';
import {
  type ComputePrecision,
  type MemoryEstimate,
  type ModelImportResult,
  type ModelInspection,
  type TorchAccelerator,
  trainingPrecision,
} from '../src-shared/models.ts';
import type { ImportModelJob, InspectModelJob } from '../src-shared/worker-protocol.ts';
import { loadChatTemplate } from './formats/chat-template.ts';
import { importLlama2c } from './formats/llama2c.ts';
import { inspectModelFolder, supportedModelTypes } from './formats/model-folder.ts';
import { readSafetensorsHeader } from './formats/safetensors.ts';
import { bertConfigFromHF } from './models/bert.ts';
import { gpt2ConfigFromHF } from './models/gpt2.ts';
import { llamaConfigFromHF, llamaModelTypes } from './models/llama.ts';
import { defaultChunkTokens } from './kernels/head-cross-entropy.ts';
import { runFigures } from './train/memory-plan.ts';
import type { ArchitectureShape, Family } from './models/architecture.ts';

/** The module names LoRA's targetModules can match in each family (src-worker/methods/lora.ts selectTargets). */
export const familyTargetModules: Record<Family, string[]> = {
  gpt2: ['c_attn', 'c_proj', 'c_fc'],
  llama: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  bert: ['query', 'key', 'value', 'dense'],
};

/**
 * Values torch's autograd keeps per token, per layer, for the backward pass of a LoRA step on the family's
 * default targets (transformers' sdpa attention, which keeps no [T, T] scores), per unit of hidden size,
 * of key/value width and of MLP width. Counted with torch.autograd.graph.saved_tensors_hooks on the
 * fixtures (engine-torch/scripts/measure_activation_peak.py; test/torch/memory-estimate.test.ts checks
 * the estimate against the step's measured peak):
 * - GPT-2: ln_1's output, the fused qkv and the key and value it is split into, the attention output,
 *   two residual sums: 9 C; GELU's tanh form keeps 4 intermediates and c_proj's LoRA its input: 5 x MLP.
 * - Llama: the norm's output, rotated q, the attention output, two residual sums: 5 C, plus k and v
 *   (2 x the key/value width); SwiGLU keeps gate, up and silu(gate): 3 x MLP.
 * Each LoRA target adds its x A (r values, f32), each layer the attention's log-sum-exp (f32 per head).
 */
const TORCH_SAVED = {
  gpt2: { hidden: 9, keyValue: 0, mlp: 5 },
  llama: { hidden: 5, keyValue: 2, mlp: 3 },
  bert: { hidden: 9, keyValue: 0, mlp: 5 },
} as const satisfies Record<Family, { hidden: number; keyValue: number; mlp: number }>;

const BYTES: Record<ComputePrecision, number> = { f32: 4, bf16: 2 };

/** The pytorch engine's activations: the saved values above at the run's precision, and the LM head's logits, whole (torch does not chunk them). */
function torchActivationBytes(shape: ArchitectureShape, m: number, T: number, r: number, precision: ComputePrecision): number {
  const p = BYTES[precision];
  const saved = TORCH_SAVED[shape.family ?? 'gpt2'];
  const keyValueWidth = shape.heads > 0 ? (shape.hiddenSize * shape.kvHeads) / shape.heads : shape.hiddenSize;
  const perLayer =
    p * (saved.hidden * shape.hiddenSize + saved.keyValue * keyValueWidth + saved.mlp * shape.intermediateSize) +
    4 * (shape.defaultTargetShapes.length * r + shape.heads);
  // Logits in the compute dtype, their f32 log-softmax (the loss upcasts), and in the backward their f32 gradient and its cast back.
  const head = (2 * p + 8) * shape.vocabSize;
  return m * T * (shape.layers * perLayer + head);
}

/**
 * Bytes a LoRA run needs at `batchSize` x `maxSeqLen` with rank `r` on the family's default targets,
 * with the whole batch in one pass, on the engine and accelerator given (tfjs when absent):
 *   weights     = parameterCount x 4, or x 2 in bf16       (tfjs computes in f32; the estimate does not know the backend: on
 *                                                           cpu and wasm an f16/bf16 checkpoint's block matrices stay 2 bytes,
 *                                                           which the run's plan counts;
 *                                                           the pytorch engine loads bf16 on CUDA / ROCm, f32 on MPS and CPUs)
 *   adapter     = r x sum(in + out) x layers x 4 x 4       (A [r, in] and B [out, r]; param, grad, Adam m and v, all f32:
 *                                                           PEFT keeps LoRA weights f32 over a bf16 base, and torch's AdamW
 *                                                           keeps its moments in the parameter's dtype)
 *   activations = kept for the backward pass, plus the largest temporary: on tfjs one chunk of the fused
 *                 LM head's logits (train/memory-plan.ts runFigures, which the run's plan also uses); on
 *                 pytorch what autograd saves (torchActivationBytes) and the whole logits
 */
export function estimateMemory(
  shape: ArchitectureShape,
  parameterCount: number,
  run: { batchSize: number; maxSeqLen: number; r: number; engine?: EngineName; accelerator?: TorchAccelerator },
): MemoryEstimate {
  const { batchSize, r } = run;
  const engine = run.engine ?? 'tfjs';
  const accelerator = engine === 'pytorch' ? (run.accelerator ?? null) : null;
  const precision = trainingPrecision(engine, accelerator);
  // A run never sees more positions than the model has.
  const T = Math.min(run.maxSeqLen, shape.maxPositions || run.maxSeqLen);
  const adapterParams = shape.layers * shape.defaultTargetShapes.reduce((sum, [inF, outF]) => sum + r * (inF + outF), 0);
  const f = runFigures({ shape, parameterCount, trainableParams: adapterParams, quantized: null }, batchSize, T, defaultChunkTokens(shape.vocabSize));
  const weightsBytes = engine === 'pytorch' ? parameterCount * BYTES[precision] : f.weights;
  const activationsBytes = engine === 'pytorch' ? torchActivationBytes(shape, batchSize, T, r, precision) : f.activations + f.logitsChunk;
  return {
    weightsBytes,
    adapterBytes: f.adapter,
    activationsBytes,
    totalBytes: weightsBytes + f.adapter + activationsBytes,
    batchSize,
    maxSeqLen: run.maxSeqLen,
    r,
    engine,
    accelerator,
    precision,
  };
}

/** The fields the Llama and BERT config readers share, under Hugging Face's names. */
interface HfNamedConfig {
  numHiddenLayers: number;
  hiddenSize: number;
  numAttentionHeads: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  intermediateSize: number;
}

/** The shape of a family whose config uses Hugging Face's names; what differs is how many key/value heads and what LoRA targets by default. */
function hfNamedShape(family: Family, c: HfNamedConfig, kvHeads: number, defaultTargetShapes: [number, number][]): ArchitectureShape {
  return {
    family,
    layers: c.numHiddenLayers,
    hiddenSize: c.hiddenSize,
    heads: c.numAttentionHeads,
    kvHeads,
    vocabSize: c.vocabSize,
    maxPositions: c.maxPositionEmbeddings,
    intermediateSize: c.intermediateSize,
    defaultTargetShapes,
  };
}

/** The shape of a supported family, read by that family's own config reader (so its errors name the bad field). */
function familyShape(modelType: string, config: Record<string, unknown>, source: string): ArchitectureShape | null {
  if (modelType === 'gpt2') {
    const c = gpt2ConfigFromHF(config, source);
    return {
      family: 'gpt2',
      layers: c.nLayer,
      hiddenSize: c.nEmbd,
      heads: c.nHead,
      kvHeads: c.nHead,
      vocabSize: c.vocabSize,
      maxPositions: c.nPositions,
      intermediateSize: c.nInner,
      // The run default targets c_attn and c_proj; c_proj names both attn.c_proj and mlp.c_proj.
      defaultTargetShapes: [
        [c.nEmbd, 3 * c.nEmbd],
        [c.nEmbd, c.nEmbd],
        [c.nInner, c.nEmbd],
      ],
    };
  }
  if ((llamaModelTypes as readonly string[]).includes(modelType)) {
    const c = llamaConfigFromHF(config, source);
    // PEFT's default for Llama-family models: q_proj and v_proj.
    return hfNamedShape('llama', c, c.numKeyValueHeads, [
      [c.hiddenSize, c.numAttentionHeads * c.headDim],
      [c.hiddenSize, c.numKeyValueHeads * c.headDim],
    ]);
  }
  if (modelType === 'bert') {
    const c = bertConfigFromHF(config, source);
    // PEFT's default for BERT: query and value.
    return hfNamedShape('bert', c, c.numAttentionHeads, [
      [c.hiddenSize, c.hiddenSize],
      [c.hiddenSize, c.hiddenSize],
    ]);
  }
  return null;
}

/** Best-effort figures of a model_type no reader knows, from the field names most HF configs share. */
function genericShape(config: Record<string, unknown>): ArchitectureShape {
  const int = (...keys: string[]): number => {
    for (const key of keys) {
      const value = config[key];
      if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value;
    }
    return 0;
  };
  const hiddenSize = int('hidden_size', 'n_embd', 'd_model');
  const heads = int('num_attention_heads', 'n_head');
  return {
    family: null,
    layers: int('num_hidden_layers', 'n_layer', 'num_layers'),
    hiddenSize,
    heads,
    kvHeads: int('num_key_value_heads') || heads,
    vocabSize: int('vocab_size'),
    maxPositions: int('max_position_embeddings', 'n_positions', 'n_ctx'),
    intermediateSize: int('intermediate_size', 'n_inner', 'ffn_dim') || 4 * hiddenSize,
    defaultTargetShapes: [],
  };
}

/** The architecture and parameter count of a model folder, from config.json and the safetensors headers (the memory plan's input). */
export async function readArchitecture(
  modelDir: string,
): Promise<{ shape: ArchitectureShape; parameterCount: number; halfParams: number; halfStorableParams: number }> {
  const info = await inspectModelFolder(modelDir);
  const shape = familyShape(info.modelType, info.config, path.join(modelDir, 'config.json')) ?? genericShape(info.config);
  return { shape, parameterCount: info.parameterCount, halfParams: info.halfParams, halfStorableParams: info.halfStorableParams };
}

export async function inspectModel(
  job: Pick<InspectModelJob, 'modelDir' | 'batchSize' | 'maxSeqLen' | 'r' | 'engine' | 'accelerator'>,
): Promise<ModelInspection> {
  const info = await inspectModelFolder(job.modelDir);
  const configFile = path.join(job.modelDir, 'config.json');
  const warnings: string[] = [];
  const supported = supportedModelTypes.includes(info.modelType);
  const shape = familyShape(info.modelType, info.config, configFile) ?? genericShape(info.config);
  if (!supported) {
    const encoder = shape.family === 'bert' ? ' It is an encoder (masked LM): it can serve as an embedding model but cannot be fine-tuned as a causal LM.' : '';
    warnings.push(
      `model_type "${info.modelType}" is not supported for training or generation; supported model types: ${supportedModelTypes.join(', ')}.${encoder}`,
    );
  }

  const dtypes: Record<string, number> = {};
  for (const file of info.weightFiles) {
    const header = await readSafetensorsHeader(file);
    for (const entry of header.entries.values()) dtypes[entry.dtype] = (dtypes[entry.dtype] ?? 0) + 1;
  }
  const narrow = Object.keys(dtypes).filter((d) => d !== 'F32');
  if (narrow.length) {
    warnings.push(
      `The weights are stored as ${narrow.join(' and ')}: on the cpu and wasm backends the transformer blocks' matrices stay 16-bit in memory (widened to F32 per use); the embeddings, the head, norms and biases, and every weight on webgpu and tensorflow, are widened to F32 when loaded (twice their file size).`,
    );
  }

  let hasChatTemplate = false;
  try {
    hasChatTemplate = (await loadChatTemplate(job.modelDir)) !== null;
  } catch (error) {
    warnings.push(`The chat template cannot be read: ${WorkbenchError.from(error).message}`);
  }

  return {
    path: job.modelDir,
    modelType: info.modelType,
    supported,
    architecture: {
      layers: shape.layers,
      hiddenSize: shape.hiddenSize,
      heads: shape.heads,
      kvHeads: shape.kvHeads,
      vocabSize: shape.vocabSize,
      maxPositions: shape.maxPositions,
    },
    parameterCount: info.parameterCount,
    dtypes,
    files: info.files,
    targetModules: shape.family ? familyTargetModules[shape.family] : [],
    hasChatTemplate,
    memory: estimateMemory(shape, info.parameterCount, job),
    warnings,
  };
}

/** The `import-model` job: a llama2.c checkpoint becomes a Hugging Face Llama folder, inspected like any other. */
export async function importModel(job: ImportModelJob, log: (message: string) => void = () => undefined): Promise<ModelImportResult> {
  const { checkpoint, tokenizer, outDir } = job.request;
  const imported = await importLlama2c(checkpoint, tokenizer, outDir);
  const p = imported.params;
  log(
    `Imported ${checkpoint}: Llama with ${p.nLayers} layers, dim ${p.dim}, ${p.nHeads} heads (${p.nKvHeads} key/value), vocabulary ${p.vocabSize}, context ${p.seqLen}.`,
  );
  return { outDir, files: imported.files, inspection: await inspectModel({ ...job, modelDir: outDir }) };
}
