// Model inspection (src-worker/inspect-model.ts): what each fixture family reports from its headers,
// the warnings (narrow dtypes, unsupported model_type), invalid folders, and the memory estimate both
// against hand-computed figures and against the peak tfjs actually reaches in one training step.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { initBackend } from '../../src-worker/backend.ts';
import type { Batch } from '../../src-worker/data/batcher.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { readSafetensorsFile, serializeSafetensors } from '../../src-worker/formats/safetensors.ts';
import { inspectModel } from '../../src-worker/inspect-model.ts';
import { getMethod } from '../../src-worker/methods/index.ts';
import { tf } from '../../src-worker/tf.ts';
import { AdamW } from '../../src-worker/train/adamw.ts';
import { trainStep } from '../../src-worker/train/loop.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
const gpt2Dir = path.join(fixtures, 'gpt2-tiny');
const llamaDir = path.join(fixtures, 'llama-tiny');
const bertDir = path.join(fixtures, 'bert-tiny');
const run = { batchSize: 8, maxSeqLen: 32, r: 8 };
let root: string;

function copyFolder(from: string, name: string): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir);
  for (const file of fs.readdirSync(from)) if (fs.statSync(path.join(from, file)).isFile()) fs.copyFileSync(path.join(from, file), path.join(dir, file));
  return dir;
}

