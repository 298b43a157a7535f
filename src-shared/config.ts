// The run configuration: everything needed to reproduce a run, stored whole with it.
import { z } from 'zod';

export const backendNames = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof backendNames)[number];
export const BackendChoiceSchema = z.enum(['auto', ...backendNames]);
export type BackendChoice = z.infer<typeof BackendChoiceSchema>;

/** `default` / `sample` name the model and dataset embedded in resources/; anything else is a path. */
export const DEFAULT_MODEL = 'default';
export const SAMPLE_DATASET = 'sample';

export const LoraSettingsSchema = z.object({
  r: z.number().int().min(1).max(1024).default(8),
  alpha: z.number().positive().default(16),
  dropout: z.number().min(0).max(0.9).default(0.05),
  /** Module names (e.g. c_attn) or regular expressions written /like this/, matched against full module paths. */
  targetModules: z.array(z.string().min(1)).min(1).default(['c_attn', 'c_proj']),
  useRslora: z.boolean().default(false),
});
export type LoraSettings = z.infer<typeof LoraSettingsSchema>;

/** LoRA+ (Hayou et al. 2024): lora_B trains at `ratio` times lora_A's learning rate (METHODS.md section 2). */
export const LoraPlusSettingsSchema = z.object({
  /** lambda: 1 is plain LoRA. */
  ratio: z.number().positive().max(1000).default(16),
  /** Peak learning rate of lora_B; null means ratio x training.learningRate. Follows the same schedule. */
  learningRateB: z.number().positive().max(1).nullable().default(null),
});
export type LoraPlusSettings = z.infer<typeof LoraPlusSettingsSchema>;

export const semanticSources = ['base-pooled'] as const;

/** SeLoRA (METHODS.md section 3): Delta W(s) = B (I + g(s)) A, g a small MLP of the input's semantic vector s. */
export const SeloraSettingsSchema = z.object({
  /** Width of g's hidden layer (d_s -> hiddenSize -> r*r). */
  hiddenSize: z.number().int().min(1).max(4096).default(16),
  /** lambda_sem: weight of the semantic consistency loss L_sem. */
  lambdaSem: z.number().min(0).default(0.1),
  /** base-pooled: mean of the frozen base model's final hidden states over the prompt tokens, adapters off. */
  semanticSource: z.enum(semanticSources).default('base-pooled'),
});
export type SeloraSettings = z.infer<typeof SeloraSettingsSchema>;

export const biasReadings = ['counterfactual', 'adversarial'] as const;

/** Bias-aware LoRA (METHODS.md section 4): L = L_task + lambdaBias L_bias + lambdaAlign L_align + lambdaKl L_KL; L_align needs two or more tasks. */
export const BiasAwareSettingsSchema = z.object({
  /** l1: weight of L_bias = || f(x') - f(x) ||^2, f the prompt's mean-pooled final hidden state with adapters on. */
  lambdaBias: z.number().min(0).default(0.1),
  /** l3: weight of L_KL = KL(P_lora || P_orig) over the completion tokens. */
  lambdaKl: z.number().min(0).default(0.1),
  /** counterfactual: x' swaps demographic terms in the prompt; adversarial: x' = x + b_bias, b_bias an embedding offset at norm epsilon trained by ascent. */
  reading: z.enum(biasReadings).default('counterfactual'),
  /** ||b_bias|| for the adversarial reading. */
  epsilon: z.number().positive().max(100).default(0.1),
  /** l2: weight of L_align = sum_{i<j} ||B_i A_i - B_j A_j||_F^2 across the tasks' adapters (with two or more tasks). */
  lambdaAlign: z.number().min(0).default(0),
  /** Task labels trained jointly, one adapter each; rows name theirs in a "task" field. Fewer than two: one adapter for all rows. */
  tasks: z.array(z.string().min(1)).default([]),
  /** Batches drawn per task in these ratios (one per task); empty: in proportion to each task's rows. */
  taskMixture: z.array(z.coerce.number().min(0)).default([]),
});
export type BiasAwareSettings = z.infer<typeof BiasAwareSettingsSchema>;

/** Full fine-tuning (METHODS.md section 6): every base weight trains; small models only. */
export const FullSettingsSchema = z.object({
  /** False freezes the token (and position) embeddings and a tied head with them. */
  trainEmbeddings: z.boolean().default(true),
});
export type FullSettings = z.infer<typeof FullSettingsSchema>;

/** BitFit (Ben Zaken et al. 2022): only the bias terms train. */
export const BitFitSettingsSchema = z.object({
  /** Also the LayerNorm biases (beta), as the paper does; false trains the linear layers' biases only. */
  includeNormBiases: z.boolean().default(true),
});
export type BitFitSettings = z.infer<typeof BitFitSettingsSchema>;

export const promptTuningInits = ['random', 'text'] as const;

/** Prompt tuning (Lester et al. 2021): n trainable soft-prompt vectors before the input embeddings. */
export const PromptTuningSettingsSchema = z.object({
  numVirtualTokens: z.number().int().min(1).max(512).default(20),
  /** random: N(0, std of the embedding table); text: the embeddings of initText's tokens, repeated to n (PEFT's TEXT). */
  init: z.enum(promptTuningInits).default('random'),
  initText: z.string().max(2000).default(''),
});
export type PromptTuningSettings = z.infer<typeof PromptTuningSettingsSchema>;

