// Model folders: what a valid one reports, the file a broken one is missing, both weight layouts
// (one file, or shards listed in model.safetensors.index.json), and the dispatch on model_type.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { inspectModelFolder, loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { readSafetensorsFile, serializeSafetensors } from '../../src-worker/formats/safetensors.ts';
import { tf } from '../../src-worker/tf.ts';

const fixtureDir = path.join(import.meta.dirname, '..', 'fixtures', 'gpt2-tiny');
const reference = JSON.parse(fs.readFileSync(path.join(fixtureDir, 'logits.json'), 'utf-8')) as { input_ids: number[][]; logits: number[] };
const FOLDER_FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];
const temps: string[] = [];

async function copyOfFixture(): Promise<string> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'lw-model-'));
  temps.push(dir);
  for (const name of FOLDER_FILES) await fs.promises.copyFile(path.join(fixtureDir, name), path.join(dir, name));
  return dir;
}

async function expectModelInvalid(promise: Promise<unknown>, pattern: RegExp): Promise<WorkbenchError> {
  const error = await promise.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(WorkbenchError);
  expect((error as WorkbenchError).code).toBe('model_invalid');
  expect((error as WorkbenchError).message).toMatch(pattern);
  return error as WorkbenchError;
}

async function maxDiffToReference(dir: string): Promise<number> {
  const model = await loadCausalLM(dir);
  const ids = tf.tensor2d(reference.input_ids, undefined, 'int32');
  const logits = model.forward(ids);
  const got = logits.dataSync();
  tf.dispose([ids, logits]);
  model.dispose();
  let max = 0;
  for (let i = 0; i < got.length; i++) max = Math.max(max, Math.abs(got[i]! - reference.logits[i]!));
  return max;
}

beforeAll(async () => {
  await initBackend('cpu');
});

afterEach(async () => {
  for (const dir of temps.splice(0)) await fs.promises.rm(dir, { recursive: true, force: true });
});

describe('inspectModelFolder', () => {
  it('reports type, parameter count and files of a valid folder', async () => {
    const info = await inspectModelFolder(fixtureDir);
    expect(info.modelType).toBe('gpt2');
    // wte 264x32 + wpe 32x32 + 2 layers x (2 LayerNorms 4x32 + c_attn 32x96+96 + c_proj 32x32+32 + c_fc 32x128+128 + c_proj 128x32+32) + ln_f 2x32
    const perLayer = 4 * 32 + (32 * 96 + 96) + (32 * 32 + 32) + (32 * 128 + 128) + (128 * 32 + 32);
    expect(info.parameterCount).toBe(264 * 32 + 32 * 32 + 2 * perLayer + 2 * 32);
    expect(info.files.map((f) => f.name)).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    expect(info.files.find((f) => f.name === 'model.safetensors')!.bytes).toBe(fs.statSync(path.join(fixtureDir, 'model.safetensors')).size);
  });

  it('names each missing file', async () => {
    await expectModelInvalid(inspectModelFolder(path.join(os.tmpdir(), 'lw-no-such-folder')), /does not exist/);
    for (const [name, pattern] of [
      ['config.json', /no config\.json/],
      ['model.safetensors', /no model\.safetensors/],
      ['tokenizer.json', /no tokenizer\.json/],
    ] as const) {
      const dir = await copyOfFixture();
      await fs.promises.rm(path.join(dir, name));
      const error = await expectModelInvalid(inspectModelFolder(dir), pattern);
      expect(error.details).toMatchObject({ file: path.join(dir, name) });
    }
  });

  it('suggests converting a PyTorch-only checkpoint', async () => {
    const dir = await copyOfFixture();
    await fs.promises.rename(path.join(dir, 'model.safetensors'), path.join(dir, 'pytorch_model.bin'));
    await expectModelInvalid(inspectModelFolder(dir), /pytorch_model\.bin.*safe_serialization=True/);
  });
});

describe('sharded weights and checkpoint key layouts', () => {
  it('loads shards listed in model.safetensors.index.json and names a missing shard', async () => {
    const dir = await copyOfFixture();
    const { tensors } = await readSafetensorsFile(path.join(dir, 'model.safetensors'));
    await fs.promises.rm(path.join(dir, 'model.safetensors'));
    const names = [...tensors.keys()].sort();
    const shards = [names.slice(0, 10), names.slice(10)];
    const weightMap: Record<string, string> = {};
    for (const [i, shard] of shards.entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      await fs.promises.writeFile(path.join(dir, file), serializeSafetensors(new Map(shard.map((n) => [n, tensors.get(n)!]))));
      for (const n of shard) weightMap[n] = file;
    }
    await fs.promises.writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const info = await inspectModelFolder(dir);
    expect(info.weightFiles.map((f) => path.basename(f))).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(await maxDiffToReference(dir)).toBeLessThan(1e-4);

    await fs.promises.rm(path.join(dir, 'model-00002-of-00002.safetensors'));
    await expectModelInvalid(inspectModelFolder(dir), /missing the weight file model-00002-of-00002\.safetensors/);
  });

  it("loads the original GPT-2 layout: keys without 'transformer.', attn.bias buffers, an explicit tied lm_head", async () => {
    const dir = await copyOfFixture();
    const { tensors } = await readSafetensorsFile(path.join(dir, 'model.safetensors'));
    const renamed = new Map<string, { shape: number[]; data: Float32Array }>([...tensors].map(([k, t]) => [k.replace(/^transformer\./, ''), t]));
    const mask = { shape: [1, 1, 32, 32], data: new Float32Array(32 * 32).fill(1) };
    renamed.set('h.0.attn.bias', mask);
    renamed.set('h.1.attn.bias', mask);
    renamed.set('h.0.attn.masked_bias', { shape: [], data: new Float32Array([-1e4]) });
    renamed.set('lm_head.weight', tensors.get('transformer.wte.weight')!);
    await fs.promises.writeFile(path.join(dir, 'model.safetensors'), serializeSafetensors(renamed));
    const info = await inspectModelFolder(dir);
    // Buffers are not parameters; the duplicated head is (it is stored).
    expect(info.parameterCount).toBe((await inspectModelFolder(fixtureDir)).parameterCount + 264 * 32);
    expect(await maxDiffToReference(dir)).toBeLessThan(1e-4);
  });
});

describe('loadCausalLM', () => {
  it('lists the supported model types for an unknown one', async () => {
    const dir = await copyOfFixture();
    const config = JSON.parse(await fs.promises.readFile(path.join(dir, 'config.json'), 'utf-8'));
    await fs.promises.writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...config, model_type: 'mamba' }));
    const error = await expectModelInvalid(loadCausalLM(dir), /model_type "mamba" is not supported; supported model types: gpt2/);
    expect(error.details).toMatchObject({ supported: ['gpt2', 'llama', 'qwen2', 'mistral'] });
  });

  it('names the tensor whose shape disagrees with config.json', async () => {
    const dir = await copyOfFixture();
    const config = JSON.parse(await fs.promises.readFile(path.join(dir, 'config.json'), 'utf-8'));
    await fs.promises.writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...config, n_positions: 64 }));
    await expectModelInvalid(loadCausalLM(dir), /transformer\.wpe\.weight has shape \[32,32\], expected \[64,32\]/);
  });
});
