// The memory plan (train/memory-plan.ts): micro-batches chosen to fit wasm32's heap, refusals with the
// figures and the settings that would fit (TinyLlama's f32 weights, WebGPU's binding limit), the estimate
// of a micro-batched step against the measured peak, and out-of-memory errors told apart from others.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { initBackend } from '../../src-worker/backend.ts';
import type { Batch } from '../../src-worker/data/batcher.ts';
import { loadCausalLM, readWeights } from '../../src-worker/formats/model-folder.ts';
import { serializeSafetensors } from '../../src-worker/formats/safetensors.ts';
import type { ArchitectureShape } from '../../src-worker/models/architecture.ts';
import { readArchitecture } from '../../src-worker/inspect-model.ts';
import { halfStorable } from '../../src-worker/formats/half-bits.ts';
import { llamaConfigFromHF, llamaParameterShapes } from '../../src-worker/models/llama.ts';
import { getMethod } from '../../src-worker/methods/index.ts';
import { tf } from '../../src-worker/tf.ts';
import { AdamW } from '../../src-worker/train/adamw.ts';
import { trainStep } from '../../src-worker/train/accumulate.ts';
import { causalLossTerm, shiftedTargets } from '../../src-worker/train/causal-loss.ts';
import { backendLimits, planMemory, runFigures, type MemoryPlanRequest } from '../../src-worker/train/memory-plan.ts';
import { classifyStepError, installWasmWarningHook, isOutOfMemory, throwOnXnnWarning } from '../../src-worker/train/out-of-memory.ts';

const GiB = 2 ** 30;
const gpt2_124m: ArchitectureShape = {
  family: 'gpt2',
  layers: 12,
  hiddenSize: 768,
  heads: 12,
  kvHeads: 12,
  vocabSize: 50257,
  maxPositions: 1024,
  intermediateSize: 3072,
  defaultTargetShapes: [
    [768, 2304],
    [768, 768],
    [3072, 768],
  ],
};
const tinyLlama: ArchitectureShape = {
  family: 'llama',
  layers: 22,
  hiddenSize: 2048,
  heads: 32,
  kvHeads: 4,
  vocabSize: 32000,
  maxPositions: 2048,
  intermediateSize: 5632,
  defaultTargetShapes: [
    [2048, 2048],
    [2048, 256],
  ],
};
const wasmLimits = backendLimits('wasm', null, 20 * GiB);

function request(overrides: Partial<MemoryPlanRequest>): MemoryPlanRequest {
  return {
    shape: gpt2_124m,
    parameterCount: 124_439_808,
    batchSize: 8,
    seqLen: 256,
    microBatchSize: null,
    trainableParams: 811_008,
    quantized: null,
    limits: wasmLimits,
    ...overrides,
  };
}

/** A micro-batched LoRA step (2 rows per pass of a batch of 8 x 32) of the model in `dir` on cpu: the plan's total against tf.profile's peak. */
async function microBatchedStep(dir: string) {
  await initBackend('cpu');
  const { shape, parameterCount, halfParams } = await readArchitecture(dir);
  const model = await loadCausalLM(dir);
  const method = getMethod('lora');
  const adapter = method.create(model, method.parseSettings({ r: 8, alpha: 16, dropout: 0.05, targetModules: ['c_attn', 'c_proj'] }), 0);
  const params = adapter.trainable();
  const optimizer = new AdamW([{ name: 'all', lr: 1e-3, weightDecay: 0, params: params.map(({ name, variable }) => ({ name, variable })) }]);
  const [B, T] = [8, 32];
  const batch: Batch = {
    inputIds: Int32Array.from({ length: B * T }, (_, i) => (i * 7) % 264),
    lossMask: new Float32Array(B * T).fill(1),
    batchSize: B,
    seqLen: T,
    tokenCount: B * T,
  };
  const plan = planMemory({
    shape,
    parameterCount,
    batchSize: B,
    seqLen: T,
    microBatchSize: 2,
    trainableParams: adapter.trainableParamCount(),
    quantized: null,
    halfParams,
    limits: backendLimits('cpu', null, 20 * GiB),
  });
  expect(plan.microBatchSize).toBe(2);
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
      undefined,
      plan,
    );
    return [];
  });
  return { shape, parameterCount, halfParams, model, adapter, optimizer, params, batch, plan, ratio: plan.figures.total / profile.peakBytes };
}