/** Houlsby adapters (Houlsby et al. 2019): bottleneck MLPs after the attention output and after the MLP. */
export const HoulsbySettingsSchema = z.object({
  bottleneckSize: z.number().int().min(1).max(4096).default(16),
});
export type HoulsbySettings = z.infer<typeof HoulsbySettingsSchema>;

export const quantizationFormats = ['nf4', 'int8'] as const;

/** QLoRA (Dettmers et al. 2023): LoRA over base weights held quantized (NF4 or int8, absmax per block). */
export const QloraSettingsSchema = z.object({
  format: z.enum(quantizationFormats).default('nf4'),
  /** Weights per absmax scale (the paper's block size 64). */
  blockSize: z.number().int().min(8).max(4096).default(64),
});
export type QloraSettings = z.infer<typeof QloraSettingsSchema>;

/** Methods the engine registers (src-worker/methods/index.ts); src-shared/methods.ts describes each. */
export const methodIds = ['lora', 'lora-plus', 'selora', 'bias-aware', 'full', 'bitfit', 'prompt-tuning', 'houlsby', 'qlora'] as const;
export type MethodId = (typeof methodIds)[number];

export const TrainingSettingsSchema = z.object({
  learningRate: z.number().positive().max(1).default(2e-3),
  batchSize: z.number().int().min(1).max(1024).default(8),
  maxSteps: z.number().int().min(1).max(1_000_000).default(120),
  /** Longer examples are truncated (the prompt side first) to this many tokens. */
  maxSeqLen: z.number().int().min(8).max(32768).default(96),
  warmupSteps: z.number().int().min(0).default(10),
  weightDecay: z.number().min(0).default(0),
  gradClip: z.number().positive().default(1),
  seed: z.number().int().min(0).default(42),
  evalEvery: z.number().int().min(1).default(20),
  evalBatches: z.number().int().min(1).default(4),
  checkpointEvery: z.number().int().min(1).default(20),
  /** Fraction of the dataset held out for validation loss. */
  validationFraction: z.number().min(0).max(0.5).default(0.1),
});
export type TrainingSettings = z.infer<typeof TrainingSettingsSchema>;

/** Which engine computes a run (../shared/design/ENGINES.md): TensorFlow.js in a worker thread, or PyTorch + PEFT in a Python child. */
export const engineNames = ['tfjs', 'pytorch'] as const;
export type EngineName = (typeof engineNames)[number];
export const distributedLaunchers = ['torchrun', 'accelerate'] as const;

/** The methods each engine trains (the pytorch engine's list is engine-torch/workbench_torch/methods/__init__.py's SUPPORTED_METHODS). */
export const engineMethods: Record<EngineName, readonly MethodId[]> = {
  tfjs: methodIds,
  pytorch: ['lora', 'lora-plus', 'full', 'bitfit'],
};

/** Data-parallel processes of a pytorch run on one machine: each takes an equal share of every batch; rank 0 reports and writes. */
export const DistributedSettingsSchema = z.object({
  processes: z.number().int().min(1).max(64).default(1),
  launcher: z.enum(distributedLaunchers).default('torchrun'),
});
export type DistributedSettings = z.infer<typeof DistributedSettingsSchema>;

export const RunConfigSchema = z.object({
  name: z.string().max(200).default(''),
  model: z.string().min(1).default(DEFAULT_MODEL),
  dataset: z.string().min(1).default(SAMPLE_DATASET),
  method: z.enum(methodIds).default('lora'),
  /** The adapter layer's settings: LoRA+ and SeLoRA build on the same layer and read them too. */
  lora: LoraSettingsSchema.default(LoraSettingsSchema.parse({})),
  loraPlus: LoraPlusSettingsSchema.default(LoraPlusSettingsSchema.parse({})),
  selora: SeloraSettingsSchema.default(SeloraSettingsSchema.parse({})),
  biasAware: BiasAwareSettingsSchema.default(BiasAwareSettingsSchema.parse({})),
  full: FullSettingsSchema.default(FullSettingsSchema.parse({})),
  bitfit: BitFitSettingsSchema.default(BitFitSettingsSchema.parse({})),
  promptTuning: PromptTuningSettingsSchema.default(PromptTuningSettingsSchema.parse({})),
  houlsby: HoulsbySettingsSchema.default(HoulsbySettingsSchema.parse({})),
  qlora: QloraSettingsSchema.default(QloraSettingsSchema.parse({})),
  training: TrainingSettingsSchema.default(TrainingSettingsSchema.parse({})),
  backend: BackendChoiceSchema.default('auto'),
  engine: z.enum(engineNames).default('tfjs'),
  distributed: DistributedSettingsSchema.default(DistributedSettingsSchema.parse({})),
});
export type RunConfig = z.infer<typeof RunConfigSchema>;
/** What a caller may send: every field optional, defaults filled in by RunConfigSchema.parse. */
export type RunConfigInput = z.input<typeof RunConfigSchema>;

export function defaultRunConfig(): RunConfig {
  return RunConfigSchema.parse({});
}
