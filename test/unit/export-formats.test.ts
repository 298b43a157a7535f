// Export formats beside 'peft': 'merged' (the adapter folded into a full Hugging Face model folder,
// loaded back and compared with base + adapter) and 'flattened' (SeLoRA's plain LoRA, with its cost).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunConfigSchema, type RunConfigInput } from '../../src-shared/config.ts';
import { exportAdapter } from '../../src-worker/export/index.ts';
import { readSidecar } from '../../src-worker/formats/adapter-folder.ts';
import { probeLogits, readProbe, maxAbsDiff } from '../../src-worker/export/probe.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { readSafetensorsFile } from '../../src-worker/formats/safetensors.ts';
import { runTraining } from '../../src-worker/train/loop.ts';
import { getMethod } from '../../src-worker/methods/index.ts';
import { methodSettingsOf } from '../../src-shared/methods.ts';
import { tempRoot } from './method-run.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
let root: string;

/** A few training steps of `config` on `modelDir` with a toy dataset; returns the adapter folder. */
async function train(modelDir: string, name: string, config: RunConfigInput): Promise<string> {
  const datasetPath = path.join(root, 'toy.jsonl');
  if (!fs.existsSync(datasetPath)) {
    const pairs = [
      ['cat', 'meow'],
      ['dog', 'woof'],
      ['cow', 'moo'],
      ['owl', 'hoot'],
    ];
    fs.writeFileSync(
      datasetPath,
      Array.from({ length: 24 }, (_, i) => JSON.stringify({ prompt: `${pairs[i % 4]![0]} says`, completion: ` ${pairs[i % 4]![1]}` })).join('\n') + '\n',
    );
  }
  const runDir = path.join(root, name);
  const parsed = RunConfigSchema.parse({
    model: modelDir,
    dataset: datasetPath,
    backend: 'cpu',
    ...config,
    training: {
      learningRate: 3e-2,
      batchSize: 8,
      maxSteps: 6,
      maxSeqLen: 16,
      warmupSteps: 0,
      evalEvery: 6,
      evalBatches: 1,
      checkpointEvery: 6,
      seed: 3,
      validationFraction: 0.1,
    },
  });
  const failures: string[] = [];
  await runTraining(
    { type: 'train', runId: name, config: parsed, modelDir, datasetPath, runDir, resumeFrom: null },
    {
      emit: (m) => m.type === 'failed' && failures.push(m.error.message),
      shouldStop: () => false,
    },
  );
  expect(failures).toEqual([]);
  return path.join(runDir, 'adapter');
}

