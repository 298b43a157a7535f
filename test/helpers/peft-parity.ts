// The adapters of the PyTorch parity fixture (test/fixtures/peft-parity): LoRA, LoRA+ and bias-aware
// LoRA trained a few steps with fixed seeds on the tiny GPT-2 and Llama fixtures, then exported as
// PEFT folders. scripts/make-fixtures-peft.ts writes them; the unit test trains them again the same way.
import fs from 'node:fs';
import path from 'node:path';
import { RunConfigSchema, type RunConfigInput } from '../../src-shared/config.ts';
import type { ExportReport } from '../../src-shared/runs.ts';
import { exportAdapter } from '../../src-worker/export/index.ts';
import { runTraining } from '../../src-worker/train/loop.ts';

export const PARITY_DIR = path.join('test', 'fixtures', 'peft-parity');
export const families = ['gpt2-tiny', 'llama-tiny'] as const;
export const parityMethods = ['lora', 'lora-plus', 'bias-aware'] as const;

/** Small ranks and few targets keep each committed adapter around 2 KB; rsLoRA is exercised on Llama. */
function settings(family: (typeof families)[number], method: (typeof parityMethods)[number]): RunConfigInput {
  const lora =
    family === 'gpt2-tiny'
      ? { r: 2, alpha: 4, dropout: 0.05, targetModules: ['c_attn'], useRslora: false }
      : { r: 2, alpha: 4, dropout: 0.05, targetModules: ['q_proj', 'v_proj'], useRslora: method !== 'lora' };
  if (method === 'lora-plus') return { method, lora, loraPlus: { ratio: 4 } };
  if (method === 'bias-aware') return { method, lora, biasAware: { lambdaBias: 0.1, lambdaKl: 0.1 } };
  return { method, lora };
}

/**
 * Trains (cpu, seed 11, 6 steps on a toy dataset) and exports one fixture adapter into outDir. The
 * model folder is named relative to `root` (the repository) so base_model_name_or_path carries no
 * machine's path.
 */
export async function makeParityAdapter(
  root: string,
  work: string,
  family: (typeof families)[number],
  method: (typeof parityMethods)[number],
  outDir: string,
): Promise<ExportReport> {
  const modelDir = path.join('test', 'fixtures', family);
  const datasetPath = path.join(work, 'parity-toy.jsonl');
  if (!fs.existsSync(datasetPath)) {
    const pairs = [
      ['The cat', 'meow'],
      ['The dog', 'woof'],
      ['He said the cow', 'moo'],
      ['She said the owl', 'hoot'],
    ];
    fs.writeFileSync(
      datasetPath,
      Array.from({ length: 24 }, (_, i) => JSON.stringify({ prompt: `${pairs[i % 4]![0]} says`, completion: ` ${pairs[i % 4]![1]}` })).join('\n') + '\n',
    );
  }
  const runDir = path.join(work, `${family}-${method}`);
  const config = RunConfigSchema.parse({
    model: modelDir,
    dataset: datasetPath,
    backend: 'cpu',
    ...settings(family, method),
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
  const cwd = process.cwd();
  process.chdir(root);
  try {
    const failures: string[] = [];
    await runTraining(
      { type: 'train', runId: `parity-${family}-${method}`, config, modelDir, datasetPath, runDir, resumeFrom: null },
      {
        emit: (m) => m.type === 'failed' && failures.push(m.error.message),
        shouldStop: () => false,
      },
    );
    if (failures.length) throw new Error(failures.join('; '));
    return await exportAdapter({ type: 'export', sourceDir: path.join(runDir, 'adapter'), modelDir, outDir, backend: 'cpu', format: 'peft' });
  } finally {
    process.chdir(cwd);
  }
}
