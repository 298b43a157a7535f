// A Hugging Face model folder: config.json, weights in safetensors (one file or shards listed by
// model.safetensors.index.json) and tokenizer.json. Checked up front so that a bad folder fails with
// the name of the missing or broken file instead of halfway through loading.
import fs from 'node:fs';
import path from 'node:path';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { CausalLM } from '../models/types.ts';
import { bertConfigFromHF, createBert, type BertEncoder } from '../models/bert.ts';
import { createGPT2, gpt2ConfigFromHF } from '../models/gpt2.ts';
import { createLlama, llamaConfigFromHF } from '../models/llama.ts';
import type { WeightData } from '../models/random-weights.ts';
import { halfStorable } from './half-bits.ts';
import { numel, readSafetensorsFile, readSafetensorsHeader } from './safetensors.ts';
import { tokenizerFilesIn } from './tokenizer.ts';

export interface ModelFolderInfo {
  modelType: string;
  /** Parameters in the weight files, not counting buffers such as GPT-2's attn.bias causal mask. */
  parameterCount: number;
  /** Of those, the ones stored F16 or BF16 that a model may hold 16-bit (half-bits.ts halfStorable). */
  halfParams: number;
  /** The ones a model would hold 16-bit if the checkpoint were F16 or BF16 (its block matrices), whatever their dtype. */
  halfStorableParams: number;
  /** The files the model is made of, relative to the folder. */
  files: { name: string; bytes: number }[];
  /** Safetensors files holding the weights, absolute paths. */
  weightFiles: string[];
  /** config.json as parsed. */
  config: Record<string, unknown>;
}

type Loader = (dir: string, info: ModelFolderInfo) => Promise<CausalLM>;
const weightSource = (dir: string, info: ModelFolderInfo) => (info.weightFiles.length === 1 ? info.weightFiles[0]! : dir);
// One loader for the Llama family: Qwen2 differs by its q/k/v biases, Mistral by its sliding window (llama.ts).
const loadLlama: Loader = async (dir, info) =>
  createLlama(llamaConfigFromHF(info.config, path.join(dir, 'config.json')), await readWeights(info.weightFiles), weightSource(dir, info));
const loaders: Record<string, Loader> = {
  gpt2: async (dir, info) => {
    const config = gpt2ConfigFromHF(info.config, path.join(dir, 'config.json'));
    return createGPT2(config, await readWeights(info.weightFiles), weightSource(dir, info));
  },
  llama: loadLlama,
  qwen2: loadLlama,
  mistral: loadLlama,
};
export const supportedModelTypes = Object.keys(loaders);
// Encoders (masked LMs, sentence embedders) are not CausalLMs: they load through loadEncoder.
const encoderLoaders: Record<string, (dir: string, info: ModelFolderInfo) => Promise<BertEncoder>> = {
  bert: async (dir, info) =>
    createBert(bertConfigFromHF(info.config, path.join(dir, 'config.json')), await readWeights(info.weightFiles), weightSource(dir, info)),
};
export const supportedEncoderTypes = Object.keys(encoderLoaders);

// GPT-2's causal mask and its fill value; Llama's RoPE inverse frequencies in older checkpoints; BERT's position_ids.
const BUFFER_KEY = /(^|\.)attn\.(masked_)?bias$|\.rotary_emb\.inv_freq$|(^|\.)embeddings\.position_ids$/;

/** config.json sizes that each count weights (layers, widths, heads, vocabulary, learned positions). */
const WEIGHT_SIZE_KEYS = [
  'n_layer',
  'num_hidden_layers',
  'n_embd',
  'hidden_size',
  'n_head',
  'num_attention_heads',
  'num_key_value_heads',
  'n_inner',
  'intermediate_size',
  'vocab_size',
  'n_positions',
];

function invalid(message: string, file: string): never {
  throw new WorkbenchError('model_invalid', message, { file });
}

async function statFile(dir: string, name: string): Promise<fs.Stats | null> {
  try {
    const stat = await fs.promises.stat(path.join(dir, name));
    return stat.isFile() ? stat : null;
  } catch {
    return null;
  }
}

async function readJsonObject(file: string): Promise<Record<string, unknown>> {
  let json: unknown;
  try {
    json = JSON.parse(await fs.promises.readFile(file, 'utf-8'));
  } catch (error) {
    throw new WorkbenchError('format_invalid', `${file} is not valid JSON: ${(error as Error).message}`, { file });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new WorkbenchError('format_invalid', `${file} does not hold a JSON object`, { file });
  }
  return json as Record<string, unknown>;
}

