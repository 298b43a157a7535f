// Descriptions of each method's settings. The New run form and the CLI's --help are generated
// from these; the engine's registry (src-worker/methods/index.ts) implements the same ids.
// Kinds, bounds and choices are read from the settings' zod schemas, so the form and the schema
// cannot disagree; a descriptor adds only the label, the help and the input's step.
import { z } from 'zod';
import { type MethodId, type MethodSettingsKey, type RunConfig, sectionKeysOf, settingsSchemas } from './config.ts';
import { WorkbenchError } from './errors.ts';

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

export interface MethodDescriptor {
  id: MethodId;
  label: string;
  summary: string;
  /** Settings live under RunConfig[settingsKey]. */
  settingsKey: MethodSettingsKey;
  fields: FieldDescriptor[];
  /**
   * A method built on another's layer (LoRA+ and SeLoRA on LoRA's) also reads that method's settings
   * section; the form shows its fields first.
   */
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
export function methodSettingsOf(config: RunConfig): unknown {
  const sections = settingsSectionsOf(config.method);
  if (sections.length === 0) throw new WorkbenchError('invalid_input', `Unknown method "${config.method}".`, { method: config.method });
  const section = (key: MethodSettingsKey) => (config as Record<string, unknown>)[key];
  if (sections.length === 1) return section(sections[0]!.settingsKey);
  return Object.fromEntries(sections.map((s) => [s.settingsKey, section(s.settingsKey)]));
}

export const methodDescriptors: MethodDescriptor[] = [
  {
    id: 'lora',
    label: 'LoRA',
    summary: 'Low-rank adapters A [r, in] and B [out, r] added to the chosen linear layers; B starts at zero so training starts from the base model.',
    settingsKey: 'lora',
    fields: describeFields(settingsSchemas.lora, [
      { key: 'r', label: 'Rank r', help: 'Rank of the update B·A. Higher means more capacity and memory.' },
      { key: 'alpha', label: 'Alpha', step: 1, help: 'The update is scaled by alpha / r (alpha / sqrt(r) with rsLoRA).' },
      { key: 'dropout', label: 'Dropout', step: 0.01, help: 'Dropout on the adapter input during training.' },
      { key: 'targetModules', label: 'Target modules', help: 'Module names (c_attn, c_proj, c_fc, q_proj…) or /regex/ over full module paths.' },
      { key: 'useRslora', label: 'rsLoRA scaling', help: 'Scale by alpha / sqrt(r) instead of alpha / r (stable at high rank).' },
    ]),
  },
  {
    id: 'lora-plus',
    label: 'LoRA+',
    summary:
      'LoRA with its own learning rate for B: lora_A trains at the learning rate, lora_B at ratio times it (Hayou et al. 2024). Ratio 1 is plain LoRA. Exports as a plain PEFT LoRA.',
    settingsKey: 'loraPlus',
    extends: 'lora',
    fields: describeFields(settingsSchemas.loraPlus, [
      {
        key: 'ratio',
        label: 'B/A learning-rate ratio',
        step: 1,
        help: 'lambda: lora_B learns at lambda x the learning rate (16 recommended; 1 = plain LoRA).',
      },
      { key: 'learningRateB', label: 'Learning rate of B', step: 0.0001, help: 'Optional peak rate for lora_B; leave empty to use ratio x learning rate.' },
    ]),
  },
  {
    id: 'selora',
    label: 'SeLoRA',
    summary:
      "Semantic-guided LoRA: Delta W = B (I + g(s)) A, where g maps the prompt's meaning s (pooled base-model states) to an r x r mixing matrix; a consistency loss keeps similar prompts' updates close.",
    settingsKey: 'selora',
    extends: 'lora',
    fields: describeFields(settingsSchemas.selora, [
      { key: 'hiddenSize', label: 'Encoder hidden size', help: 'Width of g, the MLP from the semantic vector to the r x r matrix.' },
      {
        key: 'lambdaSem',
        label: 'Semantic loss weight',
        step: 0.01,
        help: "lambda_sem: weight of the loss pulling similar prompts' updates together (0 turns it off).",
      },
    ]),
  },
  {
    id: 'bias-aware',
    label: 'Bias-aware LoRA',
    summary:
      "LoRA plus two regularizers: L_bias keeps the adapted model's pooled representation of a prompt unchanged when its demographic terms are swapped (or, adversarially, when a small offset is added to its embeddings), and L_KL keeps its next-token distributions close to the base model's. With two or more tasks, one adapter per task and L_align pulls their updates together. Exports as a plain PEFT LoRA (a multi-task run: the mixture of its tasks, in flattened/).",
    settingsKey: 'biasAware',
    extends: 'lora',
    fields: describeFields(settingsSchemas.biasAware, [
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
    ]),
  },
  {
    id: 'full',
    label: 'Full fine-tuning',
    summary:
      "Every weight of the model trains (the papers' upper baseline). For small models only: it needs about five times the model's memory (weights, their trained copy, gradients, two AdamW moments) and is refused above 130M parameters. Exports the whole state dict, which PEFT cannot load as an adapter.",
    settingsKey: 'full',
    fields: describeFields(settingsSchemas.full, [
      { key: 'trainEmbeddings', label: 'Train embeddings', help: 'Also train the token and position embeddings (and a head tied to them); off freezes them.' },
    ]),
  },
  {
    id: 'bitfit',
    label: 'BitFit',
    summary:
      "Only the bias terms train (Ben Zaken et al. 2022): every linear layer's bias and the LayerNorm biases. Needs a model with biases (GPT-2, Qwen2); Llama has none. PEFT has no BitFit type: exports the native tensors with the workbench sidecar.",
    settingsKey: 'bitfit',
    fields: describeFields(settingsSchemas.bitfit, [
      { key: 'includeNormBiases', label: 'LayerNorm biases', help: 'Also train the LayerNorm biases (beta), as the paper does.' },
    ]),
  },
  {
    id: 'prompt-tuning',
    label: 'Prompt tuning',
    summary:
      'n trainable soft-prompt vectors are prepended to the input embeddings (Lester et al. 2021); the model stays frozen and the loss skips the virtual tokens. Exports as a PEFT PROMPT_TUNING adapter.',
    settingsKey: 'promptTuning',
    fields: describeFields(settingsSchemas.promptTuning, [
      { key: 'numVirtualTokens', label: 'Virtual tokens', help: "n: soft-prompt vectors before every input; they use n of the model's positions." },
      {
        key: 'init',
        label: 'Initialisation',
        help: "random: N(0, std of the embedding table); text: the embeddings of the init text's tokens, repeated to n (PEFT's TEXT).",
      },
      { key: 'initText', label: 'Init text', help: 'Text whose token embeddings start the prompt (init = text), e.g. a description of the task.' },
    ]),
  },
  {
    id: 'houlsby',
    label: 'Houlsby adapters',
    summary:
      'Bottleneck adapters (Houlsby et al. 2019): down-projection, GELU, up-projection starting at zero, with a residual, after the attention output and after the MLP of every layer. PEFT has no such type: exports the native tensors with the workbench sidecar.',
    settingsKey: 'houlsby',
    fields: describeFields(settingsSchemas.houlsby, [
      { key: 'bottleneckSize', label: 'Bottleneck size', help: 'm: width of the bottleneck; each adapter has 2 m d + m + d parameters.' },
    ]),
  },
  {
    id: 'qlora',
    label: 'QLoRA',
    summary:
      'LoRA over a frozen base whose adapted linear weights are held quantized (4-bit NF4 or int8, one absmax scale per block) and dequantized per layer in the forward (Dettmers et al. 2023). Exports as a plain PEFT LoRA.',
    settingsKey: 'qlora',
    extends: 'lora',
    fields: describeFields(settingsSchemas.qlora, [
      {
        key: 'format',
        label: 'Quantization',
        help: "nf4: the QLoRA paper's 16 NormalFloat levels (about 8x smaller than float32); int8: 255 levels (about 4x smaller).",
      },
      { key: 'blockSize', label: 'Block size', help: 'Weights per absmax scale (64 in the paper): smaller blocks, smaller error, more scales.' },
    ]),
  },
];
