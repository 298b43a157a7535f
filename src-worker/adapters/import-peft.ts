// A PEFT LoRA folder trained elsewhere (adapter_config.json + adapter_model.safetensors, as
// save_pretrained writes it) checked against a base model and rewritten as a workbench adapter
// folder: the same tensors under the same keys, a LoRA sidecar and a probe, so that the Playground,
// evaluations, SG-LoRA's bank, merge and export read it like any trained LoRA.
//
// PEFT's semantics (peft/tuners/lora/config.py, layer.py, tuners_utils.py) that the checks follow:
//   - target_modules: a list matches a module whose name equals an entry or ends with "." + entry; a
//     string is re.fullmatch-ed against the full module name;
//   - scaling = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora;
//   - fan_in_fan_out only says how the base weight is stored (GPT-2's Conv1D: [in, out]); lora_A is
//     [r, in] and lora_B [out, r] either way, and PEFT corrects the flag to the layer it wraps, so it is
//     read but changes nothing here;
//   - tensors are saved without the adapter name: base_model.model.<module>.lora_A.weight.
// What the workbench's LoRA layer cannot hold is refused with the reason: other PEFT types (by name),
// DoRA, trained biases, modules_to_save (whole replaced modules), per-module ranks or alphas, LoRA on
// embeddings or on layers the model has no linear module for.
import fs from 'node:fs';
import path from 'node:path';
import { RunConfigSchema, type LoraSettings } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { ImportAdapterJob, WorkerToMain } from '../../src-shared/worker-protocol.ts';
import { initBackend } from '../backend.ts';
import { writeUntrainedLora } from '../export/write-adapter.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from '../formats/adapter-folder.ts';
import { maxAbsDiff, probeLogits, syntheticProbe } from '../export/probe.ts';
import { loadCausalLM } from '../formats/model-folder.ts';
import { readSafetensorsFile } from '../formats/safetensors.ts';
import { LoraModel, selectTargets } from '../methods/lora.ts';
import type { LinearModule } from '../models/types.ts';

type AdapterImported = Extract<WorkerToMain, { type: 'adapter-imported' }>;

/** Names PEFT's other adapter types go by, for the refusal message. */
const PEFT_TYPE_NAMES: Record<string, string> = {
  LOHA: 'LoHa',
  LOKR: 'LoKr',
  IA3: 'IA3',
  ADALORA: 'AdaLoRA',
  BOFT: 'BOFT',
  OFT: 'OFT',
  VERA: 'VeRA',
  FOURIERFT: 'FourierFT',
  PROMPT_TUNING: 'prompt tuning',
  PREFIX_TUNING: 'prefix tuning',
  P_TUNING: 'P-tuning',
  MULTITASK_PROMPT_TUNING: 'multitask prompt tuning',
  ADAPTION_PROMPT: 'adaption prompt',
  LN_TUNING: 'LayerNorm tuning',
  HRA: 'HRA',
  XLORA: 'X-LoRA',
  BONE: 'Bone',
  VBLORA: 'VB-LoRA',
  CPT: 'CPT',
  RANDLORA: 'RandLoRA',
  SHIRA: 'SHiRA',
  C3A: 'C3A',
  MISS: 'MiSS',
  ROAD: 'RoAd',
};

const KEY = /^base_model\.model\.(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$/;

function refuse(message: string, details: Record<string, unknown> = {}): never {
  throw new WorkbenchError('invalid_input', message, details);
}

const isEmpty = (v: unknown) =>
  v === undefined || v === null || v === false || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && Object.keys(v).length === 0);