/** Checks a model folder without loading its weights (only the safetensors headers are read). */
export async function inspectModelFolder(dir: string): Promise<ModelFolderInfo> {
  const dirStat = await fs.promises.stat(dir).catch(() => null);
  if (!dirStat?.isDirectory()) invalid(`Model folder ${dir} does not exist or is not a folder.`, dir);

  const files: { name: string; bytes: number }[] = [];
  const configStat = await statFile(dir, 'config.json');
  if (!configStat)
    invalid(
      `${dir} has no config.json: a model folder is what save_pretrained writes (config.json, model.safetensors, tokenizer.json).`,
      path.join(dir, 'config.json'),
    );
  const config = await readJsonObject(path.join(dir, 'config.json'));
  files.push({ name: 'config.json', bytes: configStat.size });
  const modelType = config.model_type;
  if (typeof modelType !== 'string' || !modelType) {
    invalid(`${path.join(dir, 'config.json')} has no "model_type"; supported model types: ${supportedModelTypes.join(', ')}.`, path.join(dir, 'config.json'));
  }

  const weightNames: string[] = [];
  const single = await statFile(dir, 'model.safetensors');
  if (single) {
    weightNames.push('model.safetensors');
  } else if (await statFile(dir, 'model.safetensors.index.json')) {
    const indexFile = path.join(dir, 'model.safetensors.index.json');
    const index = await readJsonObject(indexFile);
    const weightMap = index.weight_map;
    if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) invalid(`${indexFile} has no "weight_map" object.`, indexFile);
    const shards = [...new Set(Object.values(weightMap as Record<string, unknown>))];
    if (!shards.length || shards.some((s) => typeof s !== 'string' || s.includes('/') || s.includes('\\'))) {
      invalid(`${indexFile}: "weight_map" must map tensor names to shard file names in the same folder.`, indexFile);
    }
    files.push({ name: 'model.safetensors.index.json', bytes: (await statFile(dir, 'model.safetensors.index.json'))!.size });
    weightNames.push(...(shards as string[]).sort());
  } else {
    const legacy = (await statFile(dir, 'pytorch_model.bin'))
      ? ' It has pytorch_model.bin: re-save the model with save_pretrained(..., safe_serialization=True) to get safetensors.'
      : '';
    invalid(`${dir} has no model.safetensors (nor a sharded model.safetensors.index.json).${legacy}`, path.join(dir, 'model.safetensors'));
  }

  let parameterCount = 0;
  let halfParams = 0;
  let halfStorableParams = 0;
  for (const name of weightNames) {
    const stat = await statFile(dir, name);
    if (!stat) invalid(`${dir} is missing the weight file ${name}.`, path.join(dir, name));
    const header = await readSafetensorsHeader(path.join(dir, name));
    for (const [key, entry] of header.entries) {
      if (BUFFER_KEY.test(key)) continue;
      parameterCount += numel(entry.shape);
      if (!halfStorable(key, entry.shape)) continue;
      halfStorableParams += numel(entry.shape);
      if (entry.dtype !== 'F32') halfParams += numel(entry.shape);
    }
    files.push({ name, bytes: stat.size });
  }

  // A size larger than the number of weights cannot describe these weights: `"n_layer": 1e12` once tried to
  // list a trillion expected tensors before any shape was compared.
  for (const key of WEIGHT_SIZE_KEYS) {
    const value = config[key];
    if (typeof value === 'number' && value > Math.max(parameterCount, 1)) {
      invalid(
        `${path.join(dir, 'config.json')}: "${key}" is ${value}, more than the ${parameterCount} weights of this folder hold; config.json does not belong to these weights.`,
        path.join(dir, 'config.json'),
      );
    }
  }

  // tokenizer.json, or a GPT-2-style vocab.json + merges.txt (older checkpoints) that tokenizer.ts converts.
  const tokenizerFiles = await tokenizerFilesIn(dir);
  if (!tokenizerFiles) {
    invalid(
      `${dir} has no tokenizer.json (nor a GPT-2 vocab.json + merges.txt pair). Save the "fast" tokenizer with AutoTokenizer.from_pretrained(...).save_pretrained(folder).`,
      path.join(dir, 'tokenizer.json'),
    );
  }
  for (const name of tokenizerFiles) files.push({ name, bytes: (await statFile(dir, name))!.size });
  const tokenizerConfigStat = await statFile(dir, 'tokenizer_config.json');
  if (tokenizerConfigStat) files.push({ name: 'tokenizer_config.json', bytes: tokenizerConfigStat.size });

  return { modelType, parameterCount, halfParams, halfStorableParams, files, weightFiles: weightNames.map((n) => path.join(dir, n)), config };
}

/** All tensors of one or more safetensors files in one map; a name in two shards is an error. */
export async function readWeights(weightFiles: string[]): Promise<Map<string, WeightData>> {
  const all = new Map<string, WeightData>();
  for (const file of weightFiles) {
    const { tensors } = await readSafetensorsFile(file);
    for (const [name, t] of tensors) {
      if (all.has(name)) throw new WorkbenchError('model_invalid', `Tensor ${name} appears in more than one shard (again in ${file}).`, { file, tensor: name });
      // As read: F16 and BF16 tensors keep their 16-bit values for the model to hold (kernels/half-weights.ts).
      all.set(name, t);
    }
  }
  return all;
}

/** Loads the model in `dir`, dispatching on config.json's model_type. */
export async function loadCausalLM(dir: string): Promise<CausalLM> {
  const info = await inspectModelFolder(dir);
  const load = loaders[info.modelType];
  if (!load) {
    throw new WorkbenchError(
      'model_invalid',
      `${path.join(dir, 'config.json')}: model_type "${info.modelType}" is not supported; supported model types: ${supportedModelTypes.join(', ')}.`,
      { file: path.join(dir, 'config.json'), modelType: info.modelType, supported: supportedModelTypes },
    );
  }
  return load(dir, info);
}

/** Loads the encoder in `dir` (BertForMaskedLM, BertModel or a sentence-transformers folder), by model_type. */
export async function loadEncoder(dir: string): Promise<BertEncoder> {
  const info = await inspectModelFolder(dir);
  const load = encoderLoaders[info.modelType];
  if (!load) {
    const hint = loaders[info.modelType] ? ' It is a decoder (causal LM); load it as the model to fine-tune instead.' : '';
    throw new WorkbenchError(
      'model_invalid',
      `${path.join(dir, 'config.json')}: model_type "${info.modelType}" is not a supported encoder; supported encoder types: ${supportedEncoderTypes.join(', ')}.${hint}`,
      { file: path.join(dir, 'config.json'), modelType: info.modelType, supported: supportedEncoderTypes },
    );
  }
  return load(dir, info);
}
