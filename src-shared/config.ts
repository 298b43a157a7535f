// The run configuration: everything needed to reproduce a run, stored whole with it.
import { z } from 'zod';

export const backendNames = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof backendNames)[number];
export const BackendChoiceSchema = z.enum(['auto', ...backendNames]);
export type BackendChoice = z.infer<typeof BackendChoiceSchema>;

/** `default` / `sample` name the model and dataset embedded in resources/; anything else is a path. */
export const DEFAULT_MODEL = 'default';
export const SAMPLE_DATASET = 'sample';

/** The known key nearest to `key` by edit distance, when it is near enough to be a typo of it. */
export function closestKey(key: string, known: readonly string[]): string | null {
  const distance = (a: string, b: string) => {
    let row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      const next = [i];
      for (let j = 1; j <= b.length; j++)
        next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      row = next;
    }
    return row[b.length]!;
  };
  let best: { key: string; d: number } | null = null;
  for (const candidate of known) {
    const d = distance(key, candidate);
    if (!best || d < best.d) best = { key: candidate, d };
  }
  return best && best.d <= Math.max(2, Math.floor(best.key.length / 3)) ? best.key : null;
}

/** The message for settings a schema does not know: each key named, with the known key it most likely means. */
export function unknownKeysMessage(keys: readonly string[], known: readonly string[], elsewhere: (key: string) => string | null = () => null): string {
  return keys
    .map((key) => {
      const hint = elsewhere(key) ?? (closestKey(key, known) ? `did you mean "${closestKey(key, known)}"?` : `known settings here: ${known.join(', ')}`);
      return `Unknown setting "${key}": ${hint}`;
    })
    .join('; ');
}

/** A z.object that refuses unknown keys, naming each and suggesting the closest known one (a typo must not silently fall back to a default). */
function strictObject<Shape extends z.ZodRawShape>(shape: Shape, elsewhere?: (key: string) => string | null) {
  const known = Object.keys(shape);
  return z.strictObject(shape, { error: (issue) => (issue.code === 'unrecognized_keys' ? unknownKeysMessage(issue.keys, known, elsewhere) : undefined) });
}

export const LoraSettingsSchema = strictObject({
  r: z.number().int().min(1).max(1024).default(8),
  alpha: z.number().positive().default(16),
  dropout: z.number().min(0).max(0.9).default(0.05),
  /** Module names (e.g. c_attn) or regular expressions written /like this/, matched against full module paths. */
  targetModules: z.array(z.string().min(1)).min(1).default(['c_attn', 'c_proj']),
  useRslora: z.boolean().default(false),
});
export type LoraSettings = z.infer<typeof LoraSettingsSchema>;

/** LoRA+ (Hayou et al. 2024): lora_B trains at `ratio` times lora_A's learning rate (METHODS.md section 2). */
export const LoraPlusSettingsSchema = strictObject({
  /** lambda: 1 is plain LoRA. */
  ratio: z.number().positive().max(1000).default(16),
  /** Peak learning rate of lora_B; null means ratio x training.learningRate. Follows the same schedule. */
  learningRateB: z.number().positive().max(1).nullable().default(null),
});
export type LoraPlusSettings = z.infer<typeof LoraPlusSettingsSchema>;

export const semanticSources = ['base-pooled'] as const;

