// The run configuration: everything needed to reproduce a run, stored whole with it. Its method
// sections, methodIds and the engines' method lists are derived from the method descriptors
// (methods.ts), so a new method is declared there only.
import { z } from 'zod';
import { type EngineName, engineNames } from './engines.ts';
import { type MethodId, type MethodSettingsKey, methodDefinitions, sectionKeysOf } from './methods.ts';
import { strictObject } from './settings-schema.ts';

// Declared with the engines and the methods; exported here too for the callers that have always read
// them here. A new method's settings are imported from methods.ts, where they are declared.
export { type EngineName, engineNames } from './engines.ts';
export {
  type BiasAwareSettings,
  BiasAwareSettingsSchema,
  type LoraSettings,
  LoraSettingsSchema,
  type MethodId,
  type MethodSettingsKey,
  PromptTuningSettingsSchema,
  SeloraSettingsSchema,
  sectionKeysOf,
} from './methods.ts';
export { closestKey, unknownKeysMessage } from './settings-schema.ts';

export const backendNames = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof backendNames)[number];
export const BackendChoiceSchema = z.enum(['auto', ...backendNames]);
export type BackendChoice = z.infer<typeof BackendChoiceSchema>;

/** `default` / `sample` name the model and dataset embedded in resources/; anything else is a path. */
export const DEFAULT_MODEL = 'default';
export const SAMPLE_DATASET = 'sample';

export const TrainingSettingsSchema = strictObject({
  learningRate: z.number().positive().max(1).default(2e-3),
  batchSize: z.number().int().min(1).max(1024).default(8),
  /**
   * Rows per forward/backward pass; the gradients of ceil(batchSize / microBatchSize) passes are summed
   * into one optimizer step of batchSize rows. null: the memory plan picks it (the whole batch when it fits).
   */
  microBatchSize: z.number().int().min(1).max(1024).nullable().default(null),
  /**
   * Workers of the tfjs engine that each train a share of every batch's rows at the same time (data
   * parallel; the wasm and cpu backends compute on one core each). null: one per core on those
   * backends for a model of 20M parameters or more, as many as the RAM holds; 1 elsewhere.
   */
  workers: z.number().int().min(1).max(64).nullable().default(null),
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

export const distributedLaunchers = ['torchrun', 'accelerate'] as const;

/** Data-parallel processes of a pytorch run on one machine: each takes an equal share of every batch; rank 0 reports and writes. */
export const DistributedSettingsSchema = strictObject({
  processes: z.number().int().min(1).max(64).default(1),
  launcher: z.enum(distributedLaunchers).default('torchrun'),
});
export type DistributedSettings = z.infer<typeof DistributedSettingsSchema>;

const withDefaults = <S extends z.ZodType>(schema: S) => schema.default(schema.parse({}) as never);

type MethodDefinitions = typeof methodDefinitions;
type AnyMethodDefinition = MethodDefinitions[number];
/** `Field` of each definition, as a tuple in the definitions' order (a generic mapped type keeps tuples tuples). */
type EachOf<Definitions extends readonly AnyMethodDefinition[], Field extends 'id' | 'settingsKey'> = {
  readonly [I in keyof Definitions]: Definitions[I] extends AnyMethodDefinition ? Definitions[I][Field] : never;
};

/** Methods the engine registers (src-worker/methods/index.ts), in the order methods.ts describes them. */
export const methodIds = methodDefinitions.map((d) => d.id) as unknown as EachOf<MethodDefinitions, 'id'>;

/** The methods each engine trains, from each method's `engines`. */
export const engineMethods = Object.fromEntries(
  engineNames.map((engine) => [engine, methodDefinitions.filter((d) => (d.engines as readonly EngineName[]).includes(engine)).map((d) => d.id)]),
) as unknown as Record<EngineName, readonly MethodId[]>;

/** The RunConfig sections that hold method settings. */
export const methodSettingsKeys = methodDefinitions.map((d) => d.settingsKey) as unknown as EachOf<MethodDefinitions, 'settingsKey'>;

/** The schema of one settings section (every method that reads it reads the same settings). */
export const settingsSchemas = Object.fromEntries(methodDefinitions.map((d) => [d.settingsKey, d.settings])) as {
  readonly [D in AnyMethodDefinition as D['settingsKey']]: D['settings'];
};

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

/** LoRA is the method of a configuration that names none. */
const DEFAULT_METHOD = 'lora' satisfies MethodId;

/** One section schema per key, defaults filled in, shared by every variant that carries it. */
const sectionSchemas = Object.fromEntries(methodDefinitions.map((d) => [d.settingsKey, withDefaults(d.settings)])) as unknown as Record<
  MethodSettingsKey,
  z.ZodType
>;

type SectionShape<D extends AnyMethodDefinition> = { [K in D['settingsKey']]: z.ZodDefault<D['settings']> };
type BaseSectionShape<D extends AnyMethodDefinition> = D extends { extends: infer Base } ? SectionShape<Extract<AnyMethodDefinition, { id: Base }>> : unknown;
type VariantShape<D extends AnyMethodDefinition> = typeof commonShape & {
  method: D['id'] extends typeof DEFAULT_METHOD ? z.ZodDefault<z.ZodLiteral<D['id']>> : z.ZodLiteral<D['id']>;
} & BaseSectionShape<D> &
  SectionShape<D>;
/** The variants' precise types, one per method definition in its order (z.discriminatedUnion keeps them). */
type VariantsOf<Definitions extends readonly AnyMethodDefinition[]> = {
  -readonly [I in keyof Definitions]: Definitions[I] extends AnyMethodDefinition ? z.ZodObject<VariantShape<Definitions[I]>, z.core.$strict> : never;
};
type Variants = VariantsOf<MethodDefinitions>;

/** A method's configuration: the common settings and only the sections it reads, reused ones first. */
function variantOf(method: MethodId) {
  const discriminator = method === DEFAULT_METHOD ? z.literal(method).default(method) : z.literal(method);
  const sections = Object.fromEntries(sectionKeysOf(method).map((key) => [key, sectionSchemas[key]]));
  return strictObject({ ...commonShape, method: discriminator, ...sections }, sectionOfAnotherMethod(method));
}

/**
 * The run configuration, one shape per method (a discriminated union on `method`): the common settings
 * and only the sections that method reads, reused ones (LoRA's layer under LoRA+, SeLoRA, bias-aware
 * LoRA and QLoRA) first. Unknown keys are errors that name the key.
 */
export const RunConfigSchema = z.discriminatedUnion('method', methodIds.map(variantOf) as unknown as Variants, {
  error: (issue) =>
    issue.code === 'invalid_union'
      ? `Unknown method ${JSON.stringify((issue.input as { method?: unknown } | undefined)?.method)}; known methods: ${methodIds.join(', ')}.`
      : undefined,
});

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
