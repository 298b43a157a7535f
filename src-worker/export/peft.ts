// Adapters on disk in Hugging Face PEFT's layout, so `PeftModel.from_pretrained(base, folder)` loads
// them as they are:
//   adapter_model.safetensors  base_model.model.<module>.lora_A.weight [r, in], .lora_B.weight [out, r]
//                              (no adapter name in the keys: PEFT inserts "default" when loading),
//                              metadata {"format": "pt"} as PEFT's save_pretrained writes it
//   adapter_config.json        LoraConfig fields only (older PEFT versions reject unknown keys)
//   workbench_adapter.json     what PEFT has no field for: method, run, training settings, backend, step
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { RunConfigSchema, type RunConfig } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { settingsSectionsOf } from '../../src-shared/methods.ts';
import { BackendInfoSchema, type ExportReport } from '../../src-shared/runs.ts';
import type { ExportJob } from '../../src-shared/worker-protocol.ts';
import { initBackend } from '../backend.ts';
import { loadCausalLM } from '../formats/model-folder.ts';
import { parseSafetensors, readSafetensorsFile, readSafetensorsHeader, serializeSafetensors, writeFileAtomic } from '../formats/safetensors.ts';
import { getMethod } from '../methods/index.ts';
import type { AdapterModel } from '../methods/types.ts';
import { exportFlattenedForm } from './flatten.ts';
import { exportMerged } from './merged.ts';
import { maxAbsDiff, probeLogits, readProbe, type Probe } from './probe.ts';

export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const SIDECAR_FILE = 'workbench_adapter.json';

/**
 * Every field of PEFT's PeftConfig + LoraConfig (peft/config.py, peft/tuners/lora/config.py, up to
 * PEFT 0.17). adapter_config.json may hold only these.
 */
export const PEFT_LORA_CONFIG_FIELDS: ReadonlySet<string> = new Set([
  // PeftConfigMixin / PeftConfig
  'peft_type', 'task_type', 'base_model_name_or_path', 'revision', 'inference_mode', 'auto_mapping',
  // LoraConfig
  'r', 'target_modules', 'exclude_modules', 'lora_alpha', 'lora_dropout', 'fan_in_fan_out', 'bias', 'use_rslora',
  'modules_to_save', 'init_lora_weights', 'layers_to_transform', 'layers_pattern', 'rank_pattern', 'alpha_pattern',
  'megatron_config', 'megatron_core', 'loftq_config', 'use_dora', 'layer_replication', 'runtime_config', 'lora_bias',
  'eva_config', 'corda_config', 'trainable_token_indices', 'use_qalora', 'qalora_group_size', 'target_parameters',
]);

/**
 * Every field of PEFT's PromptTuningConfig (peft/tuners/prompt_tuning/config.py and its
 * PromptLearningConfig base, up to PEFT 0.17), besides PeftConfig's.
 */
export const PEFT_PROMPT_TUNING_CONFIG_FIELDS: ReadonlySet<string> = new Set([
  'peft_type', 'task_type', 'base_model_name_or_path', 'revision', 'inference_mode', 'auto_mapping',
  // PromptLearningConfig
  'num_virtual_tokens', 'token_dim', 'num_transformer_submodules', 'num_attention_heads', 'num_layers', 'modules_to_save',
  // PromptTuningConfig
  'prompt_tuning_init', 'prompt_tuning_init_text', 'tokenizer_name_or_path', 'tokenizer_kwargs',
]);

const PEFT_CONFIG_FIELDS: Record<string, ReadonlySet<string>> = { LORA: PEFT_LORA_CONFIG_FIELDS, PROMPT_TUNING: PEFT_PROMPT_TUNING_CONFIG_FIELDS };

