// Short, seeded training runs on the tiny fixtures for the interop tests: each method trains six steps on
// cpu (enough to move every adapter well away from the base model), then exports in a chosen format.
import fs from 'node:fs';
import path from 'node:path';
import { RunConfigSchema, type RunConfigInput } from '../../src-shared/config.ts';
import { settingsSectionsOf } from '../../src-shared/methods.ts';
import type { ExportReport } from '../../src-shared/runs.ts';
import { exportAdapter } from '../../src-worker/export/index.ts';
import { runTraining } from '../../src-worker/train/loop.ts';
import { repoRoot } from './python.ts';

export const interopFamilies = ['gpt2-tiny', 'llama-tiny', 'llama-tiny-qwen2'] as const;
export type InteropFamily = (typeof interopFamilies)[number];

const targets: Record<InteropFamily, string[]> = {
  'gpt2-tiny': ['c_attn', 'c_proj'],
  'llama-tiny': ['q_proj', 'v_proj', 'down_proj'],
  'llama-tiny-qwen2': ['q_proj', 'k_proj', 'o_proj'],
};

/** Each trained setting: the method and what differs from plain LoRA. */
export const trainedSettings = {
  lora: { method: 'lora' },
  rslora: { method: 'lora', rslora: true },
  'lora-plus': { method: 'lora-plus' },
  'bias-aware': { method: 'bias-aware' },
  'prompt-tuning': { method: 'prompt-tuning' },
  selora: { method: 'selora' },
} as const satisfies Record<string, { method: RunConfigInput['method']; rslora?: boolean }>;
export type TrainedSetting = keyof typeof trainedSettings;

function writeToyDataset(file: string): void {
  if (fs.existsSync(file)) return;
  const pairs = [
    ['The cat', 'meow'],
    ['The dog', 'woof'],
    ['He said the cow', 'moo'],
    ['She said the owl', 'hoot'],
  ];
  fs.writeFileSync(
    file,
    Array.from({ length: 24 }, (_, i) => JSON.stringify({ prompt: `${pairs[i % 4]![0]} says`, completion: ` ${pairs[i % 4]![1]}` })).join('\n') + '\n',
  );
}

export interface TrainedRun {
  modelDir: string;
  adapterDir: string;
  exportTo(format: 'peft' | 'flattened' | 'merged', outDir: string): Promise<ExportReport>;
}

export async function trainFixture(work: string, family: InteropFamily, setting: TrainedSetting): Promise<TrainedRun> {
  const modelDir = path.join(repoRoot, 'test', 'fixtures', family);
  const datasetPath = path.join(work, 'toy.jsonl');
  writeToyDataset(datasetPath);
  const spec = trainedSettings[setting];
  const runDir = path.join(work, `${family}-${setting}`);
  const sections: Record<string, unknown> = {
    lora: { r: 2, alpha: 4, dropout: 0.05, targetModules: targets[family], useRslora: 'rslora' in spec },
    loraPlus: { ratio: 4 },
    biasAware: { lambdaBias: 0.1, lambdaKl: 0.1 },
    promptTuning: { numVirtualTokens: 4 },
    selora: { hiddenSize: 8 },
  };
  const config = RunConfigSchema.parse({
    model: modelDir,
    dataset: datasetPath,
    backend: 'cpu',
    method: spec.method,
    // Only the sections the method reads: a configuration naming another method's settings is refused.
    ...Object.fromEntries(settingsSectionsOf(spec.method).map(({ settingsKey }) => [settingsKey, sections[settingsKey]])),
    training: {
      learningRate: 3e-2,
      batchSize: 8,
      maxSteps: 6,
      maxSeqLen: 16,
      warmupSteps: 0,
      evalEvery: 6,
      evalBatches: 1,
      checkpointEvery: 6,
      seed: 11,
      validationFraction: 0.1,
    },
  });
  const failures: string[] = [];
  await runTraining(
    { type: 'train', runId: `interop-${family}-${setting}`, config, modelDir, datasetPath, runDir, resumeFrom: null },
    {
      emit: (m) => m.type === 'failed' && failures.push(m.error.message),
      shouldStop: () => false,
    },
  );
  if (failures.length) throw new Error(`${family} ${setting}: ${failures.join('; ')}`);
  const adapterDir = path.join(runDir, 'adapter');
  return {
    modelDir,
    adapterDir,
    exportTo: (format, outDir) => exportAdapter({ type: 'export', sourceDir: adapterDir, modelDir, outDir, backend: 'cpu', format }),
  };
}
