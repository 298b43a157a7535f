// An adapter folder on disk, in Hugging Face PEFT's layout where PEFT can hold the adapter, so that
// `PeftModel.from_pretrained(base, folder)` loads it as it is:
//   adapter_model.safetensors  base_model.model.<module>.lora_A.weight [r, in], .lora_B.weight [out, r]
//                              (no adapter name in the keys: PEFT inserts "default" when loading),
//                              metadata {"format": "pt"} as PEFT's save_pretrained writes it
//   adapter_config.json        PEFT config fields only (older PEFT versions reject unknown keys); absent
//                              when PEFT cannot represent the adapter, so PEFT cannot misread the folder
//   workbench_adapter.json     what PEFT has no field for: method, run, training settings, backend, step
//   flattened/                 beside a native adapter PEFT cannot represent: the plain LoRA closest to it
// A leaf: it knows files, not methods or models, so every writer and reader can import it.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { StoredRunConfigSchema } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { BackendInfoSchema } from '../../src-shared/runs.ts';
import { readCheckedJson } from './json-file.ts';
import { readSafetensorsHeader, serializeSafetensors, writeFileAtomic } from './safetensors.ts';

export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const SIDECAR_FILE = 'workbench_adapter.json';
/** Sub-folder of a native adapter holding its flattened PEFT LoRA. */
export const FLATTENED_ADAPTER_DIR = 'flattened';

/** The fields of PEFT's PeftConfigMixin / PeftConfig (peft/config.py), which every adapter type's config has. */
const PEFT_BASE_CONFIG_FIELDS = ['peft_type', 'task_type', 'base_model_name_or_path', 'revision', 'inference_mode', 'auto_mapping'];

/**
 * Every field of PEFT's PeftConfig + LoraConfig (peft/config.py, peft/tuners/lora/config.py, up to
 * PEFT 0.17). adapter_config.json may hold only these.
 */
export const PEFT_LORA_CONFIG_FIELDS: ReadonlySet<string> = new Set([
  ...PEFT_BASE_CONFIG_FIELDS,
  // LoraConfig
  'r',
  'target_modules',
  'exclude_modules',
  'lora_alpha',
  'lora_dropout',
  'fan_in_fan_out',
  'bias',
  'use_rslora',
  'modules_to_save',
  'init_lora_weights',
  'layers_to_transform',
  'layers_pattern',
  'rank_pattern',
  'alpha_pattern',
  'megatron_config',
  'megatron_core',
  'loftq_config',
  'use_dora',
  'layer_replication',
  'runtime_config',
  'lora_bias',
  'eva_config',
  'corda_config',
  'trainable_token_indices',
  'use_qalora',
  'qalora_group_size',
  'target_parameters',
]);

/**
 * Every field of PEFT's PromptTuningConfig (peft/tuners/prompt_tuning/config.py and its
 * PromptLearningConfig base, up to PEFT 0.17), besides PeftConfig's.
 */
export const PEFT_PROMPT_TUNING_CONFIG_FIELDS: ReadonlySet<string> = new Set([
  ...PEFT_BASE_CONFIG_FIELDS,
  // PromptLearningConfig
  'num_virtual_tokens',
  'token_dim',
  'num_transformer_submodules',
  'num_attention_heads',
  'num_layers',
  'modules_to_save',
  // PromptTuningConfig
  'prompt_tuning_init',
  'prompt_tuning_init_text',
  'tokenizer_name_or_path',
  'tokenizer_kwargs',
]);

const PEFT_CONFIG_FIELDS: Record<string, ReadonlySet<string>> = { LORA: PEFT_LORA_CONFIG_FIELDS, PROMPT_TUNING: PEFT_PROMPT_TUNING_CONFIG_FIELDS };

export const AdapterSidecarSchema = z.object({
  format: z.literal('lora-workbench-adapter'),
  version: z.literal(1),
  method: z.string(),
  runId: z.string(),
  step: z.number().int(),
  trainableParams: z.number().int(),
  /** The whole run configuration: the method's settings, training settings, seed (older folders: every method's sections). */
  config: StoredRunConfigSchema,
  backend: BackendInfoSchema.nullable(),
  baseModel: z.object({
    path: z.string(),
    /** sha256 over config.json and the safetensors headers: names, shapes and offsets, not the weights. */
    fingerprint: z.string().nullable(),
  }),
  createdAt: z.string(),
  /** Set on a plain LoRA flattened from a conditional adapter (SeLoRA at the mean semantic vector). */
  flattenedFrom: z
    .object({
      method: z.string(),
      /** Largest |logit| difference on the probe between the native adapter (each probe at its own s) and this one. */
      maxAbsLogitDiff: z.number(),
    })
    .optional(),
});
export type AdapterSidecar = z.infer<typeof AdapterSidecarSchema>;
/** What a writer passes: the config may still be in its input form (defaults not filled in). */
export type AdapterSidecarInput = z.input<typeof AdapterSidecarSchema>;

