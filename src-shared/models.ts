// Model folders as the UI sees them before a run (validation, size, the memory a run will need) and
// the Playground's generation requests: the same prompt through the base model and an adapter.
import { z } from 'zod';
import { BackendChoiceSchema, engineNames, type EngineName } from './config.ts';
import { BackendInfoSchema } from './runs.ts';

/** The device kinds the pytorch engine's environment reports (`lora-workbench engine status`). */
export const torchAccelerators = ['cuda', 'rocm', 'mps', 'cpu'] as const;
export type TorchAccelerator = (typeof torchAccelerators)[number];
/** The float format a run's base weights and activations take. */
export const computePrecisions = ['f32', 'bf16'] as const;
export type ComputePrecision = (typeof computePrecisions)[number];

/**
 * The precision an engine trains in (engine-torch/workbench_torch/models.py training_dtype): the pytorch
 * engine loads the base in bf16 on NVIDIA and AMD GPUs (torch calls both cuda) and in f32 on MPS and
 * CPUs; every tfjs backend computes in f32. A pytorch run whose accelerator is not known is estimated
 * in f32, the larger figure.
 */
export function trainingPrecision(engine: EngineName, accelerator: TorchAccelerator | null | undefined): ComputePrecision {
  return engine === 'pytorch' && (accelerator === 'cuda' || accelerator === 'rocm') ? 'bf16' : 'f32';
}

export const ModelInspectRequestSchema = z.object({
  /** 'default' or a model folder path. */
  model: z.string().min(1),
  /** The run shape the memory estimate is for; omitted fields take the run defaults. */
  batchSize: z.number().int().min(1).max(1024).optional(),
  maxSeqLen: z.number().int().min(8).max(32768).optional(),
  /** LoRA rank used for the adapter and optimizer terms of the estimate. */
  r: z.number().int().min(1).max(1024).optional(),
  /** The engine the run will train on (default tfjs), and for pytorch the accelerator its environment found: they set the precision. */
  engine: z.enum(engineNames).optional(),
  accelerator: z.enum(torchAccelerators).optional(),
});
export type ModelInspectRequest = z.infer<typeof ModelInspectRequestSchema>;

/** A memory estimate in bytes, broken down the way a user can act on (smaller batch, shorter sequences, lower rank). */
export const MemoryEstimateSchema = z.object({
  /** Base weights in the compute dtype (`precision`). */
  weightsBytes: z.number().min(0),
  /** Adapter parameters, their gradients and AdamW's two moments (f32 on both engines: PEFT keeps adapters f32 over a bf16 base). */
  adapterBytes: z.number().min(0),
  /** Activations kept for the backward pass at the given batch and sequence length (an estimate). */
  activationsBytes: z.number().min(0),
  totalBytes: z.number().min(0),
  batchSize: z.number().int(),
  maxSeqLen: z.number().int(),
  r: z.number().int(),
  /** What the estimate assumed: the engine, its accelerator (pytorch; null when not known or tfjs) and the weights' and activations' precision. */
  engine: z.enum(engineNames),
  accelerator: z.enum(torchAccelerators).nullable(),
  precision: z.enum(computePrecisions),
});
export type MemoryEstimate = z.infer<typeof MemoryEstimateSchema>;

export const ModelInspectionSchema = z.object({
  /** The folder as resolved ('default' becomes the embedded model's path). */
  path: z.string(),
  modelType: z.string(),
  /** True when the engine can train and generate with this model_type. */
  supported: z.boolean(),
  architecture: z.object({
    layers: z.number().int(),
    hiddenSize: z.number().int(),
    heads: z.number().int(),
    kvHeads: z.number().int(),
    vocabSize: z.number().int(),
    maxPositions: z.number().int(),
  }),
  parameterCount: z.number().int(),
  /** Stored dtypes of the weights with their tensor counts, e.g. { F32: 75, BF16: 0 }. */
  dtypes: z.record(z.string(), z.number().int()),
  files: z.array(z.object({ name: z.string(), bytes: z.number().int() })),
  /** Module names LoRA can target in this family (c_attn… / q_proj… / query…). */
  targetModules: z.array(z.string()),
  hasChatTemplate: z.boolean(),
  memory: MemoryEstimateSchema,
  /** Problems that do not stop loading but the user should know (e.g. bf16 weights widened to f32). */
  warnings: z.array(z.string()),
});
export type ModelInspection = z.infer<typeof ModelInspectionSchema>;

/** Karpathy's llama2.c checkpoint (legacy version 0 .bin) and its tokenizer.bin, converted to a Hugging Face Llama folder. */
export const ModelImportRequestSchema = z.object({
  format: z.literal('llama2c'),
  checkpoint: z.string().min(1),
  tokenizer: z.string().min(1),
  /** A new (or empty) folder; the imported model is written there and trains like any Llama folder. */
  outDir: z.string().min(1),
});
export type ModelImportRequest = z.infer<typeof ModelImportRequestSchema>;

export const ModelImportResultSchema = z.object({
  outDir: z.string(),
  files: z.array(z.string()),
  /** The imported folder, inspected as the New run page inspects any folder (run defaults for the estimate). */
  inspection: ModelInspectionSchema,
});
export type ModelImportResult = z.infer<typeof ModelImportResultSchema>;

export const SamplingSettingsSchema = z.object({
  maxNewTokens: z.number().int().min(1).max(2048).default(64),
  /** 0 is greedy. */
  temperature: z.number().min(0).max(5).default(0),
  topK: z.number().int().min(0).default(0),
  topP: z.number().gt(0).max(1).default(1),
  seed: z.number().int().min(0).default(0),
});
export type SamplingSettings = z.infer<typeof SamplingSettingsSchema>;

export const GenerateRequestSchema = z.object({
  prompt: z.string().min(1).max(20_000),
  /** An adapter from the library; its base model is used unless `model` is given. */
  adapterId: z.string().min(1).optional(),
  /** 'default' or a model folder; omitted: the adapter's base model, else 'default'. */
  model: z.string().min(1).optional(),
  /** Wrap the prompt in the model's chat template (tokenizer_config.json) as one user turn. */
  useChatTemplate: z.boolean().default(false),
  sampling: SamplingSettingsSchema.default(SamplingSettingsSchema.parse({})),
  backend: BackendChoiceSchema.default('auto'),
});
export type GenerateRequest = z.infer<typeof GenerateRequestSchema>;
export type GenerateRequestInput = z.input<typeof GenerateRequestSchema>;

export const GenerationSchema = z.object({
  text: z.string(),
  tokens: z.number().int(),
  stoppedBy: z.enum(['stop_token', 'max_new_tokens', 'max_positions']),
  tokensPerSecond: z.number().min(0),
});
export type Generation = z.infer<typeof GenerationSchema>;

export const GenerateResultSchema = z.object({
  /** The prompt exactly as the model saw it (after the chat template). */
  renderedPrompt: z.string(),
  base: GenerationSchema,
  /** Null when no adapter was chosen. */
  adapter: GenerationSchema.nullable(),
  backend: BackendInfoSchema,
  durationMs: z.number().min(0),
});
export type GenerateResult = z.infer<typeof GenerateResultSchema>;