export const AdapterSidecarSchema = z.object({
  format: z.literal('lora-workbench-adapter'),
  version: z.literal(1),
  method: z.string(),
  runId: z.string(),
  step: z.number().int(),
  trainableParams: z.number().int(),
  /** The whole run configuration: method settings (config[method]), training settings, seed. */
  config: RunConfigSchema,
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
  if (!fields) throw new WorkbenchError('internal', `adapter_config.json has peft_type ${JSON.stringify(config.peft_type)}; the workbench writes only ${Object.keys(PEFT_CONFIG_FIELDS).join(', ')}.`);
  const unknown = Object.keys(config).filter((k) => !fields.has(k));
  if (unknown.length > 0) {
    throw new WorkbenchError('internal', `adapter_config.json would hold keys PEFT does not know: ${unknown.join(', ')}; they belong in ${SIDECAR_FILE}.`, { unknown });
  }
}

export interface WrittenFile {
  name: string;
  bytes: number;
}

/** Reads a tfjs tensor map into plain arrays (disposing the tensors: stateDict returns fresh ones). */
export async function tensorsToData(tensors: Map<string, { shape: number[]; data(): Promise<unknown>; dispose(): void }>): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  try {
    for (const [name, t] of tensors) out.set(name, { shape: [...t.shape], data: Float32Array.from((await t.data()) as Float32Array) });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  return out;
}

/**
 * Writes the adapter's tensors, its adapter_config.json and the sidecar into `dir` (created if
 * needed). Each file is replaced atomically; callers that need the folder as a whole to appear at
 * once write into a temporary folder and rename it.
 */
export async function writePeftAdapter(
  adapter: AdapterModel,
  dir: string,
  options: { baseModelNameOrPath: string; sidecar: AdapterSidecar },
): Promise<WrittenFile[]> {
  const peftConfig = adapter.peftLoadable === false ? null : adapter.peftConfig(options.baseModelNameOrPath);
  if (peftConfig) checkPeftConfig(peftConfig);
  const tensors = await tensorsToData(adapter.stateDict());
  for (const name of tensors.keys()) {
    if (!/^base_model\.model\..+\.lora_[AB]\.weight$/.test(name) && !adapter.extraStateKeys?.has(name)) {
      throw new WorkbenchError('internal', `Adapter tensor ${name} is not named as PEFT stores LoRA weights (base_model.model.<module>.lora_A.weight).`);
    }
  }
  const sidecar = AdapterSidecarSchema.parse(options.sidecar);
  await fs.promises.mkdir(dir, { recursive: true });
  const files: [string, Uint8Array | string][] = [
    [ADAPTER_WEIGHTS_FILE, serializeSafetensors(tensors, { format: 'pt' })],
    ...(peftConfig ? [[ADAPTER_CONFIG_FILE, `${JSON.stringify(peftConfig, null, 2)}\n`] as [string, string]] : []),
    [SIDECAR_FILE, `${JSON.stringify(sidecar, null, 2)}\n`],
  ];
  // A stale adapter_config.json from an earlier write would make PEFT misread a folder it cannot load.
  if (!peftConfig) await fs.promises.rm(path.join(dir, ADAPTER_CONFIG_FILE), { force: true });
  for (const [name, content] of files) await writeFileAtomic(path.join(dir, name), content);
  return files.map(([name, content]) => ({ name, bytes: typeof content === 'string' ? Buffer.byteLength(content) : content.byteLength }));
}

/** Reads and checks the sidecar of an adapter or checkpoint folder. */
export async function readSidecar(dir: string): Promise<AdapterSidecar> {
  const file = path.join(dir, SIDECAR_FILE);
  let json: unknown;
  try {
    json = JSON.parse(await fs.promises.readFile(file, 'utf8'));
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new WorkbenchError(
      missing ? 'not_found' : 'format_invalid',
      missing ? `${dir} has no ${SIDECAR_FILE}: it is not an adapter or checkpoint folder the workbench wrote.` : `${file} is not valid JSON: ${(e as Error).message}`,
      { file },
    );
  }
  const parsed = AdapterSidecarSchema.safeParse(json);
  if (!parsed.success) {
    throw new WorkbenchError('format_invalid', `${file} is not a workbench adapter description: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, { file });
  }
  return parsed.data;
}

/** Verification thresholds: the round trip must be exact up to float noise, the adapter must do something. */
export const MAX_DIFF_TO_TRAINED = 1e-5;
export const MIN_DIFF_TO_BASE = 1e-4;

/**
 * The settings a method reads from a run configuration: RunConfig[settingsKey] for a method with one
 * section (LoRA, so its checkpoints compare as before), else { [settingsKey]: section } for each
 * section, base method's first (LoRA+: { lora, loraPlus }).
 */
export function methodSettingsOf(config: RunConfig): unknown {
  const sections = settingsSectionsOf(config.method);
  if (sections.length === 0) throw new WorkbenchError('invalid_input', `Unknown method "${config.method}".`, { method: config.method });
  if (sections.length === 1) return config[sections[0]!.settingsKey];
  return Object.fromEntries(sections.map((s) => [s.settingsKey, config[s.settingsKey]]));
}

/** Probe inputs of a checkpoint (trainer_state.json), or fixed ids spread over the vocabulary. */
async function fallbackProbe(dir: string, vocabSize: number): Promise<Probe> {
  try {
    const state = JSON.parse(await fs.promises.readFile(path.join(dir, 'trainer_state.json'), 'utf8')) as { probeInputIds?: unknown };
    const ids = z.array(z.array(z.number().int().min(0).max(vocabSize - 1)).min(1)).min(1).parse(state.probeInputIds);
    if (ids.every((row) => row.length === ids[0]!.length)) return { inputIds: ids };
  } catch {
    // No usable trainer state: fall through to synthetic ids.
  }
  return { inputIds: [Array.from({ length: 16 }, (_, i) => (i * 7919 + 13) % vocabSize)] };
}

/**
 * Copies an adapter (final folder or checkpoint) to job.outDir in PEFT layout and proves the copy:
 * the written files, read back into a fresh adapter on the base model, must reproduce the trained
 * model's logits on the probe inputs, and must differ from the base model's.
 */
export async function exportAdapter(job: ExportJob, log?: (message: string) => void): Promise<ExportReport> {
  const sourceDir = path.resolve(job.sourceDir);
  const outDir = path.resolve(job.outDir);
  if (sourceDir === outDir) throw new WorkbenchError('invalid_input', 'Export to a folder other than the adapter\'s own.', { outDir });
  const redirected = await exportFlattenedForm(job, sourceDir, log);
  if (redirected) return redirected;
  const backend = await initBackend(job.backend, log);
  const sidecar = await readSidecar(sourceDir);
  const sourceFiles = new Map<string, Uint8Array>();
  // Methods PEFT has no type for (Houlsby, BitFit, full fine-tuning) write no adapter_config.json.
  const peftLoadable = fs.existsSync(path.join(sourceDir, ADAPTER_CONFIG_FILE));
  for (const name of [ADAPTER_WEIGHTS_FILE, ...(peftLoadable ? [ADAPTER_CONFIG_FILE] : []), SIDECAR_FILE]) {
    try {
      sourceFiles.set(name, await fs.promises.readFile(path.join(sourceDir, name)));
    } catch {
      throw new WorkbenchError('not_found', `${sourceDir} has no ${name}; export from a finished adapter or a complete checkpoint.`, { file: path.join(sourceDir, name) });
    }
  }
  const sourceTensors = parseSafetensors(sourceFiles.get(ADAPTER_WEIGHTS_FILE)!, path.join(sourceDir, ADAPTER_WEIGHTS_FILE)).tensors;
  if (peftLoadable) checkPeftConfig(JSON.parse(new TextDecoder().decode(sourceFiles.get(ADAPTER_CONFIG_FILE)!)) as Record<string, unknown>);

  const model = await loadCausalLM(job.modelDir);
  try {
    const method = getMethod(sidecar.method);
    const settings = method.parseSettings(methodSettingsOf(sidecar.config));
    const adaptedLogits = async (tensors: Map<string, { shape: number[]; data: Float32Array }>, probe: Probe) => {
      const adapter = method.create(model, settings, sidecar.config.training.seed);
      try {
        adapter.loadStateDict(tensors);
        return await probeLogits(model, adapter, probe);
      } finally {
        adapter.dispose();
      }
    };

    // The reference: the trained model's own logits when they were computed on this backend; else
    // (a checkpoint, or another backend whose kernels round differently) the source tensors' logits here.
    const saved = await readProbe(sourceDir);
    let probe: Probe;
    let reference: { shape: number[]; data: Float32Array };
    if (saved && saved.backend === backend.name) {
      probe = saved.probe;
      reference = saved.logits;
    } else {
      probe = saved?.probe ?? (await fallbackProbe(sourceDir, model.config.vocabSize));
      reference = await adaptedLogits(sourceTensors, probe);
    }

    if (job.format === 'merged') {
      if (!peftLoadable) throw new WorkbenchError('invalid_input', `A ${sidecar.method} adapter cannot be exported merged (only LoRA-family adapters fold into the base weights); export it with format "peft".`, { field: 'format' });
      const adapter = method.create(model, settings, sidecar.config.training.seed);
      try {
        adapter.loadStateDict(sourceTensors);
        return await exportMerged({ sourceDir, modelDir: job.modelDir, outDir }, model, adapter, probe, log);
      } finally {
        adapter.dispose();
      }
    }
    await fs.promises.mkdir(outDir, { recursive: true });
    const files: WrittenFile[] = [];
    for (const [name, bytes] of sourceFiles) {
      await writeFileAtomic(path.join(outDir, name), bytes);
      files.push({ name, bytes: bytes.byteLength });
    }
    const removeWritten = () => Promise.all(files.map((f) => fs.promises.rm(path.join(outDir, f.name), { force: true })));
    try {
      const written = await readSafetensorsFile(path.join(outDir, ADAPTER_WEIGHTS_FILE));
      if (peftLoadable) checkPeftConfig(JSON.parse(await fs.promises.readFile(path.join(outDir, ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>);
      else await fs.promises.rm(path.join(outDir, ADAPTER_CONFIG_FILE), { force: true });
      await readSidecar(outDir);
      const exported = await adaptedLogits(written.tensors, probe);
      const base = await probeLogits(model, null, probe);
      const maxAbsDiffToTrained = maxAbsDiff(exported.data, reference.data);
      const maxAbsDiffToBase = maxAbsDiff(exported.data, base.data);
      if (!(maxAbsDiffToTrained <= MAX_DIFF_TO_TRAINED)) {
        throw new WorkbenchError(
          'export_mismatch',
          `The exported adapter does not reproduce the trained model: its logits differ by up to ${maxAbsDiffToTrained.toExponential(2)} (allowed ${MAX_DIFF_TO_TRAINED}). Nothing was exported; export again, and report a bug if this persists.`,
          { maxAbsDiffToTrained, maxAbsDiffToBase },
        );
      }
      if (!(maxAbsDiffToBase > MIN_DIFF_TO_BASE)) {
        throw new WorkbenchError(
          'export_mismatch',
          `The exported adapter equals the base model (its logits differ from the base model's by at most ${maxAbsDiffToBase.toExponential(2)}): it would change nothing. Train for more steps or with a higher learning rate, then export again.`,
          { maxAbsDiffToTrained, maxAbsDiffToBase },
        );
      }
      const note = peftLoadable
        ? undefined
        : `PEFT cannot load this folder: it has no adapter type for ${sidecar.method}. ${ADAPTER_WEIGHTS_FILE} holds the native tensors and ${SIDECAR_FILE} the settings; load it with lora-workbench.`;
      return { outDir, files, verification: { maxAbsDiffToTrained, maxAbsDiffToBase, passed: true }, peftLoadable, ...(note ? { note } : {}) };
    } catch (error) {
      await removeWritten();
      throw error;
    }
  } finally {
    model.dispose();
  }
}
