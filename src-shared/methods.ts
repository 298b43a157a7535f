// Every method, described once: its settings section (the zod schema), what the New run form and the
// CLI's --help show for each setting, and the engines that train it. config.ts derives RunConfig's
// union, methodIds and the settings sections from this list; the engine's registry
// (src-worker/methods/index.ts) implements the same ids. Kinds, bounds and choices of the form's
// fields are read from the schemas, so the form and the schema cannot disagree; a descriptor adds
// only the label, the help and the input's step.
import { z } from 'zod';
import type { EngineName } from './engines.ts';
import { WorkbenchError } from './errors.ts';
import { strictObject } from './settings-schema.ts';

export type FieldDescriptor =
  /** min is exclusive when minExclusive is set (a strictly positive setting). */
  | { key: string; label: string; kind: 'int' | 'number'; min?: number; minExclusive?: boolean; max?: number; step?: number; help: string }
  | { key: string; label: string; kind: 'boolean'; help: string }
  | { key: string; label: string; kind: 'string-list' | 'text'; help: string }
  /** One of a fixed set of strings (the zod enum of the setting), shown as a select. */
  | { key: string; label: string; kind: 'choice'; options: readonly string[]; help: string };

/** What a descriptor says about a field beyond its schema. */
export interface FieldText {
  key: string;
  label: string;
  help: string;
  step?: number;
}

interface JsonSchemaProperty {
  type?: string;
  enum?: string[];
  minimum?: number;
  exclusiveMinimum?: number;
  maximum?: number;
  anyOf?: JsonSchemaProperty[];
}

/** The fields of a settings schema, in the descriptor's order, with their kind, bounds and choices from the schema. */
export function describeFields(schema: z.ZodObject, texts: readonly FieldText[]): FieldDescriptor[] {
  const properties = (z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as { properties: Record<string, JsonSchemaProperty> }).properties;
  return texts.map(({ key, label, help, step }) => {
    const property = properties[key];
    if (!property) throw new Error(`The settings schema has no field "${key}"`);
    // A nullable setting (LoRA+'s learningRateB) is described by its non-null branch.
    const p = property.anyOf?.find((branch) => branch.type !== 'null') ?? property;
    if (p.enum) return { key, label, help, kind: 'choice', options: p.enum };
    if (p.type === 'boolean') return { key, label, help, kind: 'boolean' };
    if (p.type === 'array') return { key, label, help, kind: 'string-list' };
    if (p.type === 'string') return { key, label, help, kind: 'text' };
    if (p.type !== 'integer' && p.type !== 'number') throw new Error(`Setting "${key}" has type ${p.type}, which no form input renders`);
    const min = p.exclusiveMinimum ?? p.minimum;
    return {
      key,
      label,
      help,
      kind: p.type === 'integer' ? 'int' : 'number',
      ...(min !== undefined && Math.abs(min) < Number.MAX_SAFE_INTEGER ? { min } : {}),
      ...(p.exclusiveMinimum !== undefined ? { minExclusive: true } : {}),
      ...(p.maximum !== undefined && p.maximum < Number.MAX_SAFE_INTEGER ? { max: p.maximum } : {}),
      ...(step !== undefined ? { step } : {}),
    };
  });
}

/** What a method declares: one entry of `methodDefinitions`. */
export interface MethodDefinition {
  id: string;
  label: string;
  summary: string;
  /** Its settings live under RunConfig[settingsKey], validated by `settings`. */
  settingsKey: string;
  settings: z.ZodObject;
  /**
   * A method built on another's layer (LoRA+ and SeLoRA on LoRA's) also carries that method's settings
   * section, before its own; the form shows its fields first.
   */
  extends?: string;
  /** The engines that train it (the pytorch engine's own list is engine-torch/workbench_torch/methods/__init__.py's SUPPORTED_METHODS). */
  engines: readonly EngineName[];
  /** The form's text for each setting of its section, in the form's order. */
  fields: readonly FieldText[];
}

