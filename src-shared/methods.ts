// Descriptions of each method's settings. The New run form and the CLI's --help are generated
// from these; the engine's registry (src-worker/methods/index.ts) implements the same ids.
export type FieldDescriptor =
  | { key: string; label: string; kind: 'int' | 'number'; min?: number; max?: number; step?: number; help: string }
  | { key: string; label: string; kind: 'boolean'; help: string }
  | { key: string; label: string; kind: 'string-list'; help: string };

import type { MethodId } from './config.ts';

/** The RunConfig sections that hold method settings. */
export const methodSettingsKeys = ['lora', 'loraPlus', 'selora', 'biasAware'] as const;
export type MethodSettingsKey = (typeof methodSettingsKeys)[number];

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

/** The settings sections a method reads, base method first. */
export function settingsSectionsOf(id: MethodId): { settingsKey: MethodSettingsKey; fields: FieldDescriptor[] }[] {
  const descriptor = methodDescriptors.find((d) => d.id === id);
  if (!descriptor) return [];
  const own = { settingsKey: descriptor.settingsKey, fields: descriptor.fields };
  return descriptor.extends ? [...settingsSectionsOf(descriptor.extends), own] : [own];
}

export const methodDescriptors: MethodDescriptor[] = [
  {
    id: 'lora',
    label: 'LoRA',
    summary: 'Low-rank adapters A [r, in] and B [out, r] added to the chosen linear layers; B starts at zero so training starts from the base model.',
    settingsKey: 'lora',
    fields: [
      { key: 'r', label: 'Rank r', kind: 'int', min: 1, max: 1024, help: 'Rank of the update B·A. Higher means more capacity and memory.' },
      { key: 'alpha', label: 'Alpha', kind: 'number', min: 0, step: 1, help: 'The update is scaled by alpha / r (alpha / sqrt(r) with rsLoRA).' },
      { key: 'dropout', label: 'Dropout', kind: 'number', min: 0, max: 0.9, step: 0.01, help: 'Dropout on the adapter input during training.' },
      { key: 'targetModules', label: 'Target modules', kind: 'string-list', help: 'Module names (c_attn, c_proj, c_fc, q_proj…) or /regex/ over full module paths.' },
      { key: 'useRslora', label: 'rsLoRA scaling', kind: 'boolean', help: 'Scale by alpha / sqrt(r) instead of alpha / r (stable at high rank).' },
    ],
  },
  {
    id: 'lora-plus',
    label: 'LoRA+',
    summary: 'LoRA with its own learning rate for B: lora_A trains at the learning rate, lora_B at ratio times it (Hayou et al. 2024). Ratio 1 is plain LoRA. Exports as a plain PEFT LoRA.',
    settingsKey: 'loraPlus',
    extends: 'lora',
    fields: [
      { key: 'ratio', label: 'B/A learning-rate ratio', kind: 'number', min: 0, max: 1000, step: 1, help: 'lambda: lora_B learns at lambda x the learning rate (16 recommended; 1 = plain LoRA).' },
      { key: 'learningRateB', label: 'Learning rate of B', kind: 'number', min: 0, max: 1, step: 0.0001, help: 'Optional peak rate for lora_B; leave empty to use ratio x learning rate.' },
    ],
  },
  {
    id: 'selora',
    label: 'SeLoRA',
    summary: 'Semantic-guided LoRA: Delta W = B (I + g(s)) A, where g maps the prompt\'s meaning s (pooled base-model states) to an r x r mixing matrix; a consistency loss keeps similar prompts\' updates close.',
    settingsKey: 'selora',
    extends: 'lora',
    fields: [
      { key: 'hiddenSize', label: 'Encoder hidden size', kind: 'int', min: 1, max: 4096, help: 'Width of g, the MLP from the semantic vector to the r x r matrix.' },
      { key: 'lambdaSem', label: 'Semantic loss weight', kind: 'number', min: 0, step: 0.01, help: 'lambda_sem: weight of the loss pulling similar prompts\' updates together (0 turns it off).' },
    ],
  },
  {
    id: 'bias-aware',
    label: 'Bias-aware LoRA',
    summary: 'LoRA plus two regularizers: L_bias keeps the adapted model\'s pooled representation of a prompt unchanged when its demographic terms are swapped (or, adversarially, when a small offset is added to its embeddings), and L_KL keeps its next-token distributions close to the base model\'s. Exports as a plain PEFT LoRA.',
    settingsKey: 'biasAware',
    extends: 'lora',
    fields: [
      { key: 'lambdaBias', label: 'Bias loss weight', kind: 'number', min: 0, step: 0.01, help: 'l1: weight of L_bias, the squared distance between the representations of a prompt and its counterfactual (0 turns it off).' },
      { key: 'lambdaKl', label: 'KL loss weight', kind: 'number', min: 0, step: 0.01, help: 'l3: weight of KL(adapted || base) over the completion tokens (0 turns it off).' },
      { key: 'epsilon', label: 'Adversarial offset norm', kind: 'number', min: 0, max: 100, step: 0.01, help: 'Norm of the embedding offset b_bias (adversarial reading only; the reading is set in the run config as biasAware.reading).' },
    ],
  },
];
