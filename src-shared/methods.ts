// Descriptions of each method's settings. The New run form and the CLI's --help are generated
// from these; the engine's registry (src-worker/methods/index.ts) implements the same ids.
export type FieldDescriptor =
  | { key: string; label: string; kind: 'int' | 'number'; min?: number; max?: number; step?: number; help: string }
  | { key: string; label: string; kind: 'boolean'; help: string }
  | { key: string; label: string; kind: 'string-list'; help: string };

export interface MethodDescriptor {
  id: 'lora';
  label: string;
  summary: string;
  /** Settings live under RunConfig[settingsKey]. */
  settingsKey: 'lora';
  fields: FieldDescriptor[];
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
];
