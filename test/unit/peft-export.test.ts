import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultRunConfig } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { exportAdapter } from '../../src-worker/export/index.ts';
import { writeAdapter } from '../../src-worker/export/write-adapter.ts';
import { type AdapterSidecar } from '../../src-worker/formats/adapter-folder.ts';
import { makeProbe, probeLogits, writeProbe } from '../../src-worker/export/probe.ts';
import { parseSafetensors, serializeSafetensors } from '../../src-worker/formats/safetensors.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { getMethod } from '../../src-worker/methods/index.ts';
import type { AdapterModel } from '../../src-worker/methods/types.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { gpt2ConfigFromHF, randomGPT2Weights } from '../../src-worker/models/gpt2.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures', 'tokenizer');
const tmp = (prefix: string) => fs.mkdtempSync(path.join(tmpdir(), prefix));

/**
 * Every field of PEFT's LoraConfig and its PeftConfig base (peft/tuners/lora/config.py and
 * peft/config.py), written out here rather than imported so that the check is independent of the code.
 */
const LORA_CONFIG_FIELDS = [
  'peft_type',
  'task_type',
  'base_model_name_or_path',
  'revision',
  'inference_mode',
  'auto_mapping',
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
  'lora_bias',
];

/** A tiny GPT-2 folder as save_pretrained writes it: config.json, model.safetensors, tokenizer files. */
function writeTinyModel(dir: string): void {
  const hf = { model_type: 'gpt2', vocab_size: 264, n_positions: 32, n_embd: 16, n_layer: 2, n_head: 2, eos_token_id: 263, bos_token_id: 263 };
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hf));
  fs.writeFileSync(path.join(dir, 'model.safetensors'), serializeSafetensors(randomGPT2Weights(gpt2ConfigFromHF(hf), 11), { format: 'pt' }));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(fixtures, f), path.join(dir, f));
}

const config = { ...defaultRunConfig(), lora: { r: 4, alpha: 8, dropout: 0, targetModules: ['c_attn', 'c_proj'], useRslora: false } };

function sidecar(step: number, trainableParams: number): AdapterSidecar {
  return {
    format: 'lora-workbench-adapter',
    version: 1,
    method: 'lora',
    runId: 'run-7',
    step,
    trainableParams,
    config,
    backend: { name: 'cpu', adapter: 'JavaScript' },
    baseModel: { path: 'tiny', fingerprint: null },
    createdAt: new Date(0).toISOString(),
  };
}

/** Gives every lora_B small nonzero values, as training would. */
function perturbB(adapter: AdapterModel, scale: number): void {
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const p of adapter.trainable()) {
    const data = Float32Array.from(p.variable.dataSync());
    if (p.group === 'lora_B') for (let i = 0; i < data.length; i++) data[i] = scale * Math.sin(i * 1.7 + 0.3);
    tensors.set(p.name, { shape: [...p.variable.shape], data });
  }
  adapter.loadStateDict(tensors);
}

let modelDir: string;
let model: CausalLM;

beforeAll(async () => {
  modelDir = path.join(tmp('lw-peft-model-'), 'tiny');
  writeTinyModel(modelDir);
  model = await loadCausalLM(modelDir);
});

function createAdapter(): AdapterModel {
  const lora = getMethod('lora');
  return lora.create(model, lora.parseSettings(config.lora), config.training.seed);
}

/** Writes an adapter folder the way the training loop's final step does (adapter + probe). */
async function writeTrainedFolder(adapter: AdapterModel, dir: string): Promise<void> {
  await writeAdapter(adapter, dir, { baseModelNameOrPath: modelDir, sidecar: sidecar(30, adapter.trainableParamCount()) });
  const probe = makeProbe(
    [
      [10, 20, 30, 40, 50],
      [60, 70, 80],
    ],
    263,
  );
  await writeProbe(dir, probe, await probeLogits(model, adapter, probe), 'cpu');
}