/**
 * A cheap identity for a base model folder: hashing gigabytes of weights on every checkpoint would cost
 * more than the checkpoint, while the config plus every tensor's name, dtype, shape and offsets catches
 * pairing an adapter with a different model in all but contrived cases.
 */
export async function baseModelFingerprint(modelDir: string): Promise<string | null> {
  try {
    const hash = createHash('sha256');
    hash.update(await fs.promises.readFile(path.join(modelDir, 'config.json')));
    const names = (await fs.promises.readdir(modelDir)).filter((n) => n.endsWith('.safetensors')).sort();
    for (const name of names) {
      const header = await readSafetensorsHeader(path.join(modelDir, name));
      hash.update(name);
      for (const [key, e] of [...header.entries].sort(([a], [b]) => (a < b ? -1 : 1))) hash.update(`${key}:${e.dtype}:${e.shape}:${e.begin}:${e.end};`);
    }
    return hash.digest('hex');
  } catch {
    return null;
  }
}

/** Checks adapter_config.json content against the fields of PEFT's config class for its peft_type. */
export function checkPeftConfig(config: Record<string, unknown>): void {
  const fields = PEFT_CONFIG_FIELDS[String(config.peft_type)];
  if (!fields)
    throw new WorkbenchError(
      'internal',
      `adapter_config.json has peft_type ${JSON.stringify(config.peft_type)}; the workbench writes only ${Object.keys(PEFT_CONFIG_FIELDS).join(', ')}.`,
    );
  const unknown = Object.keys(config).filter((k) => !fields.has(k));
  if (unknown.length > 0) {
    throw new WorkbenchError('internal', `adapter_config.json would hold keys PEFT does not know: ${unknown.join(', ')}; they belong in ${SIDECAR_FILE}.`, {
      unknown,
    });
  }
}

export interface WrittenFile {
  name: string;
  bytes: number;
}

export type TensorData = Map<string, { shape: number[]; data: Float32Array }>;

/** Reads a tfjs tensor map into plain arrays (disposing the tensors: stateDict returns fresh ones). */
export async function tensorsToData(tensors: Map<string, { shape: number[]; data(): Promise<unknown>; dispose(): void }>): Promise<TensorData> {
  const out: TensorData = new Map();
  try {
    for (const [name, t] of tensors) out.set(name, { shape: [...t.shape], data: Float32Array.from((await t.data()) as Float32Array) });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  return out;
}

/**
 * Writes an adapter's tensors, its adapter_config.json (when PEFT can represent it: peftConfig not
 * null) and the sidecar into `dir` (created if needed). Each file is replaced atomically; callers that
 * need the folder as a whole to appear at once write into a temporary folder and rename it.
 */
export async function writeAdapterFolder(
  dir: string,
  content: { tensors: TensorData; peftConfig: Record<string, unknown> | null; sidecar: AdapterSidecarInput },
): Promise<WrittenFile[]> {
  const { peftConfig } = content;
  if (peftConfig) checkPeftConfig(peftConfig);
  const sidecar = AdapterSidecarSchema.parse(content.sidecar);
  await fs.promises.mkdir(dir, { recursive: true });
  const files: [string, Uint8Array | string][] = [
    [ADAPTER_WEIGHTS_FILE, serializeSafetensors(content.tensors, { format: 'pt' })],
    ...(peftConfig ? [[ADAPTER_CONFIG_FILE, `${JSON.stringify(peftConfig, null, 2)}\n`] as [string, string]] : []),
    [SIDECAR_FILE, `${JSON.stringify(sidecar, null, 2)}\n`],
  ];
  // A stale adapter_config.json from an earlier write would make PEFT misread a folder it cannot load.
  if (!peftConfig) await fs.promises.rm(path.join(dir, ADAPTER_CONFIG_FILE), { force: true });
  for (const [name, content] of files) await writeFileAtomic(path.join(dir, name), content);
  return files.map(([name, content]) => ({ name, bytes: typeof content === 'string' ? Buffer.byteLength(content) : content.byteLength }));
}

/** Reads and checks the sidecar of an adapter or checkpoint folder. */
export function readSidecar(dir: string): Promise<AdapterSidecar> {
  return readCheckedJson(path.join(dir, SIDECAR_FILE), AdapterSidecarSchema, {
    whenMissing: `${dir} has no ${SIDECAR_FILE}: it is not an adapter or checkpoint folder the workbench wrote.`,
    what: 'is not a workbench adapter description',
  });
}

/** Whether `dir` holds a flattened form beside its native adapter (a finished SeLoRA or multi-task run). */
export function hasFlattenedForm(dir: string): boolean {
  return fs.existsSync(path.join(dir, FLATTENED_ADAPTER_DIR, SIDECAR_FILE));
}
