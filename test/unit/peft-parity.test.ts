// Issue 5 acceptance: adapters the app exports give, in the app, the logits PyTorch computes when it
// applies them as PEFT's LoRA layer does (scripts/make-fixtures-peft.py), for LoRA, LoRA+ and
// bias-aware LoRA on the tiny GPT-2 (Conv1D, fan_in_fan_out) and Llama (Linear, rsLoRA) fixtures.
// Regenerate the fixture: node --import tsx scripts/make-fixtures-peft.ts && .venv/bin/python scripts/make-fixtures-peft.py
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAppRoot } from '../../src-main/paths.ts';
import { maxAbsDiff, probeLogits } from '../../src-worker/export/probe.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { readSafetensorsFile } from '../../src-worker/formats/safetensors.ts';
import { getMethod } from '../../src-worker/methods/index.ts';
import { families, makeParityAdapter, PARITY_DIR, parityMethods } from '../helpers/peft-parity.ts';
import { tempRoot } from './method-run.ts';

const root = findAppRoot(import.meta.dirname);

/** What PEFT's LoraConfig needs to rebuild the adapter, all of which the export must write. */
const REQUIRED = [
  'peft_type',
  'task_type',
  'r',
  'lora_alpha',
  'lora_dropout',
  'target_modules',
  'bias',
  'fan_in_fan_out',
  'use_rslora',
  'modules_to_save',
  'init_lora_weights',
  'base_model_name_or_path',
];
/**
 * Every field LoraConfig and PeftConfig define (peft/tuners/lora/config.py, peft/config.py, PEFT 0.13),
 * written out here, independently of the app's list: anything else would make LoraConfig(**json) fail.
 */
const LORA_CONFIG_FIELDS = new Set([
  ...REQUIRED,
  'revision',
  'inference_mode',
  'auto_mapping',
  'exclude_modules',
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
]);

/** The app's logits for a PEFT folder on the inputs of its reference, at the reference's positions. */
async function appLogits(family: string, adapterDir: string, inputIds: number[][]): Promise<Float32Array> {
  const peft = JSON.parse(fs.readFileSync(path.join(adapterDir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  const model = await loadCausalLM(path.join(root, 'test', 'fixtures', family));
  const lora = getMethod('lora');
  const adapter = lora.create(
    model,
    lora.parseSettings({
      r: peft.r,
      alpha: peft.lora_alpha,
      dropout: peft.lora_dropout,
      targetModules: peft.target_modules,
      useRslora: peft.use_rslora,
    }),
    0,
  );
  try {
    adapter.loadStateDict((await readSafetensorsFile(path.join(adapterDir, 'adapter_model.safetensors'))).tensors);
    return (await probeLogits(model, adapter, { inputIds })).data;
  } finally {
    adapter.dispose();
    model.dispose();
  }
}

async function reference(dir: string): Promise<{ inputIds: number[][]; logits: Float32Array; shape: number[] }> {
  const { tensors } = await readSafetensorsFile(path.join(dir, 'reference.safetensors'));
  const ids = tensors.get('input_ids')!;
  const [P, T] = ids.shape as [number, number];
  const logits = tensors.get('logits')!;
  return {
    inputIds: Array.from({ length: P }, (_, p) => Array.from(ids.data.subarray(p * T, (p + 1) * T), Math.round)),
    logits: logits.data,
    shape: logits.shape,
  };
}

let work: string;
beforeAll(() => {
  work = tempRoot('lw-peft-parity-test-');
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('PEFT parity against PyTorch', () => {
  for (const family of families) {
    for (const method of parityMethods) {
      const fixture = path.join(root, PARITY_DIR, `${family}-${method}`);

      it(`${family} ${method}: the committed export gives PyTorch's logits`, async () => {
        const ref = await reference(fixture);
        expect(ref.shape[1]).toBe(4);
        const got = await appLogits(family, fixture, ref.inputIds);
        expect(maxAbsDiff(got, ref.logits)).toBeLessThanOrEqual(1e-4);
      });

      it(`${family} ${method}: training and exporting again reproduces it, with a complete LoraConfig`, async () => {
        const outDir = path.join(work, `${family}-${method}`);
        const report = await makeParityAdapter(root, work, family, method, outDir);
        expect(report.verification.passed).toBe(true);
        const config = JSON.parse(fs.readFileSync(path.join(outDir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
        for (const field of REQUIRED) expect(config, field).toHaveProperty(field);
        expect(Object.keys(config).filter((k) => !LORA_CONFIG_FIELDS.has(k))).toEqual([]);
        expect(config).toMatchObject({
          peft_type: 'LORA',
          task_type: 'CAUSAL_LM',
          bias: 'none',
          modules_to_save: null,
          init_lora_weights: true,
          fan_in_fan_out: family === 'gpt2-tiny',
        });
        expect(config).toEqual(JSON.parse(fs.readFileSync(path.join(fixture, 'adapter_config.json'), 'utf8')));

        const ref = await reference(fixture);
        const diff = maxAbsDiff(await appLogits(family, outDir, ref.inputIds), ref.logits);
        // A failure here with the first test passing means training changed: regenerate the fixture (see the top).
        expect(diff).toBeLessThanOrEqual(1e-4);
      }, 60_000);
    }
  }
});
