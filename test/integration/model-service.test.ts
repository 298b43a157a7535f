// ModelService with the real engine worker: inspecting the embedded model, and the Playground's
// base-vs-adapter generation with an adapter a short run just put in the library.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { ModelService } from '../../src-main/models.ts';
import { resolvePaths, type WorkbenchPaths } from '../../src-main/paths.ts';
import { RunManager } from '../../src-main/runs.ts';
import { Store } from '../../src-main/store/index.ts';

let dataDir: string;
let paths: WorkbenchPaths;

beforeAll(() => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'lw-models-'));
  paths = resolvePaths({ dataDir });
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('ModelService with the real worker', () => {
  it('inspects the default model and generates base vs adapter for a library adapter', async () => {
    const store = Store.open(paths.dbFile);
    const manager = new RunManager({ store, paths });
    const models = new ModelService({ store, paths });
    try {
      const inspection = await models.inspect({ model: 'default', batchSize: 4, maxSeqLen: 64, r: 4 });
      expect(inspection.path).toBe(paths.defaultModelDir);
      expect(inspection.modelType).toBe('gpt2');
      expect(inspection.parameterCount).toBe(1_350_400);
      expect(inspection.memory).toMatchObject({ batchSize: 4, maxSeqLen: 64, r: 4, weightsBytes: 1_350_400 * 4 });
      // The request's engine and accelerator reach the estimate: the pytorch engine trains in bf16 on CUDA.
      const onCuda = await models.inspect({ model: 'default', batchSize: 4, maxSeqLen: 64, r: 4, engine: 'pytorch', accelerator: 'cuda' });
      expect(onCuda.memory).toMatchObject({ engine: 'pytorch', accelerator: 'cuda', precision: 'bf16', weightsBytes: 1_350_400 * 2 });

      // A high learning rate for a few steps moves lora_B far enough for greedy outputs to differ.
      const run = await manager.start({
        name: 'playground',
        backend: 'cpu',
        training: { maxSteps: 6, batchSize: 4, maxSeqLen: 32, learningRate: 5e-2, warmupSteps: 0, checkpointEvery: 6, evalEvery: 6, evalBatches: 1 },
      });
      expect((await manager.waitForRun(run.id)).status).toBe('completed');
      const adapter = manager.adapters().find((a) => a.runId === run.id)!;

      const result = await models.generate({ prompt: 'Once upon a time', adapterId: adapter.id, sampling: { maxNewTokens: 12 }, backend: 'cpu' });
      expect(result.renderedPrompt).toBe('Once upon a time');
      expect(result.base.tokens).toBeGreaterThan(0);
      expect(result.adapter).not.toBeNull();
      expect(result.adapter!.text).not.toBe(result.base.text);
      expect(result.backend.name).toBe('cpu');

      const unknown = await models.generate({ prompt: 'x', adapterId: 'nope' }).catch((e: unknown) => e);
      expect(unknown).toBeInstanceOf(WorkbenchError);
      expect((unknown as WorkbenchError).code).toBe('not_found');
    } finally {
      await Promise.all([models.close(), manager.close()]);
      store.close();
    }
  });

  it('imports a llama2.c checkpoint into a Llama folder, inspects it, and refuses to overwrite it', async () => {
    const store = Store.open(paths.dbFile);
    const models = new ModelService({ store, paths });
    const fixture = path.join(import.meta.dirname, '..', 'fixtures', 'llama2c-tiny');
    const request = {
      format: 'llama2c' as const,
      checkpoint: path.join(fixture, 'model.bin'),
      tokenizer: path.join(fixture, 'tokenizer.bin'),
      outDir: path.join(dataDir, 'imported'),
    };
    try {
      const result = await models.import(request);
      expect(result.outDir).toBe(request.outDir);
      expect([...result.files].sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
      expect(result.inspection).toMatchObject({
        path: request.outDir,
        modelType: 'llama',
        supported: true,
        architecture: { layers: 2, hiddenSize: 32, heads: 4, kvHeads: 2, vocabSize: 324, maxPositions: 32 },
      });
      // dim 32, hidden 64, 2 layers, 4 heads of 8 with 2 key/value heads, vocabulary 324, untied head.
      const perLayer = 32 * 32 * 2 + 32 * 16 * 2 + 3 * 32 * 64 + 2 * 32;
      expect(result.inspection.parameterCount).toBe(324 * 32 * 2 + 2 * perLayer + 32);

      const again = await models.import(request).catch((e: unknown) => e);
      expect((again as WorkbenchError).message).toMatch(/already exists and is not empty/);
      const missing = await models
        .import({ ...request, checkpoint: path.join(fixture, 'nope.bin'), outDir: path.join(dataDir, 'other') })
        .catch((e: unknown) => e);
      expect(missing).toMatchObject({ code: 'not_found' });
      expect((missing as WorkbenchError).message).toMatch(/checkpoint file .*nope\.bin does not exist/);
    } finally {
      await models.close();
      store.close();
    }
  });
});