/** adapter_config.json read and checked for what the workbench's LoRA layer can hold. */
export async function readPeftLoraConfig(dir: string): Promise<Record<string, unknown>> {
  const file = path.join(dir, ADAPTER_CONFIG_FILE);
  let config: unknown;
  try {
    config = JSON.parse(await fs.promises.readFile(file, 'utf8'));
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new WorkbenchError(
      missing ? 'not_found' : 'format_invalid',
      missing
        ? `${dir} has no ${ADAPTER_CONFIG_FILE}: pick the folder PEFT's save_pretrained wrote (adapter_config.json + adapter_model.safetensors).`
        : `${file} is not valid JSON: ${(error as Error).message}`,
      { file },
    );
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) refuse(`${file} does not hold a JSON object.`, { file });
  const c = config as Record<string, unknown>;
  const type = String(c.peft_type ?? '');
  if (type !== 'LORA') {
    const name = PEFT_TYPE_NAMES[type] ?? (type || 'no peft_type');
    refuse(
      `${file} describes a ${name} adapter (peft_type ${JSON.stringify(c.peft_type ?? null)}); only PEFT LoRA adapters (peft_type "LORA") can be imported.`,
      { file, peftType: c.peft_type ?? null },
    );
  }
  if (c.use_dora === true)
    refuse(
      `${file} describes a DoRA adapter (use_dora: true): DoRA's magnitude vectors have no counterpart in the workbench's LoRA layer; only plain LoRA imports.`,
      { file, peftType: 'DoRA' },
    );
  if (!isEmpty(c.modules_to_save)) {
    refuse(
      `${file} lists modules_to_save ${JSON.stringify(c.modules_to_save)}: the adapter replaces those modules whole (e.g. a trained classification head), which a LoRA adapter in the workbench cannot hold. Re-save it without modules_to_save, or merge it in PEFT and import the merged model as a model folder.`,
      { file, field: 'modules_to_save' },
    );
  }
  if (c.bias !== undefined && c.bias !== 'none')
    refuse(
      `${file} has bias ${JSON.stringify(c.bias)}: the adapter trained base-layer biases too, which the workbench's LoRA layer does not hold; only bias "none" imports.`,
      { file, field: 'bias' },
    );
  if (c.lora_bias === true)
    refuse(`${file} has lora_bias: true (a bias on lora_B), which the workbench's LoRA layer does not hold.`, { file, field: 'lora_bias' });
  for (const field of ['rank_pattern', 'alpha_pattern'] as const) {
    if (!isEmpty(c[field]))
      refuse(
        `${file} sets ${field} ${JSON.stringify(c[field])}: per-module ranks or alphas are not supported; only one r and lora_alpha for every module imports.`,
        { file, field },
      );
  }
  // Newer LoRA variants that change the forward itself: activated LoRA, LoRA on raw parameters, layer replication.
  for (const field of ['alora_invocation_tokens', 'target_parameters', 'layer_replication', 'use_qalora'] as const) {
    if (!isEmpty(c[field]))
      refuse(`${file} sets ${field} ${JSON.stringify(c[field])}, a LoRA variant the workbench's LoRA layer does not compute; only plain LoRA imports.`, {
        file,
        field,
      });
  }
  if (!isEmpty(c.trainable_token_indices))
    refuse(`${file} trains token embeddings (trainable_token_indices), which the workbench's LoRA layer does not hold.`, {
      file,
      field: 'trainable_token_indices',
    });
  if (!Number.isInteger(c.r) || (c.r as number) < 1) refuse(`${file}: r must be a positive integer (found ${JSON.stringify(c.r)}).`, { file, field: 'r' });
  if (typeof c.lora_alpha !== 'number' || !(c.lora_alpha > 0))
    refuse(`${file}: lora_alpha must be a positive number (found ${JSON.stringify(c.lora_alpha)}).`, { file, field: 'lora_alpha' });
  const targets = c.target_modules;
  if (!(typeof targets === 'string' || (Array.isArray(targets) && targets.length > 0 && targets.every((t) => typeof t === 'string')))) {
    refuse(`${file}: target_modules must be a list of module names or a regular expression (found ${JSON.stringify(targets ?? null)}).`, {
      file,
      field: 'target_modules',
    });
  }
  return c;
}