// Each method's settings section. The zod schema is the one source of its kinds, bounds and defaults.

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

/**
 * Every method, in the order the form and the CLI list them: its section, the form's text for its
 * settings, and the engines that train it. config.ts derives methodIds, RunConfig's variants and
 * engineMethods from this list.
 */
export const methodDefinitions = [
  {
    id: 'lora',
    label: 'LoRA',
    summary: 'Low-rank adapters A [r, in] and B [out, r] added to the chosen linear layers; B starts at zero so training starts from the base model.',
    settingsKey: 'lora',
    settings: LoraSettingsSchema,
    engines: ['tfjs', 'pytorch'],
    fields: [
      { key: 'r', label: 'Rank r', help: 'Rank of the update B·A. Higher means more capacity and memory.' },
      { key: 'alpha', label: 'Alpha', step: 1, help: 'The update is scaled by alpha / r (alpha / sqrt(r) with rsLoRA).' },
      { key: 'dropout', label: 'Dropout', step: 0.01, help: 'Dropout on the adapter input during training.' },
      { key: 'targetModules', label: 'Target modules', help: 'Module names (c_attn, c_proj, c_fc, q_proj…) or /regex/ over full module paths.' },
      { key: 'useRslora', label: 'rsLoRA scaling', help: 'Scale by alpha / sqrt(r) instead of alpha / r (stable at high rank).' },
    ],
  },
  {
    id: 'lora-plus',
    label: 'LoRA+',
    summary:
      'LoRA with its own learning rate for B: lora_A trains at the learning rate, lora_B at ratio times it (Hayou et al. 2024). Ratio 1 is plain LoRA. Exports as a plain PEFT LoRA.',
    settingsKey: 'loraPlus',
    extends: 'lora',
    settings: LoraPlusSettingsSchema,
    engines: ['tfjs', 'pytorch'],
    fields: [
      {
        key: 'ratio',
        label: 'B/A learning-rate ratio',
        step: 1,
        help: 'lambda: lora_B learns at lambda x the learning rate (16 recommended; 1 = plain LoRA).',
      },
      { key: 'learningRateB', label: 'Learning rate of B', step: 0.0001, help: 'Optional peak rate for lora_B; leave empty to use ratio x learning rate.' },
    ],
  },
  {
    id: 'selora',
    label: 'SeLoRA',
    summary:
      "Semantic-guided LoRA: Delta W = B (I + g(s)) A, where g maps the prompt's meaning s (pooled base-model states) to an r x r mixing matrix; a consistency loss keeps similar prompts' updates close.",
    settingsKey: 'selora',
    extends: 'lora',
    settings: SeloraSettingsSchema,
    engines: ['tfjs', 'pytorch'],
    fields: [
      { key: 'hiddenSize', label: 'Encoder hidden size', help: 'Width of g, the MLP from the semantic vector to the r x r matrix.' },
      {
        key: 'lambdaSem',
        label: 'Semantic loss weight',
        step: 0.01,
        help: "lambda_sem: weight of the loss pulling similar prompts' updates together (0 turns it off).",
      },
    ],
  },
  {
    id: 'bias-aware',
    label: 'Bias-aware LoRA',
    summary:
      "LoRA plus two regularizers: L_bias keeps the adapted model's pooled representation of a prompt unchanged when its demographic terms are swapped (or, adversarially, when a small offset is added to its embeddings), and L_KL keeps its next-token distributions close to the base model's. With two or more tasks, one adapter per task and L_align pulls their updates together. Exports as a plain PEFT LoRA (a multi-task run: the mixture of its tasks, in flattened/).",
    settingsKey: 'biasAware',
    extends: 'lora',
    settings: BiasAwareSettingsSchema,
    engines: ['tfjs', 'pytorch'],
    fields: [
      {
        key: 'lambdaBias',
        label: 'Bias loss weight',
        step: 0.01,
        help: 'l1: weight of L_bias, the squared distance between the representations of a prompt and its counterfactual (0 turns it off).',
      },
      { key: 'lambdaKl', label: 'KL loss weight', step: 0.01, help: 'l3: weight of KL(adapted || base) over the completion tokens (0 turns it off).' },
      {
        key: 'reading',
        label: 'Bias reading',
        help: "counterfactual: x' swaps the prompt's demographic terms; adversarial: x' adds an embedding offset b_bias of norm epsilon, moved by gradient ascent.",
      },
      { key: 'epsilon', label: 'Adversarial offset norm', step: 0.01, help: 'Norm of the embedding offset b_bias (adversarial reading only).' },
      {
        key: 'lambdaAlign',
        label: 'Align loss weight',
        step: 0.01,
        help: "l2: weight of L_align, the squared distance between the tasks' adapters B_i A_i (needs two or more tasks).",
      },
      {
        key: 'tasks',
        label: 'Tasks',
        help: 'Task labels trained jointly, one adapter each; every dataset row names its task in a "task" field. Empty: one adapter for all rows.',
      },
      {
        key: 'taskMixture',
        label: 'Task mixture',
        help: "How often each task's batches are drawn, one ratio per task (e.g. 2, 1); empty: in proportion to each task's rows.",
      },
    ],
  },
  {
    id: 'full',
    label: 'Full fine-tuning',
    summary:
      "Every weight of the model trains (the papers' upper baseline). For small models only: it needs about five times the model's memory (weights, their trained copy, gradients, two AdamW moments) and is refused above 130M parameters. Exports the whole state dict, which PEFT cannot load as an adapter.",
    settingsKey: 'full',
    settings: FullSettingsSchema,
    engines: ['tfjs', 'pytorch'],
    fields: [
      { key: 'trainEmbeddings', label: 'Train embeddings', help: 'Also train the token and position embeddings (and a head tied to them); off freezes them.' },
    ],
  },
  {
    id: 'bitfit',
    label: 'BitFit',
    summary:
      "Only the bias terms train (Ben Zaken et al. 2022): every linear layer's bias and the LayerNorm biases. Needs a model with biases (GPT-2, Qwen2); Llama has none. PEFT has no BitFit type: exports the native tensors with the workbench sidecar.",
    settingsKey: 'bitfit',
    settings: BitFitSettingsSchema,
    engines: ['tfjs', 'pytorch'],
    fields: [{ key: 'includeNormBiases', label: 'LayerNorm biases', help: 'Also train the LayerNorm biases (beta), as the paper does.' }],
  },
  {
    id: 'prompt-tuning',
    label: 'Prompt tuning',
    summary:
      'n trainable soft-prompt vectors are prepended to the input embeddings (Lester et al. 2021); the model stays frozen and the loss skips the virtual tokens. Exports as a PEFT PROMPT_TUNING adapter.',
    settingsKey: 'promptTuning',
    settings: PromptTuningSettingsSchema,
    engines: ['tfjs', 'pytorch'],
    fields: [
      { key: 'numVirtualTokens', label: 'Virtual tokens', help: "n: soft-prompt vectors before every input; they use n of the model's positions." },
      {
        key: 'init',
        label: 'Initialisation',
        help: "random: N(0, std of the embedding table); text: the embeddings of the init text's tokens, repeated to n (PEFT's TEXT).",
      },
      { key: 'initText', label: 'Init text', help: 'Text whose token embeddings start the prompt (init = text), e.g. a description of the task.' },
    ],
  },
  {
    id: 'houlsby',
    label: 'Houlsby adapters',
    summary:
      'Bottleneck adapters (Houlsby et al. 2019): down-projection, GELU, up-projection starting at zero, with a residual, after the attention output and after the MLP of every layer. PEFT has no such type: exports the native tensors with the workbench sidecar.',
    settingsKey: 'houlsby',
    settings: HoulsbySettingsSchema,
    engines: ['tfjs', 'pytorch'],
    fields: [{ key: 'bottleneckSize', label: 'Bottleneck size', help: 'm: width of the bottleneck; each adapter has 2 m d + m + d parameters.' }],
  },
  {
    id: 'qlora',
    label: 'QLoRA',
    summary:
      'LoRA over a frozen base whose adapted linear weights are held quantized (4-bit NF4 or int8, one absmax scale per block) and dequantized per layer in the forward (Dettmers et al. 2023). Exports as a plain PEFT LoRA.',
    settingsKey: 'qlora',
    extends: 'lora',
    settings: QloraSettingsSchema,
    engines: ['tfjs', 'pytorch'],
    fields: [
      {
        key: 'format',
        label: 'Quantization',
        help: "nf4: the QLoRA paper's 16 NormalFloat levels (about 8x smaller than float32); int8: 255 levels (about 4x smaller).",
      },
      { key: 'blockSize', label: 'Block size', help: 'Weights per absmax scale (64 in the paper): smaller blocks, smaller error, more scales.' },
    ],
  },
] as const satisfies readonly MethodDefinition[];