describe('writeAdapter', () => {
  it('writes PEFT key names, shapes, metadata and a LoraConfig with known fields only', async () => {
    const adapter = createAdapter();
    const dir = tmp('lw-peft-');
    const files = await writeAdapter(adapter, dir, { baseModelNameOrPath: 'gpt2-tiny', sidecar: sidecar(30, adapter.trainableParamCount()) });
    expect(files.map((f) => f.name).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'workbench_adapter.json']);
    expect(files.every((f) => f.bytes === fs.statSync(path.join(dir, f.name)).size)).toBe(true);

    const { tensors, metadata } = parseSafetensors(fs.readFileSync(path.join(dir, 'adapter_model.safetensors')));
    expect(metadata).toEqual({ format: 'pt' });
    const expected: Record<string, number[]> = {};
    for (const layer of [0, 1]) {
      const p = `base_model.model.transformer.h.${layer}`;
      // C = 16: c_attn 16 -> 48, attn.c_proj 16 -> 16, mlp.c_proj 64 -> 16; A is [r, in], B is [out, r].
      Object.assign(expected, {
        [`${p}.attn.c_attn.lora_A.weight`]: [4, 16],
        [`${p}.attn.c_attn.lora_B.weight`]: [48, 4],
        [`${p}.attn.c_proj.lora_A.weight`]: [4, 16],
        [`${p}.attn.c_proj.lora_B.weight`]: [16, 4],
        [`${p}.mlp.c_proj.lora_A.weight`]: [4, 64],
        [`${p}.mlp.c_proj.lora_B.weight`]: [16, 4],
      });
    }
    expect(Object.fromEntries([...tensors].map(([k, t]) => [k, t.shape]))).toEqual(expected);
    expect([...tensors.values()].every((t) => t.dtype === 'F32')).toBe(true);
    // B starts at zero (PEFT's init), A does not.
    expect(tensors.get('base_model.model.transformer.h.0.attn.c_attn.lora_B.weight')!.data.every((x) => x === 0)).toBe(true);
    expect(tensors.get('base_model.model.transformer.h.0.attn.c_attn.lora_A.weight')!.data.some((x) => x !== 0)).toBe(true);

    const peft = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8'));
    expect(Object.keys(peft).filter((k) => !LORA_CONFIG_FIELDS.includes(k))).toEqual([]);
    expect(peft).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      fan_in_fan_out: true,
      r: 4,
      lora_alpha: 8,
      base_model_name_or_path: 'gpt2-tiny',
      bias: 'none',
      use_rslora: false,
    });
    expect([...peft.target_modules].sort()).toEqual(['c_attn', 'c_proj']);

    const side = JSON.parse(fs.readFileSync(path.join(dir, 'workbench_adapter.json'), 'utf8'));
    expect(side).toMatchObject({ format: 'lora-workbench-adapter', method: 'lora', runId: 'run-7', step: 30, config: { lora: { r: 4 } } });
    adapter.dispose();
  });
});

describe('exportAdapter', () => {
  it('copies a trained adapter and verifies it against the probe and the base model', async () => {
    const adapter = createAdapter();
    perturbB(adapter, 0.05);
    const source = tmp('lw-src-');
    await writeTrainedFolder(adapter, source);
    const outDir = path.join(tmp('lw-out-'), 'exported');
    const report = await exportAdapter({ type: 'export', sourceDir: source, modelDir, outDir, backend: 'cpu', format: 'peft' });
    expect(report.outDir).toBe(outDir);
    expect(report.files.map((f) => f.name).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'workbench_adapter.json']);
    expect(report.verification.passed).toBe(true);
    expect(report.verification.maxAbsDiffToTrained).toBeLessThanOrEqual(1e-5);
    expect(report.verification.maxAbsDiffToBase).toBeGreaterThan(1e-4);
    expect(fs.readFileSync(path.join(outDir, 'adapter_model.safetensors'))).toEqual(fs.readFileSync(path.join(source, 'adapter_model.safetensors')));
    adapter.dispose();
  });

  it('fails with export_mismatch for an untrained adapter (B = 0) and leaves no files', async () => {
    const adapter = createAdapter();
    const source = tmp('lw-src-');
    await writeTrainedFolder(adapter, source);
    const outDir = path.join(tmp('lw-out-'), 'exported');
    const error = await exportAdapter({ type: 'export', sourceDir: source, modelDir, outDir, backend: 'cpu', format: 'peft' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkbenchError);
    expect((error as WorkbenchError).code).toBe('export_mismatch');
    expect((error as WorkbenchError).message).toMatch(/equals the base model/);
    expect(fs.readdirSync(outDir)).toEqual([]);
    adapter.dispose();
  });

  it('fails when the written adapter does not reproduce the trained logits', async () => {
    const adapter = createAdapter();
    perturbB(adapter, 0.05);
    const source = tmp('lw-src-');
    await writeTrainedFolder(adapter, source);
    // Simulate weights that drifted from what the probe recorded (a broken save): perturb B again and rewrite the tensors only.
    perturbB(adapter, 0.06);
    await writeAdapter(adapter, source, { baseModelNameOrPath: modelDir, sidecar: sidecar(30, adapter.trainableParamCount()) });
    const error = await exportAdapter({ type: 'export', sourceDir: source, modelDir, outDir: tmp('lw-out-'), backend: 'cpu', format: 'peft' }).catch(
      (e: unknown) => e,
    );
    expect((error as WorkbenchError).code).toBe('export_mismatch');
    expect((error as WorkbenchError).message).toMatch(/does not reproduce the trained model/);
    adapter.dispose();
  });

  it('exports a checkpoint folder (no probe file) using its trainer_state probe ids', async () => {
    const adapter = createAdapter();
    perturbB(adapter, 0.05);
    const source = tmp('lw-ckpt-');
    await writeAdapter(adapter, source, { baseModelNameOrPath: modelDir, sidecar: sidecar(20, adapter.trainableParamCount()) });
    fs.writeFileSync(path.join(source, 'trainer_state.json'), JSON.stringify({ probeInputIds: [[5, 6, 7, 8]] }));
    const report = await exportAdapter({ type: 'export', sourceDir: source, modelDir, outDir: tmp('lw-out-'), backend: 'cpu', format: 'peft' });
    expect(report.verification.maxAbsDiffToTrained).toBe(0);
    expect(report.verification.maxAbsDiffToBase).toBeGreaterThan(1e-4);
    adapter.dispose();
  });

  it('names a folder that is not an adapter', async () => {
    await expect(
      exportAdapter({ type: 'export', sourceDir: tmp('lw-empty-'), modelDir, outDir: tmp('lw-out-'), backend: 'cpu', format: 'peft' }),
    ).rejects.toMatchObject({ code: 'not_found' });
  });
});