beforeAll(() => {
  root = tempRoot('lw-export-formats-');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe("format 'merged'", () => {
  for (const [family, targetModules] of [
    ['gpt2-tiny', ['c_attn', 'c_proj']],
    ['llama-tiny', ['q_proj', 'v_proj', 'down_proj']],
  ] as const) {
    it(`folds the adapter into ${family}'s weights, keeping keys, shapes, dtype and the other files`, async () => {
      const modelDir = path.join(fixtures, family);
      const adapterDir = await train(modelDir, `merged-${family}`, {
        lora: { r: 4, alpha: 8, dropout: 0, targetModules: [...targetModules], useRslora: family === 'llama-tiny' },
      });
      const outDir = path.join(root, `out-merged-${family}`);
      const report = await exportAdapter({ type: 'export', sourceDir: adapterDir, modelDir, outDir, backend: 'cpu', format: 'merged' });
      expect(report.verification.passed).toBe(true);
      expect(report.verification.maxAbsDiffToTrained).toBeLessThanOrEqual(1e-4);
      expect(report.verification.maxAbsDiffToBase).toBeGreaterThan(1e-3);
      const names = report.files.map((f) => f.name).sort();
      expect(names).toEqual(
        fs
          .readdirSync(modelDir)
          .filter((n) => fs.statSync(path.join(modelDir, n)).isFile())
          .sort(),
      );
      expect(fs.readFileSync(path.join(outDir, 'tokenizer.json'))).toEqual(fs.readFileSync(path.join(modelDir, 'tokenizer.json')));
      const base = await readSafetensorsFile(path.join(modelDir, 'model.safetensors'));
      const merged = await readSafetensorsFile(path.join(outDir, 'model.safetensors'));
      expect([...merged.tensors.keys()].sort()).toEqual([...base.tensors.keys()].sort());
      let changed = 0;
      for (const [key, t] of base.tensors) {
        const m = merged.tensors.get(key)!;
        expect([m.dtype, m.shape]).toEqual([t.dtype, t.shape]);
        if (maxAbsDiff(m.data, t.data) > 0) changed++;
      }
      // Exactly the adapted modules' weights changed (c_proj names both attn.c_proj and mlp.c_proj in GPT-2).
      const adapted = [...(await readSafetensorsFile(path.join(adapterDir, 'adapter_model.safetensors'))).tensors.keys()].filter((k) =>
        k.endsWith('lora_A.weight'),
      );
      expect(changed).toBe(adapted.length);
      expect(adapted.length).toBe(6); // 2 layers x (c_attn, attn.c_proj, mlp.c_proj) or (q_proj, v_proj, down_proj)

      // Independently of the export's own check: the folder loads as a model equal to base + adapter.
      const sidecar = await readSidecar(adapterDir);
      const model = await loadCausalLM(modelDir);
      const reloaded = await loadCausalLM(outDir);
      const method = getMethod(sidecar.method);
      const adapter = method.create(model, method.parseSettings(methodSettingsOf(sidecar.config)), 0);
      try {
        adapter.loadStateDict((await readSafetensorsFile(path.join(adapterDir, 'adapter_model.safetensors'))).tensors);
        const { probe } = (await readProbe(adapterDir))!;
        const expected = await probeLogits(model, adapter, probe);
        expect(maxAbsDiff((await probeLogits(reloaded, null, probe)).data, expected.data)).toBeLessThanOrEqual(1e-4);
      } finally {
        adapter.dispose();
        model.dispose();
        reloaded.dispose();
      }
    }, 60_000);
  }
});

describe("format 'flattened'", () => {
  let seloraDir: string;
  beforeAll(async () => {
    seloraDir = await train(path.join(fixtures, 'gpt2-tiny'), 'selora', { method: 'selora', selora: { hiddenSize: 8, lambdaSem: 0.1 } });
  }, 60_000);

  it("exports SeLoRA's flattened LoRA, verified, with its cost against the native adapter", async () => {
    const outDir = path.join(root, 'out-flat');
    const report = await exportAdapter({
      type: 'export',
      sourceDir: seloraDir,
      modelDir: path.join(fixtures, 'gpt2-tiny'),
      outDir,
      backend: 'cpu',
      format: 'flattened',
    });
    expect(report.verification.passed).toBe(true);
    expect(report.flattening?.fromMethod).toBe('selora');
    const native = await readProbe(seloraDir);
    const flat = await readProbe(path.join(seloraDir, 'flattened'));
    expect(report.flattening!.maxAbsLogitDiffToNative).toBe(maxAbsDiff(native!.logits.data, flat!.logits.data));
    expect(report.flattening!.maxAbsLogitDiffToNative).toBeCloseTo((await readSidecar(path.join(seloraDir, 'flattened'))).flattenedFrom!.maxAbsLogitDiff, 6);
    const tensors = (await readSafetensorsFile(path.join(outDir, 'adapter_model.safetensors'))).tensors;
    expect([...tensors.keys()].every((k) => /\.lora_[AB]\.weight$/.test(k))).toBe(true);
    expect((await readSidecar(outDir)).method).toBe('lora');
  }, 60_000);

  it('merges SeLoRA through its flattened LoRA', async () => {
    const report = await exportAdapter({
      type: 'export',
      sourceDir: seloraDir,
      modelDir: path.join(fixtures, 'gpt2-tiny'),
      outDir: path.join(root, 'out-flat-merged'),
      backend: 'cpu',
      format: 'merged',
    });
    expect(report.verification.passed).toBe(true);
    expect(report.files.map((f) => f.name)).toContain('model.safetensors');
  }, 60_000);

  it('refuses to flatten an adapter that needs no flattening', async () => {
    const loraDir = await train(path.join(fixtures, 'gpt2-tiny'), 'plain', {});
    await expect(
      exportAdapter({
        type: 'export',
        sourceDir: loraDir,
        modelDir: path.join(fixtures, 'gpt2-tiny'),
        outDir: path.join(root, 'x'),
        backend: 'cpu',
        format: 'flattened',
      }),
    ).rejects.toThrow(/needs no flattening.*format "peft"/);
  }, 60_000);
});