describe('planMemory', () => {
  it('fits GPT-2 124M at batch 8 x 256 on wasm by choosing micro-batches, within the heap', () => {
    const plan = planMemory(request({}));
    expect(plan.fits).toBe(true);
    expect(plan.microBatchSize).toBeGreaterThanOrEqual(1);
    expect(plan.figures.total).toBeLessThan(4 * GiB * 0.85);
    expect(plan.summary).toMatch(/Memory plan \(wasm\): .* of 4\.29 GB .*batch 8 x 256 tokens in \d+ pass/);
    // The whole batch in one pass with its activations kept would not fit the heap: the plan did split
    // it or recompute; at 1024 tokens even recomputed passes of 8 rows do not fit.
    expect(plan.microBatchSize < 8 || plan.recompute).toBe(true);
    const whole = planMemory(request({ microBatchSize: 8, seqLen: 1024 }));
    expect(whole.fits).toBe(false);
    expect(whole.refusal).toMatch(/needs \d+\.\d\d GB on the wasm backend .*wasm32's 4 GiB heap holds 4\.29 GB/);
    expect(whole.refusal).toMatch(/Settings that would fit: (training\.microBatchSize \d+ or less|training\.maxSeqLen \d+ or less)/);
    expect(whole.refusal).toMatch(/the PyTorch engine/);
    // Too long for even one recomputed row: the advice is a shorter sequence.
    const long = planMemory(request({ seqLen: 4096, shape: { ...gpt2_124m, maxPositions: 8192 } }));
    expect(long.fits).toBe(false);
    expect(long.refusal).toMatch(/training\.maxSeqLen \d+ or less, at microBatchSize 1/);
  });

  it('on a backend with room to spare, runs the whole batch in one pass and keeps packed copies on wasm', () => {
    const small = planMemory(request({ batchSize: 2, seqLen: 64 }));
    expect(small.microBatchSize).toBe(2);
    expect(small.wasmPacking).toBe('cached');
  });

  it('refuses TinyLlama 1.1B on wasm before loading: its f32 weights alone exceed the heap', () => {
    const plan = planMemory(
      request({
        shape: tinyLlama,
        parameterCount: 1_100_048_384,
        batchSize: 4,
        seqLen: 256,
        quantized: { params: 22 * (2048 * 2048 * 2 + 2048 * 256 * 2), largestModuleParams: 2048 * 5632 },
      }),
    );
    expect(plan.fits).toBe(false);
    expect(plan.refusal).toMatch(/loading widens every weight to f32 first: 4\.40 GB/);
    expect(plan.refusal).toMatch(/the cpu or tensorflow backend/);
    expect(plan.refusal).toMatch(/the PyTorch engine/);
  });

  it('offers QLoRA after loading only: before the model loads, QLoRA would not lower the figure', () => {
    // A bf16 checkpoint: 22 layers' block matrices (q, k, v, o, gate, up, down) held 16-bit.
    const halfParams = 22 * (2 * 2048 * 2048 + 2 * 2048 * 256 + 3 * 2048 * 5632);
    const tiny = request({ shape: tinyLlama, parameterCount: 1_100_048_384, batchSize: 4, seqLen: 256, quantized: null, halfParams });
    const afterLoad = planMemory(tiny);
    expect(afterLoad.fits).toBe(false);
    expect(afterLoad.refusal).toMatch(/QLoRA \(method qlora, NF4\)/);
    // Before loading every weight counts as stored, so a QLoRA run is refused by the same figure.
    const beforeLoad = planMemory({ ...tiny, beforeLoad: true });
    expect(beforeLoad.fits).toBe(false);
    expect(beforeLoad.refusal).not.toMatch(/QLoRA \(method qlora/);
    expect(beforeLoad.refusal).toMatch(/QLoRA would not lower this figure: it quantizes the adapted layers only once the checkpoint has loaded/);
    expect(beforeLoad.refusal).toMatch(/the cpu or tensorflow backend/);
  });

  it('accepts Qwen2.5-0.5B at 4 x 256 on wasm when its block matrices are held bf16, and refuses it in f32', () => {
    const config = llamaConfigFromHF({
      model_type: 'qwen2',
      hidden_size: 896,
      num_hidden_layers: 24,
      num_attention_heads: 14,
      num_key_value_heads: 2,
      intermediate_size: 4864,
      vocab_size: 151936,
      tie_word_embeddings: true,
      max_position_embeddings: 32768,
    });
    let parameterCount = 0;
    let halfParams = 0;
    for (const [key, dims] of llamaParameterShapes(config)) {
      const n = dims.reduce((p, d) => p * d, 1);
      parameterCount += n;
      if (halfStorable(key, dims)) halfParams += n;
    }
    const qwen: ArchitectureShape = {
      family: 'llama',
      layers: 24,
      hiddenSize: 896,
      heads: 14,
      kvHeads: 2,
      vocabSize: 151936,
      maxPositions: 32768,
      intermediateSize: 4864,
      defaultTargetShapes: [],
    };
    // LoRA r 8 on q_proj and v_proj.
    const qwenRequest = request({ shape: qwen, parameterCount, batchSize: 4, seqLen: 256, trainableParams: 24 * 8 * (896 + 896 + 896 + 128) });
    const f32 = planMemory({ ...qwenRequest, halfStorableParams: halfParams });
    expect(f32.fits).toBe(false);
    // An f32 checkpoint is refused with the advice to save it in bf16, saying that this rounds the weights.
    expect(f32.refusal).toMatch(
      /the checkpoint saved in bf16 .*holds its 358M block-matrix weights at 2 bytes instead of 4 \(0\.72 GB less\), which rounds them to bf16/,
    );
    const bf16 = planMemory({ ...qwenRequest, halfParams });
    expect(bf16.fits).toBe(true);
    expect(bf16.figures.halfWeights).toBe(2 * halfParams);
    // The 16-bit matrices save 2 bytes each; their widened copies, one recomputed block's at a time, cost far less.
    expect(bf16.recompute).toBe(true);
    expect(bf16.figures.total * 1.35).toBeLessThan(4 * GiB * 0.85);
    expect(bf16.summary).toMatch(/358M of them held 16-bit \(0\.72 GB\) and widened per use, one block's at a time.*batch 4 x 256 tokens in \d+ pass/);
  });

  it('shards the vocabulary on webgpu where the embedding exceeds maxStorageBufferBindingSize; refuses a trained embedding or a weight over it, naming the limit', () => {
    const limits = backendLimits('webgpu', { maxStorageBufferBindingSize: 128 * 2 ** 20, maxBufferSize: 256 * 2 ** 20 }, 20 * GiB);
    const plan = planMemory(request({ limits }));
    expect(plan.fits).toBe(true);
    // GPT-2's 154 MB table as two shards of 77 MB (models/lm-head.ts VocabShards), each chunk's logits per shard within the binding.
    expect(plan.summary).toMatch(/the vocabulary tables in 2 shards of up to 25129 rows, each within the adapter's maxStorageBufferBindingSize/);
    expect(plan.logitsChunkTokens * 25129 * 4).toBeLessThanOrEqual(128 * 2 ** 20);
    // Full fine-tuning holds its trained embedding whole: over the binding, refused with the way out.
    const trained = planMemory(request({ limits, largestTrainedTensorParams: 50257 * 768 }));
    expect(trained.fits).toBe(false);
    expect(trained.refusal).toMatch(/largest tensor \(0\.15 GB, a trained one, held whole\) exceeds the adapter's maxStorageBufferBindingSize \(0\.13 GB\)/);
    expect(trained.refusal).toMatch(/frozen embeddings \(full fine-tuning with trainEmbeddings false\)/);
    // A binding below one MLP weight [768, 3072] (9.4 MB): sharding the vocabulary cannot help.
    const tiny = planMemory(request({ limits: backendLimits('webgpu', { maxStorageBufferBindingSize: 8 * 2 ** 20 }, 20 * GiB) }));
    expect(tiny.fits).toBe(false);
    expect(tiny.refusal).toMatch(/largest tensor \(0\.01 GB\) exceeds the adapter's maxStorageBufferBindingSize \(0\.01 GB\)/);
    // Without a limit below the table it stays one tensor, as on wasm and cpu.
    const roomy = planMemory(request({ limits: backendLimits('webgpu', { maxStorageBufferBindingSize: 200 * 2 ** 20, maxBufferSize: 2 ** 31 }, 20 * GiB) }));
    expect(roomy.fits).toBe(true);
    expect(roomy.summary).not.toMatch(/shards/);
    expect(roomy.logitsChunkTokens * 50257 * 4).toBeLessThanOrEqual(200 * 2 ** 20);
  });

  it('estimates a micro-batched step of gpt2-tiny within 1.3x of the measured peak, with and without recomputation (cpu)', async () => {
    const { shape, parameterCount, model, adapter, optimizer, params, batch, plan, ratio } = await microBatchedStep(
      path.join(import.meta.dirname, '..', 'fixtures', 'gpt2-tiny'),
    );
    const [B, T] = [batch.batchSize, batch.seqLen];
    expect(ratio).toBeGreaterThan(1 / 1.3);
    expect(ratio).toBeLessThan(1.3);
    // And with every block recomputed in the backward pass: the forward and backward of the whole batch
    // in one pass, where the activations make the peak.
    const ids = tf.tensor2d(batch.inputIds, [B, T], 'int32');
    const mask = tf.tensor2d(batch.lossMask, [B, T]);
    const variables = params.map((p) => p.variable);
    const passPeak = async (recompute: boolean) => {
      const profile = await tf.profile(() => {
        const r = tf.variableGrads(
          () =>
            causalLossTerm(model, ids, mask, shiftedTargets(batch, 0, B, B * T), { adapters: adapter, training: true, recompute: recompute ? variables : null })
              .loss,
          variables,
        );
        return [r.value, ...Object.values(r.grads)];
      });
      return profile.peakBytes;
    };
    const keptPeak = await passPeak(false);
    const recomputedPeak = await passPeak(true);
    expect(recomputedPeak).toBeLessThan(0.8 * keptPeak);
    const recomputedFigures = runFigures(
      { shape, parameterCount, trainableParams: adapter.trainableParamCount(), quantized: null },
      B,
      T,
      plan.logitsChunkTokens,
      { packing: 'none', recompute: true },
    );
    expect(recomputedFigures.total / recomputedPeak).toBeGreaterThan(1 / 1.3);
    expect(recomputedFigures.total / recomputedPeak).toBeLessThan(1.3);
    tf.dispose([ids, mask]);
    optimizer.dispose();
    adapter.dispose();
    model.dispose();
  });

  it('estimates the same step within 1.3x when the block matrices are held bf16 (cpu)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plan-bf16-'));
    try {
      const source = path.join(import.meta.dirname, '..', 'fixtures', 'gpt2-tiny');
      for (const file of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(source, file), path.join(dir, file));
      fs.writeFileSync(
        path.join(dir, 'model.safetensors'),
        serializeSafetensors(await readWeights([path.join(source, 'model.safetensors')]), undefined, 'BF16'),
      );
      const { halfParams, plan, ratio, model, adapter, optimizer } = await microBatchedStep(dir);
      expect(halfParams).toBeGreaterThan(0);
      expect(plan.figures.halfWeights).toBe(2 * halfParams);
      expect(ratio).toBeGreaterThan(1 / 1.3);
      expect(ratio).toBeLessThan(1.3);
      optimizer.dispose();
      adapter.dispose();
      model.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('out-of-memory errors', () => {
  const plan = planMemory(request({}));

  it('reports wasm aborts and XNNPACK status 6 as out_of_memory with the advice', () => {
    for (const message of [
      'memory access out of bounds',
      'XNN status for xnn_create_fully_connected_nc_f32 is not successful. Got status 6. Use -c dbg to see XNN logs.',
      'Aborted(OOM)',
      'WebAssembly.Memory.grow(): Maximum memory size exceeded',
    ]) {
      const error = message.startsWith('memory') ? Object.assign(new Error(message), { name: 'RuntimeError' }) : new Error(message);
      expect(isOutOfMemory(error)).toBe(true);
      const classified = classifyStepError(error, plan) as WorkbenchError;
      expect(classified).toBeInstanceOf(WorkbenchError);
      expect(classified.code).toBe('out_of_memory');
      expect(classified.message).toMatch(
        /The wasm backend ran out of memory .*The plan counted .* at micro-batch \d+\. Lower training\.microBatchSize or training\.maxSeqLen, use QLoRA/,
      );
    }
  });

  it('turns an XNNPACK warning seen during a step into an out-of-memory error after it', () => {
    installWasmWarningHook();
    expect(() => throwOnXnnWarning()).not.toThrow();
    const quiet = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    console.warn('XNN status for xnn_create_fully_connected_nc_f32 is not successful. Got status 6. Use -c dbg to see XNN logs.');
    quiet.mockRestore();
    let thrown: unknown = null;
    try {
      throwOnXnnWarning();
    } catch (error) {
      thrown = error;
    }
    expect((classifyStepError(thrown, plan) as WorkbenchError).code).toBe('out_of_memory');
    expect(() => throwOnXnnWarning()).not.toThrow();
  });

  it('leaves other errors alone, paths with "room" or "bloom" included', () => {
    for (const message of ["ENOENT: no such file or directory, open '/home/u/room/bloom-oom.json'", 'Training diverged at step 3']) {
      const error = new Error(message);
      expect(isOutOfMemory(error)).toBe(false);
      expect(classifyStepError(error, plan)).toBe(error);
    }
  });
});
