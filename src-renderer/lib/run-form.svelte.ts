// The New run form's state: a RunConfig being edited, checked on every change with the same schema the
// API validates with, so the errors under the fields are the ones the server would answer.
import type { z } from 'zod';
import type { Catalog } from '../../src-shared/api.ts';
import {
  type EngineName,
  engineMethods,
  type MethodSettingsKey,
  methodSettingsKeys,
  type RunConfig,
  RunConfigSchema,
  sectionKeysOf,
  settingsSchemas,
  TrainingSettingsSchema,
} from '../../src-shared/config.ts';
import { describeFields, type FieldDescriptor, type MethodDescriptor, settingsSectionsOf } from '../../src-shared/methods.ts';

/** The training settings the form shows, described like a method's fields so the same inputs render them. */
export const trainingFields: FieldDescriptor[] = describeFields(TrainingSettingsSchema, [
  { key: 'learningRate', label: 'Learning rate', step: 0.0001, help: 'Peak learning rate after warmup (AdamW).' },
  { key: 'batchSize', label: 'Batch size', help: 'Sequences per optimizer step.' },
  { key: 'maxSteps', label: 'Max steps', help: 'Optimizer steps to train for.' },
  { key: 'maxSeqLen', label: 'Max sequence length', help: 'Longer examples are truncated, prompt side first.' },
  { key: 'warmupSteps', label: 'Warmup steps', help: 'Linear warmup from 0 to the learning rate.' },
  { key: 'seed', label: 'Seed', help: 'Seeds adapter initialisation, data order and dropout.' },
  { key: 'evalEvery', label: 'Evaluate every', help: 'Steps between validation-loss evaluations.' },
  { key: 'checkpointEvery', label: 'Checkpoint every', help: 'Steps between checkpoints (a stopped run resumes from the last one).' },
]);

/** Less often changed; shown folded. */
export const moreTrainingFields: FieldDescriptor[] = describeFields(TrainingSettingsSchema, [
  { key: 'weightDecay', label: 'Weight decay', step: 0.01, help: 'Decoupled weight decay on the adapter weights.' },
  { key: 'gradClip', label: 'Gradient clip', step: 0.1, help: 'Clips the global gradient norm to this value.' },
  { key: 'evalBatches', label: 'Eval batches', help: 'Validation batches per evaluation.' },
  { key: 'validationFraction', label: 'Validation fraction', step: 0.01, help: 'Share of the dataset held out for validation loss.' },
]);

/**
 * The form's state: the common settings, the chosen method, and every method's settings section, so
 * that switching methods and back keeps what was typed. What is sent keeps the chosen method's sections only.
 */
export type RunConfigDraft = Omit<RunConfig, 'method' | MethodSettingsKey> & { method: RunConfig['method'] } & {
  [K in MethodSettingsKey]: z.infer<(typeof settingsSchemas)[K]>;
};

/** A draft from a configuration: its own sections, every other section at its defaults. */
export function draftOf(config: RunConfig): RunConfigDraft {
  const sections = Object.fromEntries(methodSettingsKeys.map((key) => [key, settingsSchemas[key].parse({})]));
  return { ...sections, ...structuredClone(config) } as RunConfigDraft;
}

/** The configuration a draft stands for: its method's sections only. */
export function configOfDraft(draft: RunConfigDraft): unknown {
  const keep = new Set<string>(sectionKeysOf(draft.method));
  return Object.fromEntries(Object.entries(draft).filter(([key]) => keep.has(key) || !(methodSettingsKeys as readonly string[]).includes(key)));
}

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
  config: RunConfigDraft = $state()!;
  readonly methods: MethodDescriptor[];
  readonly #parsed = $derived(RunConfigSchema.safeParse(configOfDraft(this.config)));
  readonly errors: Record<string, string> = $derived(this.#parsed.success ? {} : fieldErrors(this.#parsed.error.issues));
  readonly valid = $derived(this.#parsed.success);
  readonly method = $derived(this.#methodOf(this.config.method));

  constructor(catalog: Catalog) {
    this.config = draftOf(catalog.defaults);
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

  /** The methods an engine trains, in the catalog's order (the per-engine list of src-shared/config.ts). */
  methodsOf(engine: EngineName): MethodDescriptor[] {
    return this.methods.filter((m) => engineMethods[engine].includes(m.id));
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
