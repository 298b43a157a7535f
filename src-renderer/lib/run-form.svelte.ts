// The New run form's state: a RunConfig being edited, checked on every change with the same schema the
// API validates with, so the errors under the fields are the ones the server would answer.
import type { z } from 'zod';
import type { Catalog } from '../../src-shared/api.ts';
import { RunConfigSchema, type RunConfig } from '../../src-shared/config.ts';
import { settingsSectionsOf, type FieldDescriptor, type MethodDescriptor, type MethodSettingsKey } from '../../src-shared/methods.ts';

/** The training settings the form shows, described like a method's fields so the same inputs render them. */
export const trainingFields: FieldDescriptor[] = [
  { key: 'learningRate', label: 'Learning rate', kind: 'number', min: 0, max: 1, step: 0.0001, help: 'Peak learning rate after warmup (AdamW).' },
  { key: 'batchSize', label: 'Batch size', kind: 'int', min: 1, max: 1024, help: 'Sequences per optimizer step.' },
  { key: 'maxSteps', label: 'Max steps', kind: 'int', min: 1, help: 'Optimizer steps to train for.' },
  { key: 'maxSeqLen', label: 'Max sequence length', kind: 'int', min: 8, max: 32768, help: 'Longer examples are truncated, prompt side first.' },
  { key: 'warmupSteps', label: 'Warmup steps', kind: 'int', min: 0, help: 'Linear warmup from 0 to the learning rate.' },
  { key: 'seed', label: 'Seed', kind: 'int', min: 0, help: 'Seeds adapter initialisation, data order and dropout.' },
  { key: 'evalEvery', label: 'Evaluate every', kind: 'int', min: 1, help: 'Steps between validation-loss evaluations.' },
  { key: 'checkpointEvery', label: 'Checkpoint every', kind: 'int', min: 1, help: 'Steps between checkpoints (a stopped run resumes from the last one).' },
];

/** Less often changed; shown folded. */
export const moreTrainingFields: FieldDescriptor[] = [
  { key: 'weightDecay', label: 'Weight decay', kind: 'number', min: 0, step: 0.01, help: 'Decoupled weight decay on the adapter weights.' },
  { key: 'gradClip', label: 'Gradient clip', kind: 'number', min: 0, step: 0.1, help: 'Clips the global gradient norm to this value.' },
  { key: 'evalBatches', label: 'Eval batches', kind: 'int', min: 1, help: 'Validation batches per evaluation.' },
  { key: 'validationFraction', label: 'Validation fraction', kind: 'number', min: 0, max: 0.5, step: 0.01, help: 'Share of the dataset held out for validation loss.' },
];

export type FieldValue = number | boolean | string | string[] | null;

function issueMessage(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.expected === 'int') return 'Enter a whole number.';
      if (issue.expected === 'number') return 'Enter a number.';
      return `Expected ${issue.expected}.`;
    case 'too_small':
      if (issue.origin === 'array') return `Give at least ${issue.minimum}.`;
      if (issue.origin === 'string') return issue.minimum === 1 ? 'Required.' : `At least ${issue.minimum} characters.`;
      return issue.inclusive ? `Must be at least ${issue.minimum}.` : `Must be more than ${issue.minimum}.`;
    case 'too_big':
      if (issue.origin === 'string') return `At most ${issue.maximum} characters.`;
      return issue.inclusive ? `Must be at most ${issue.maximum}.` : `Must be less than ${issue.maximum}.`;
    default:
      return issue.message;
  }
}

/** Field path (e.g. "training.maxSteps") -> first problem with it. */
export function fieldErrors(issues: readonly z.core.$ZodIssue[]): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const issue of issues) {
    // A problem inside a list (lora.targetModules.1) belongs to the list's field.
    const path = issue.path.filter((part) => typeof part === 'string').join('.');
    errors[path] ??= issueMessage(issue);
  }
  return errors;
}

export class RunForm {
  config: RunConfig = $state()!;
  readonly methods: MethodDescriptor[];
  readonly #parsed = $derived(RunConfigSchema.safeParse(this.config));
  readonly errors: Record<string, string> = $derived(this.#parsed.success ? {} : fieldErrors(this.#parsed.error.issues));
  readonly valid = $derived(this.#parsed.success);
  readonly method = $derived(this.#methodOf(this.config.method));

  constructor(catalog: Catalog) {
    this.config = structuredClone(catalog.defaults);
    this.methods = catalog.methods;
  }

  /** The config to send, with defaults filled in; null while a field is wrong. */
  get parsed(): RunConfig | null {
    return this.#parsed.success ? this.#parsed.data : null;
  }

  training(key: string): FieldValue {
    return (this.config.training as unknown as Record<string, FieldValue>)[key] ?? null;
  }

  setTraining(key: string, value: FieldValue): void {
    (this.config.training as unknown as Record<string, FieldValue>)[key] = value;
  }

  /** The settings sections the chosen method reads (LoRA's first for methods built on it), each shown as a group of fields. */
  readonly sections = $derived(settingsSectionsOf(this.method.id));

  /** The chosen method's settings live under config[settingsKey] (its own section unless another is named). */
  methodSetting(key: string, settingsKey: MethodSettingsKey = this.method.settingsKey): FieldValue {
    return this.#settings(settingsKey)[key] ?? null;
  }

  setMethodSetting(key: string, value: FieldValue, settingsKey: MethodSettingsKey = this.method.settingsKey): void {
    this.#settings(settingsKey)[key] = value;
  }

  #settings(settingsKey: MethodSettingsKey): Record<string, FieldValue> {
    return this.config[settingsKey] as unknown as Record<string, FieldValue>;
  }

  #methodOf(id: string): MethodDescriptor {
    const method = this.methods.find((m) => m.id === id);
    if (!method) throw new Error(`The catalog lists no method "${id}"`);
    return method;
  }
}