export type MethodId = (typeof methodDefinitions)[number]['id'];
/** The RunConfig sections that hold method settings, one per method. */
export type MethodSettingsKey = (typeof methodDefinitions)[number]['settingsKey'];

/** The settings sections a method's configuration carries, reused ones first; none for an unknown method. */
export function sectionKeysOf(method: MethodId): MethodSettingsKey[] {
  const definition = methodDefinitions.find((d) => d.id === method);
  if (!definition) return [];
  const base = 'extends' in definition ? methodDefinitions.find((d) => d.id === definition.extends) : undefined;
  return base ? [base.settingsKey, definition.settingsKey] : [definition.settingsKey];
}

/** A method as the New run form and the CLI show it: its fields with their kinds, bounds and choices (plain data, sent to the renderer). */
export interface MethodDescriptor {
  id: MethodId;
  label: string;
  summary: string;
  /** Settings live under RunConfig[settingsKey]. */
  settingsKey: MethodSettingsKey;
  fields: FieldDescriptor[];
  /** The method whose settings section it also reads (MethodDefinition.extends). */
  extends?: MethodId;
}

/** The settings sections a method reads, base method first, with their descriptors' fields. */
export function settingsSectionsOf(id: MethodId): { settingsKey: MethodSettingsKey; fields: FieldDescriptor[] }[] {
  if (!methodDescriptors.some((d) => d.id === id)) return [];
  return sectionKeysOf(id).map((settingsKey) => ({ settingsKey, fields: methodDescriptors.find((d) => d.settingsKey === settingsKey)!.fields }));
}

/**
 * The settings a method reads from a run configuration: RunConfig[settingsKey] for a method with one
 * section (LoRA, so its checkpoints compare as before), else { [settingsKey]: section } for each
 * section, base method's first (LoRA+: { lora, loraPlus }).
 */
export function methodSettingsOf(config: { method: MethodId }): unknown {
  const sections = settingsSectionsOf(config.method);
  if (sections.length === 0) throw new WorkbenchError('invalid_input', `Unknown method "${config.method}".`, { method: config.method });
  const section = (key: MethodSettingsKey) => (config as Record<string, unknown>)[key];
  if (sections.length === 1) return section(sections[0]!.settingsKey);
  return Object.fromEntries(sections.map((s) => [s.settingsKey, section(s.settingsKey)]));
}

export const methodDescriptors: MethodDescriptor[] = methodDefinitions.map((d) => ({
  id: d.id,
  label: d.label,
  summary: d.summary,
  settingsKey: d.settingsKey,
  ...('extends' in d ? { extends: d.extends } : {}),
  fields: describeFields(d.settings, d.fields),
}));
