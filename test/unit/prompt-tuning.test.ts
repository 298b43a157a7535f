// Prompt tuning (METHODS.md section 6) as PEFT's PROMPT_TUNING: soft-prompt vectors prepended to the
// input embeddings. Checked: zero virtual tokens is the base model; a prompt made of real tokens'
// embeddings gives exactly the base model's outputs on those tokens followed by the input (so positions
// and masking follow PEFT); cached generation agrees with uncached; gradients against finite
// differences; and the exported folder holds PEFT's key and config fields only.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PromptTuningSettingsSchema } from '../../src-shared/config.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, PEFT_PROMPT_TUNING_CONFIG_FIELDS } from '../../src-worker/formats/adapter-folder.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { readSafetensorsFile } from '../../src-worker/formats/safetensors.ts';
import { generate } from '../../src-worker/generate.ts';
import { PROMPT_EMBEDDINGS_KEY, promptTuning, PromptTuningModel } from '../../src-worker/methods/prompt-tuning.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { checkGradients } from '../helpers/finite-differences.ts';
import { gpt2, IDS, llama, logitsOf, lossOf } from './baseline-models.ts';
import { maxAbsDiff } from '../../src-worker/export/probe.ts';
import { fixtureModelDir, tempRoot, trainTiny } from './method-run.ts';

const root = tempRoot('lwb-prompt-');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const settings = (numVirtualTokens: number) => ({ ...PromptTuningSettingsSchema.parse({}), numVirtualTokens });

const families: [string, () => CausalLM][] = [
  ['GPT-2', () => gpt2()],
  ['Llama', () => llama()],
];

describe.each(families)('prompt tuning on %s', (_family, makeModel) => {
  it('with zero virtual tokens is the base model', () => {
    const model = makeModel();
    const adapter = new PromptTuningModel(model, settings(0), 1);
    expect(logitsOf(model, adapter)).toEqual(logitsOf(model, null));
    adapter.dispose();
    model.dispose();
  });

  it('with the embeddings of real tokens equals the base model on those tokens followed by the input', () => {
    const model = makeModel();
    const prefix = [3, 17, 8];
    const adapter = new PromptTuningModel(model, settings(prefix.length), 1);
    adapter.initFromTokens(prefix);
    const V = model.config.vocabSize;
    const T = IDS[0]!.length;
    const adapted = logitsOf(model, adapter);
    const full = logitsOf(
      model,
      null,
      IDS.map((row) => [...prefix, ...row]),
    );
    const expected = new Float32Array(IDS.length * T * V);
    for (let b = 0; b < IDS.length; b++)
      expected.set(full.subarray((b * (T + prefix.length) + prefix.length) * V, (b + 1) * (T + prefix.length) * V), b * T * V);
    expect(adapted.length).toBe(expected.length);
    expect(maxAbsDiff(adapted, expected)).toBeLessThan(1e-5);
    // Not vacuous: the prefix changes the outputs.
    expect(maxAbsDiff(adapted, logitsOf(model, null))).toBeGreaterThan(1e-2);
    adapter.dispose();
    model.dispose();
  });

  it('generates the same tokens with and without the KV cache', async () => {
    const model = makeModel();
    const adapter = new PromptTuningModel(model, settings(4), 5);
    const cached = await generate(model, [1, 5, 9], { maxNewTokens: 6, adapters: adapter });
    const uncached = await generate(model, [1, 5, 9], { maxNewTokens: 6, adapters: adapter, useCache: false });
    expect(cached.tokens).toHaveLength(6);
    expect(cached.tokens).toEqual(uncached.tokens);
    adapter.dispose();
    model.dispose();
  });

  it.each(['cpu', 'wasm'] as const)('gradients match central finite differences on %s', async (backend) => {
    await initBackend(backend);
    const model = makeModel();
    const adapter = new PromptTuningModel(model, settings(3), 2);
    const { loss, dispose } = lossOf(model, adapter);
    expect(checkGradients(loss, adapter.trainable(), { entriesPerTensor: 4, rtol: 2e-2, atol: 2e-4 })).toBe(4);
    dispose();
    adapter.dispose();
    model.dispose();
    await initBackend('cpu');
  });
});

describe('prompt tuning settings and export', () => {
  it('counts n x d trainable parameters and refuses a text init without text', () => {
    const model = gpt2();
    const adapter = promptTuning.create(model, promptTuning.parseSettings({ numVirtualTokens: 5 }), 1);
    expect(adapter.trainableParamCount()).toBe(5 * 8);
    adapter.dispose();
    model.dispose();
    expect(() => promptTuning.parseSettings({ init: 'text', initText: '  ' })).toThrow(/promptTuning\.initText is empty/);
  });

  it('trains in a run and exports PEFT PROMPT_TUNING: prompt_embeddings [n, d] and PromptTuningConfig fields only', async () => {
    const run = await trainTiny(root, 'prompt', {
      method: 'prompt-tuning',
      promptTuning: { numVirtualTokens: 4, init: 'text', initText: 'animal sounds' },
      training: { learningRate: 5e-2, maxSteps: 12 },
    });
    expect(run.messages.find((m) => m.type === 'failed')).toBeUndefined();
    const adapterDir = path.join(run.runDir, 'adapter');
    const saved = await readSafetensorsFile(path.join(adapterDir, ADAPTER_WEIGHTS_FILE));
    expect([...saved.tensors.keys()]).toEqual([PROMPT_EMBEDDINGS_KEY]);
    expect(saved.tensors.get(PROMPT_EMBEDDINGS_KEY)!.shape).toEqual([4, 32]);
    const config = JSON.parse(fs.readFileSync(path.join(adapterDir, ADAPTER_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
    for (const key of Object.keys(config)) expect(PEFT_PROMPT_TUNING_CONFIG_FIELDS.has(key), key).toBe(true);
    expect(config).toEqual({
      peft_type: 'PROMPT_TUNING',
      task_type: 'CAUSAL_LM',
      num_virtual_tokens: 4,
      token_dim: 32,
      num_transformer_submodules: 1,
      num_attention_heads: 4,
      num_layers: 2,
      prompt_tuning_init: 'TEXT',
      prompt_tuning_init_text: 'animal sounds',
      tokenizer_name_or_path: fixtureModelDir,
      base_model_name_or_path: fixtureModelDir,
      revision: null,
      inference_mode: true,
    });
    const report = await run.exportTo(adapterDir, path.join(root, 'prompt-export'));
    expect(report.verification.passed).toBe(true);
    expect(report.note).toBeUndefined();
  }, 60_000);
});