beforeAll(async () => {
  await initBackend('cpu');
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-inspect-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('inspectModel', () => {
  it('reads gpt2-tiny: architecture, parameters, dtypes, targets and a hand-computed memory estimate', async () => {
    const inspection = await inspectModel({ modelDir: gpt2Dir, ...run });
    expect(inspection.modelType).toBe('gpt2');
    expect(inspection.supported).toBe(true);
    expect(inspection.architecture).toEqual({ layers: 2, hiddenSize: 32, heads: 4, kvHeads: 4, vocabSize: 264, maxPositions: 32 });
    // wte 264x32 + wpe 32x32 + 2 layers x (ln 2x64, c_attn 32x96+96, c_proj 32x32+32, c_fc 32x128+128, mlp.c_proj 128x32+32) + ln_f 64
    const perLayer = 2 * 64 + (32 * 96 + 96) + (32 * 32 + 32) + (32 * 128 + 128) + (128 * 32 + 32);
    expect(inspection.parameterCount).toBe(264 * 32 + 32 * 32 + 2 * perLayer + 64);
    expect(inspection.dtypes).toEqual({ F32: 28 });
    expect(inspection.targetModules).toEqual(['c_attn', 'c_proj', 'c_fc']);
    expect(inspection.hasChatTemplate).toBe(false);
    expect(inspection.warnings).toEqual([]);
    expect(inspection.files.map((f) => f.name)).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);

    const m = inspection.memory;
    expect(m.weightsBytes).toBe(34944 * 4);
    // LoRA r=8 on c_attn (32->96), attn.c_proj (32->32), mlp.c_proj (128->32) in 2 layers; x4 floats (param, grad, m, v) x4 bytes.
    expect(m.adapterBytes).toBe(2 * 8 * (32 + 96 + 32 + 32 + 128 + 32) * 16);
    // 4 bytes x B 8 x T 32 x 2 layers x (68 x 32 + 12 x 128 + 5 x 4 heads x 32), plus the fused head's
    // one chunk (all 256 tokens at this vocabulary): 4 [256, 264] temporaries and dh [256, 32].
    expect(m.activationsBytes).toBe(4 * 8 * 32 * 2 * (68 * 32 + 12 * 128 + 5 * 4 * 32) + 4 * (4 * 256 * 264 + 256 * 32));
    expect(m.totalBytes).toBe(m.weightsBytes + m.adapterBytes + m.activationsBytes);
    expect({ batchSize: m.batchSize, maxSeqLen: m.maxSeqLen, r: m.r }).toEqual(run);
    expect({ engine: m.engine, accelerator: m.accelerator, precision: m.precision }).toEqual({ engine: 'tfjs', accelerator: null, precision: 'f32' });
  });

  it("estimates a pytorch run in the engine's precision: bf16 weights and activations on CUDA, f32 on the CPU", async () => {
    const tfjs = (await inspectModel({ modelDir: gpt2Dir, ...run })).memory;
    const cpu = (await inspectModel({ modelDir: gpt2Dir, ...run, engine: 'pytorch', accelerator: 'cpu' })).memory;
    const cuda = (await inspectModel({ modelDir: gpt2Dir, ...run, engine: 'pytorch', accelerator: 'cuda' })).memory;
    expect([cpu.precision, cuda.precision]).toEqual(['f32', 'bf16']);
    expect([cpu.engine, cpu.accelerator, cuda.accelerator]).toEqual(['pytorch', 'cpu', 'cuda']);
    expect(cpu.weightsBytes).toBe(34944 * 4);
    expect(cuda.weightsBytes).toBe(34944 * 2);
    // The adapter and AdamW's moments stay f32 on both engines and devices.
    expect(cuda.adapterBytes).toBe(tfjs.adapterBytes);
    expect(cpu.adapterBytes).toBe(tfjs.adapterBytes);
    // What autograd saves, per token: 2 layers x (4 bytes x (9 x 32 + 5 x 128) + 4 x (3 targets x r 8 + 4 heads)), and the head's 4 x 264 f32 values.
    expect(cpu.activationsBytes).toBe(8 * 32 * (2 * (4 * (9 * 32 + 5 * 128) + 4 * (3 * 8 + 4)) + 16 * 264));
    expect(cuda.activationsBytes).toBe(8 * 32 * (2 * (2 * (9 * 32 + 5 * 128) + 4 * (3 * 8 + 4)) + 12 * 264));
    expect(cuda.totalBytes).toBe(cuda.weightsBytes + cuda.adapterBytes + cuda.activationsBytes);
    // torch keeps far less per token than tfjs's tape of every op output and its gradient.
    expect(cpu.activationsBytes).toBeLessThan(tfjs.activationsBytes);
    // ROCm builds of torch train in bf16 too; MPS, and an accelerator not given, in f32.
    expect((await inspectModel({ modelDir: gpt2Dir, ...run, engine: 'pytorch', accelerator: 'rocm' })).memory.precision).toBe('bf16');
    expect((await inspectModel({ modelDir: gpt2Dir, ...run, engine: 'pytorch', accelerator: 'mps' })).memory.precision).toBe('f32');
    const unknown = (await inspectModel({ modelDir: gpt2Dir, ...run, engine: 'pytorch' })).memory;
    expect([unknown.precision, unknown.accelerator, unknown.totalBytes]).toEqual(['f32', null, cpu.totalBytes]);
    // tfjs ignores an accelerator: every tfjs backend computes in f32.
    expect((await inspectModel({ modelDir: gpt2Dir, ...run, engine: 'tfjs', accelerator: 'cuda' })).memory).toEqual(tfjs);
  });

  it('grows the estimate with batch, sequence length and rank, and caps sequences at the model positions', async () => {
    const base = (await inspectModel({ modelDir: gpt2Dir, ...run })).memory;
    const doubleBatch = (await inspectModel({ modelDir: gpt2Dir, ...run, batchSize: 16 })).memory;
    expect(doubleBatch.activationsBytes).toBeGreaterThan(1.9 * base.activationsBytes);
    const doubleRank = (await inspectModel({ modelDir: gpt2Dir, ...run, r: 16 })).memory;
    expect(doubleRank.adapterBytes).toBe(2 * base.adapterBytes);
    // gpt2-tiny has 32 positions: asking for 512 costs what 32 does.
    const longer = (await inspectModel({ modelDir: gpt2Dir, ...run, maxSeqLen: 512 })).memory;
    expect(longer.activationsBytes).toBe(base.activationsBytes);
    expect(longer.maxSeqLen).toBe(512);
  });

  it('reads llama-tiny with grouped-query heads and the Llama target names', async () => {
    const inspection = await inspectModel({ modelDir: llamaDir, ...run });
    expect(inspection.modelType).toBe('llama');
    expect(inspection.supported).toBe(true);
    expect(inspection.architecture).toEqual({ layers: 2, hiddenSize: 32, heads: 4, kvHeads: 2, vocabSize: 324, maxPositions: 64 });
    expect(inspection.targetModules).toEqual(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    // q_proj 32->32 and v_proj 32->16 (2 kv heads x head_dim 8), 2 layers.
    expect(inspection.memory.adapterBytes).toBe(2 * 8 * (32 + 32 + 32 + 16) * 16);
  });

  it('reports bert-tiny as an unsupported encoder, naming the supported types', async () => {
    const inspection = await inspectModel({ modelDir: bertDir, ...run });
    expect(inspection.modelType).toBe('bert');
    expect(inspection.supported).toBe(false);
    expect(inspection.architecture).toMatchObject({ layers: 2, hiddenSize: 32, heads: 4, vocabSize: 90, maxPositions: 32 });
    expect(inspection.targetModules).toEqual(['query', 'key', 'value', 'dense']);
    expect(inspection.warnings.join(' ')).toMatch(/"bert" is not supported.*gpt2, llama, qwen2, mistral.*encoder/);
  });

  it('reports an unknown model_type with generic figures and no targets', async () => {
    const dir = copyFolder(gpt2Dir, 'unknown-type');
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, model_type: 'gptj' }));
    const inspection = await inspectModel({ modelDir: dir, ...run });
    expect(inspection.supported).toBe(false);
    expect(inspection.architecture.layers).toBe(2);
    expect(inspection.targetModules).toEqual([]);
    expect(inspection.warnings[0]).toMatch(/"gptj" is not supported for training or generation; supported model types: gpt2, llama/);
  });

  it('counts F16 weights and says which stay 16-bit and which are widened; sees a chat template', async () => {
    const dir = copyFolder(gpt2Dir, 'f16-chat');
    const { tensors } = await readSafetensorsFile(path.join(gpt2Dir, 'model.safetensors'));
    fs.writeFileSync(path.join(dir, 'model.safetensors'), serializeSafetensors(tensors, undefined, 'F16'));
    const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(
      path.join(dir, 'tokenizer_config.json'),
      JSON.stringify({ ...tokenizerConfig, chat_template: '{% for m in messages %}{{ m.content }}{% endfor %}' }),
    );
    const inspection = await inspectModel({ modelDir: dir, ...run });
    expect(inspection.dtypes).toEqual({ F16: 28 });
    expect(inspection.hasChatTemplate).toBe(true);
    expect(inspection.warnings).toEqual([
      expect.stringMatching(/stored as F16: on the cpu and wasm backends the transformer blocks' matrices stay 16-bit .* widened to F32 when loaded/),
    ]);
  });

  it('rejects a missing folder and a folder without tokenizer.json with model_invalid', async () => {
    const missing = await inspectModel({ modelDir: path.join(root, 'nope'), ...run }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(WorkbenchError);
    expect((missing as WorkbenchError).code).toBe('model_invalid');
    expect((missing as WorkbenchError).message).toMatch(/does not exist/);
    const dir = copyFolder(gpt2Dir, 'no-tokenizer');
    fs.rmSync(path.join(dir, 'tokenizer.json'));
    const broken = await inspectModel({ modelDir: dir, ...run }).catch((e: unknown) => e);
    expect((broken as WorkbenchError).code).toBe('model_invalid');
    expect((broken as WorkbenchError).message).toMatch(/no tokenizer\.json/);
  });
});

/** tf.profile's peakBytes (the engine's tensor bytes, as tf.memory() counts them) over one trainStep, from a clean engine. */
async function measuredPeak(modelDir: string, targetModules: string[]): Promise<number> {
  expect(tf.memory().numTensors).toBe(0);
  const model = await loadCausalLM(modelDir);
  const method = getMethod('lora');
  const adapter = method.create(model, method.parseSettings({ r: run.r, alpha: 16, dropout: 0.05, targetModules }), 0);
  const params = adapter.trainable();
  const optimizer = new AdamW(
    ['lora_A', 'lora_B'].map((group) => ({
      name: group,
      lr: 1e-3,
      weightDecay: 0,
      params: params.filter((p) => p.group === group).map(({ name, variable }) => ({ name, variable })),
    })),
  );
  const { batchSize, maxSeqLen: seqLen } = run;
  const batch: Batch = {
    inputIds: Int32Array.from({ length: batchSize * seqLen }, (_, i) => (i * 7) % model.config.vocabSize),
    lossMask: new Float32Array(batchSize * seqLen).fill(1),
    batchSize,
    seqLen,
    tokenCount: batchSize * seqLen,
  };
  try {
    // The first step also allocates AdamW's moments, as the estimate counts them.
    const profile = await tf.profile(async () => {
      await trainStep(
        model,
        adapter,
        optimizer,
        batch,
        1,
        new Map(params.map((p) => [p.variable.name, p.name])),
        params.map((p) => p.variable),
        1,
      );
      return [];
    });
    return profile.peakBytes;
  } finally {
    optimizer.dispose?.();
    adapter.dispose();
    model.dispose();
    tf.disposeVariables();
  }
}

describe('the memory estimate against a real training step (cpu backend)', () => {
  // The bar: within 1.3x either way of tf.profile's peak (train/memory-plan.ts runFigures).
  it('gpt2-tiny: estimate within 1.3x of the peak', async () => {
    const estimate = (await inspectModel({ modelDir: gpt2Dir, ...run })).memory.totalBytes;
    const peak = await measuredPeak(gpt2Dir, ['c_attn', 'c_proj']);
    expect(estimate / peak).toBeGreaterThan(1 / 1.3);
    expect(estimate / peak).toBeLessThan(1.3);
  });

  it('llama-tiny: estimate within 1.3x of the peak', async () => {
    const estimate = (await inspectModel({ modelDir: llamaDir, ...run })).memory.totalBytes;
    const peak = await measuredPeak(llamaDir, ['q_proj', 'v_proj']);
    expect(estimate / peak).toBeGreaterThan(1 / 1.3);
    expect(estimate / peak).toBeLessThan(1.3);
  });
});