/** The modules PEFT would wrap on this model for target_modules (a list by name or suffix, a string by full match). */
export function peftTargets(modules: LinearModule[], targetModules: string | string[]): LinearModule[] {
  if (typeof targetModules === 'string') {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${targetModules})$`);
    } catch (error) {
      return refuse(`target_modules ${JSON.stringify(targetModules)} is not a regular expression this workbench can read (${(error as Error).message}).`, {
        field: 'target_modules',
      });
    }
    return modules.filter((m) => re.test(m.path));
  }
  return modules.filter((m) => targetModules.some((t) => m.path === t || m.path.endsWith(`.${t}`)));
}

/**
 * The module paths the safetensors keys adapt, each with its lora_A and lora_B, in key order; keys
 * of another form (embeddings' lora_embedding_A, DoRA's magnitude, anything unknown) are refused.
 */
function modulesOfKeys(file: string, keys: string[]): Map<string, { A?: string; B?: string }> {
  const byModule = new Map<string, { A?: string; B?: string }>();
  const foreign: string[] = [];
  for (const key of keys) {
    const m = KEY.exec(key);
    if (!m) {
      foreign.push(key);
      continue;
    }
    const entry = byModule.get(m[1]!) ?? {};
    entry[m[2] as 'A' | 'B'] = key;
    byModule.set(m[1]!, entry);
  }
  if (foreign.length) {
    refuse(
      `${file} holds tensors a LoRA adapter of linear layers does not: ${foreign.slice(0, 4).join(', ')}${foreign.length > 4 ? ` and ${foreign.length - 4} more` : ''}.`,
      { file, tensors: foreign },
    );
  }
  const halves = [...byModule].filter(([, e]) => !e.A || !e.B).map(([p]) => p);
  if (halves.length) refuse(`${file} has lora_A without lora_B (or the reverse) for ${halves.join(', ')}.`, { file, modules: halves });
  if (!byModule.size) refuse(`${file} holds no LoRA tensors (base_model.model.<module>.lora_A.weight).`, { file });
  return byModule;
}

export async function importPeftAdapter(job: ImportAdapterJob, log?: (message: string) => void): Promise<AdapterImported> {
  const peft = await readPeftLoraConfig(job.sourceDir);
  const weightsFile = path.join(job.sourceDir, ADAPTER_WEIGHTS_FILE);
  if (!fs.existsSync(weightsFile)) {
    const legacy = fs.existsSync(path.join(job.sourceDir, 'adapter_model.bin'))
      ? ' It has adapter_model.bin: save it again with save_pretrained(..., safe_serialization=True).'
      : '';
    throw new WorkbenchError('not_found', `${job.sourceDir} has no ${ADAPTER_WEIGHTS_FILE}.${legacy}`, { file: weightsFile });
  }
  const { tensors } = await readSafetensorsFile(weightsFile);
  const byModule = modulesOfKeys(weightsFile, [...tensors.keys()]);
  const r = peft.r as number;
  const backend = await initBackend(job.backend, log);
  const model = await loadCausalLM(job.modelDir);
  try {
    const warnings: string[] = [];
    const hint = typeof peft.base_model_name_or_path === 'string' ? peft.base_model_name_or_path : null;
    const against = ` (adapter_config.json names ${hint ? `"${hint}"` : 'no base model'} as its base; checked against ${job.modelDir})`;
    const modules = model.linearModules();
    const byPath = new Map(modules.map((m) => [m.path, m]));
    const unknown = [...byModule.keys()].filter((p) => !byPath.has(p));
    if (unknown.length) {
      refuse(
        `The adapter adapts modules this base model has no linear layer for: ${unknown.slice(0, 4).join(', ')}${unknown.length > 4 ? ` and ${unknown.length - 4} more` : ''}${against}. Choose the model it was trained on.`,
        { modules: unknown, available: modules.map((m) => m.path) },
      );
    }
    for (const [modulePath, keys] of byModule) {
      const m = byPath.get(modulePath)!;
      const a = tensors.get(keys.A!)!.shape;
      const b = tensors.get(keys.B!)!.shape;
      if (a.join() !== `${r},${m.inFeatures}` || b.join() !== `${m.outFeatures},${r}`) {
        refuse(
          `${modulePath}: lora_A is [${a}] and lora_B [${b}], where r = ${r} on this model's ${m.inFeatures} -> ${m.outFeatures} layer needs [${r},${m.inFeatures}] and [${m.outFeatures},${r}]${against}.`,
          { module: modulePath },
        );
      }
    }
    // Which modules PEFT itself would wrap on this model: every one needs tensors, or PEFT would load it
    // with zero-initialised B there (and warn); tensors outside the selection PEFT would not load at all.
    const selected = peftTargets(modules, peft.target_modules as string | string[]).map((m) => m.path);
    const restricted = !isEmpty(peft.layers_to_transform) || !isEmpty(peft.exclude_modules);
    const untargeted = [...byModule.keys()].filter((p) => !selected.includes(p));
    if (untargeted.length)
      refuse(
        `target_modules ${JSON.stringify(peft.target_modules)} does not select ${untargeted.join(', ')}, which the tensors adapt: PEFT would not load them.`,
        { modules: untargeted },
      );
    const withoutTensors = selected.filter((p) => !byModule.has(p));
    if (withoutTensors.length && !restricted) {
      refuse(
        `target_modules ${JSON.stringify(peft.target_modules)} selects ${withoutTensors.slice(0, 4).join(', ')}${withoutTensors.length > 4 ? ` and ${withoutTensors.length - 4} more` : ''} on this model, but ${ADAPTER_WEIGHTS_FILE} has no weights for them${against}.`,
        { modules: withoutTensors },
      );
    }
    if (hint && path.basename(hint) !== path.basename(job.modelDir)) {
      warnings.push(`adapter_config.json names "${hint}" as the base model; key names and shapes match ${job.modelDir}, so it was imported against it.`);
    }
    if (peft.fan_in_fan_out !== undefined && Boolean(peft.fan_in_fan_out) !== modules.some((m) => byModule.has(m.path) && m.fanInFanOut)) {
      log?.(
        `fan_in_fan_out is ${String(peft.fan_in_fan_out)} in adapter_config.json; PEFT sets it from the layer type when loading, and so does the workbench.`,
      );
    }

    // The plainest target list that selects exactly the adapted modules (their own names when those
    // select nothing else), else the full module paths.
    const adapted = [...byModule.keys()];
    const selection = selectTargets(modules, adapted);
    const targetModules = Array.isArray(selection.peftTargetModules) ? selection.peftTargetModules : adapted;
    const dropout = typeof peft.lora_dropout === 'number' ? Math.min(Math.max(peft.lora_dropout, 0), 0.9) : 0;
    const lora: LoraSettings = { r, alpha: peft.lora_alpha as number, dropout, targetModules, useRslora: peft.use_rslora === true };
    const adapter = new LoraModel(model, lora, 0);
    try {
      adapter.loadStateDict(
        new Map(
          adapted.flatMap((p) => {
            const keys = byModule.get(p)!;
            // Keys are written back without any adapter name, as PEFT's save_pretrained writes them.
            return [
              [`base_model.model.${p}.lora_A.weight`, tensors.get(keys.A!)!],
              [`base_model.model.${p}.lora_B.weight`, tensors.get(keys.B!)!],
            ];
          }),
        ),
      );
      const probe = syntheticProbe(model.config.vocabSize);
      const logits = await probeLogits(model, adapter, probe);
      if (maxAbsDiff(logits.data, (await probeLogits(model, null, probe)).data) === 0) {
        warnings.push('The adapter changes no logit (its lora_B is zero, as PEFT initialises it): it was imported, but it does nothing until trained.');
      }
      const config = RunConfigSchema.parse({ name: job.name, model: job.baseModel, dataset: job.sourceDir, method: 'lora', lora, backend: job.backend });
      await writeUntrainedLora(adapter, job.outDir, { modelDir: job.modelDir, runId: job.runId, config, backend, probe, logits });
      return { type: 'adapter-imported', adapterDir: job.outDir, trainableParams: adapter.trainableParamCount(), settings: lora, warnings };
    } finally {
      adapter.dispose();
    }
  } finally {
    model.dispose();
  }
}