/** SeLoRA (METHODS.md section 3): Delta W(s) = B (I + g(s)) A, g a small MLP of the input's semantic vector s. */
export const SeloraSettingsSchema = strictObject({
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
export const BiasAwareSettingsSchema = strictObject({
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
export const FullSettingsSchema = strictObject({
  /** False freezes the token (and position) embeddings and a tied head with them. */
  trainEmbeddings: z.boolean().default(true),
});
export type FullSettings = z.infer<typeof FullSettingsSchema>;

/** BitFit (Ben Zaken et al. 2022): only the bias terms train. */
export const BitFitSettingsSchema = strictObject({
  /** Also the LayerNorm biases (beta), as the paper does; false trains the linear layers' biases only. */
  includeNormBiases: z.boolean().default(true),
});
export type BitFitSettings = z.infer<typeof BitFitSettingsSchema>;

export const promptTuningInits = ['random', 'text'] as const;

/** Prompt tuning (Lester et al. 2021): n trainable soft-prompt vectors before the input embeddings. */
export const PromptTuningSettingsSchema = strictObject({
  numVirtualTokens: z.number().int().min(1).max(512).default(20),
  /** random: N(0, std of the embedding table); text: the embeddings of initText's tokens, repeated to n (PEFT's TEXT). */
  init: z.enum(promptTuningInits).default('random'),
  initText: z.string().max(2000).default(''),
});
export type PromptTuningSettings = z.infer<typeof PromptTuningSettingsSchema>;

/** Houlsby adapters (Houlsby et al. 2019): bottleneck MLPs after the attention output and after the MLP. */
export const HoulsbySettingsSchema = strictObject({
  bottleneckSize: z.number().int().min(1).max(4096).default(16),
});
export type HoulsbySettings = z.infer<typeof HoulsbySettingsSchema>;

export const quantizationFormats = ['nf4', 'int8'] as const;

/** QLoRA (Dettmers et al. 2023): LoRA over base weights held quantized (NF4 or int8, absmax per block). */
export const QloraSettingsSchema = strictObject({
  format: z.enum(quantizationFormats).default('nf4'),
  /** Weights per absmax scale (the paper's block size 64). */
  blockSize: z.number().int().min(8).max(4096).default(64),
});
export type QloraSettings = z.infer<typeof QloraSettingsSchema>;

/** Methods the engine registers (src-worker/methods/index.ts); src-shared/methods.ts describes each. */
export const methodIds = ['lora', 'lora-plus', 'selora', 'bias-aware', 'full', 'bitfit', 'prompt-tuning', 'houlsby', 'qlora'] as const;
export type MethodId = (typeof methodIds)[number];

export const TrainingSettingsSchema = strictObject({
  learningRate: z.number().positive().max(1).default(2e-3),
  batchSize: z.number().int().min(1).max(1024).default(8),
  /**
   * Rows per forward/backward pass; the gradients of ceil(batchSize / microBatchSize) passes are summed
   * into one optimizer step of batchSize rows. null: the memory plan picks it (the whole batch when it fits).
   */
  microBatchSize: z.number().int().min(1).max(1024).nullable().default(null),
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
  pytorch: ['lora', 'lora-plus', 'full', 'bitfit', 'selora', 'bias-aware'],
};

/** Data-parallel processes of a pytorch run on one machine: each takes an equal share of every batch; rank 0 reports and writes. */
export const DistributedSettingsSchema = strictObject({
  processes: z.number().int().min(1).max(64).default(1),
  launcher: z.enum(distributedLaunchers).default('torchrun'),
});
export type DistributedSettings = z.infer<typeof DistributedSettingsSchema>;

const withDefaults = <S extends z.ZodType>(schema: S) => schema.default(schema.parse({}) as never);

/** The RunConfig sections that hold method settings. */
export const methodSettingsKeys = ['lora', 'loraPlus', 'selora', 'biasAware', 'full', 'bitfit', 'promptTuning', 'houlsby', 'qlora'] as const;
export type MethodSettingsKey = (typeof methodSettingsKeys)[number];

/** The schema of one settings section (every method that reads it reads the same settings). */
export const settingsSchemas = {
  lora: LoraSettingsSchema,
  loraPlus: LoraPlusSettingsSchema,
  selora: SeloraSettingsSchema,
  biasAware: BiasAwareSettingsSchema,
  full: FullSettingsSchema,
  bitfit: BitFitSettingsSchema,
  promptTuning: PromptTuningSettingsSchema,
  houlsby: HoulsbySettingsSchema,
  qlora: QloraSettingsSchema,
} as const satisfies Record<MethodSettingsKey, z.ZodType>;

/**
 * What every run has whatever its method. New top-level settings (an engine, distributed training)
 * go here: every method's variant gets them.
 */
const commonShape = {
  name: z.string().max(200).default(''),
  model: z.string().min(1).default(DEFAULT_MODEL),
  dataset: z.string().min(1).default(SAMPLE_DATASET),
  training: withDefaults(TrainingSettingsSchema),
  backend: BackendChoiceSchema.default('auto'),
  engine: z.enum(engineNames).default('tfjs'),
  distributed: withDefaults(DistributedSettingsSchema),
};

/** A section key given to a method that does not read it: say which methods do. */
function sectionOfAnotherMethod(method: MethodId) {
  return (key: string) => {
    const readers = methodIds.filter((m) => (sectionKeysOf(m) as string[]).includes(key));
    return readers.length
      ? `method "${method}" has no ${key} settings (${readers.map((m) => `"${m}"`).join(', ')} ${readers.length > 1 ? 'have' : 'has'})`
      : null;
  };
}

/** Each method's settings sections, in the order its variant lists them (reused ones first). */
const sectionsOfMethod = new Map<MethodId, MethodSettingsKey[]>();

function variant<M extends MethodId, Discriminator extends z.ZodType<M>, Sections extends Partial<Record<MethodSettingsKey, z.ZodType>>>(
  method: M,
  discriminator: Discriminator,
  sections: Sections,
) {
  sectionsOfMethod.set(method, Object.keys(sections) as MethodSettingsKey[]);
  return strictObject({ ...commonShape, method: discriminator, ...sections }, sectionOfAnotherMethod(method));
}

const loraSection = withDefaults(LoraSettingsSchema);

/**
 * The run configuration, one shape per method (a discriminated union on `method`): the common settings
 * and only the sections that method reads, reused ones (LoRA's layer under LoRA+, SeLoRA, bias-aware
 * LoRA and QLoRA) first. Unknown keys are errors that name the key.
 */
export const RunConfigSchema = z.discriminatedUnion(
  'method',
  [
    // LoRA is the method of a configuration that names none.
    variant('lora', z.literal('lora').default('lora'), { lora: loraSection }),
    variant('lora-plus', z.literal('lora-plus'), { lora: loraSection, loraPlus: withDefaults(LoraPlusSettingsSchema) }),
    variant('selora', z.literal('selora'), { lora: loraSection, selora: withDefaults(SeloraSettingsSchema) }),
    variant('bias-aware', z.literal('bias-aware'), { lora: loraSection, biasAware: withDefaults(BiasAwareSettingsSchema) }),
    variant('full', z.literal('full'), { full: withDefaults(FullSettingsSchema) }),
    variant('bitfit', z.literal('bitfit'), { bitfit: withDefaults(BitFitSettingsSchema) }),
    variant('prompt-tuning', z.literal('prompt-tuning'), { promptTuning: withDefaults(PromptTuningSettingsSchema) }),
    variant('houlsby', z.literal('houlsby'), { houlsby: withDefaults(HoulsbySettingsSchema) }),
    variant('qlora', z.literal('qlora'), { lora: loraSection, qlora: withDefaults(QloraSettingsSchema) }),
  ],
  {
    error: (issue) =>
      issue.code === 'invalid_union'
        ? `Unknown method ${JSON.stringify((issue.input as { method?: unknown } | undefined)?.method)}; known methods: ${methodIds.join(', ')}.`
        : undefined,
  },
);

/** The settings sections a method's configuration carries, reused ones first. */
export function sectionKeysOf(method: MethodId): MethodSettingsKey[] {
  return sectionsOfMethod.get(method) ?? [];
}

export type RunConfig = z.infer<typeof RunConfigSchema>;
/** The configuration of one method. */
export type RunConfigOf<M extends MethodId> = Extract<RunConfig, { method: M }>;
/** What a caller may send: every field optional but the method (LoRA when absent), defaults filled in by RunConfigSchema.parse. */
export type RunConfigInput = z.input<typeof RunConfigSchema>;

/**
 * A configuration stored before configurations were shaped by their method held every method's
 * section: keep the ones its method reads. Anything else is returned as it is, for the schema to judge.
 */
export function migrateStoredRunConfig(raw: unknown): unknown {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const config = raw as Record<string, unknown>;
  const method = (config.method ?? 'lora') as MethodId;
  if (!methodIds.includes(method)) return raw;
  const keep = new Set<string>(sectionKeysOf(method));
  return { ...Object.fromEntries(Object.entries(config).filter(([key]) => keep.has(key) || !(methodSettingsKeys as readonly string[]).includes(key))), method };
}

/** A configuration read from disk or the database, which may predate the per-method shape. */
export const StoredRunConfigSchema = z.preprocess(migrateStoredRunConfig, RunConfigSchema);

/** The settings every run has, without its method and the method's sections: to build another method's configuration on them. */
export function commonSettingsOf(config: RunConfig): Omit<RunConfig, 'method' | MethodSettingsKey> {
  return Object.fromEntries(Object.entries(config).filter(([key]) => key !== 'method' && !(methodSettingsKeys as readonly string[]).includes(key))) as Omit<
    RunConfig,
    'method' | MethodSettingsKey
  >;
}

/** The defaults of a LoRA run, the method a configuration that names none gets. */
export function defaultRunConfig(): RunConfigOf<'lora'> {
  return RunConfigSchema.parse({}) as RunConfigOf<'lora'>;
}

/** The defaults of `method`'s configuration. */
export function defaultConfigOf<M extends MethodId>(method: M): RunConfigOf<M> {
  return RunConfigSchema.parse({ method }) as RunConfigOf<M>;
}
