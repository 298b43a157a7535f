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

export const RunConfigSchema = z.object({
  name: z.string().max(200).default(''),
  model: z.string().min(1).default(DEFAULT_MODEL),
  dataset: z.string().min(1).default(SAMPLE_DATASET),
  method: z.literal('lora').default('lora'),
  lora: LoraSettingsSchema.default(LoraSettingsSchema.parse({})),
  training: TrainingSettingsSchema.default(TrainingSettingsSchema.parse({})),
  backend: BackendChoiceSchema.default('auto'),
});
export type RunConfig = z.infer<typeof RunConfigSchema>;
/** What a caller may send: every field optional, defaults filled in by RunConfigSchema.parse. */
export type RunConfigInput = z.input<typeof RunConfigSchema>;

export function defaultRunConfig(): RunConfig {
  return RunConfigSchema.parse({});
}
