// Shared by the method tests: a short headless training run of one method on the gpt2-tiny fixture
// (runTraining in this process, cpu backend), its metrics, and an export of its adapter.
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RunConfigSchema, type RunConfigInput } from '../../src-shared/config.ts';
import type { ExportReport, MetricPoint } from '../../src-shared/runs.ts';
import type { WorkerToMain } from '../../src-shared/worker-protocol.ts';
import { exportAdapter } from '../../src-worker/export/index.ts';
import { runTraining } from '../../src-worker/train/loop.ts';

export const fixtureModelDir = path.join(import.meta.dirname, '..', 'fixtures', 'gpt2-tiny');

const animals: Record<string, string> = { cat: 'meow', dog: 'woof', cow: 'moo', duck: 'quack', owl: 'hoot', bee: 'buzz', pig: 'oink', frog: 'ribbit' };

export interface MethodRun {
  messages: WorkerToMain[];
  runDir: string;
  points(name: string): MetricPoint[];
  exportTo(sourceDir: string, outDir: string): Promise<ExportReport>;
}

/** Trains `config` (method and its settings) for a few steps on a toy dataset the tiny model can learn. */
export async function trainTiny(root: string, name: string, config: RunConfigInput): Promise<MethodRun> {
  const datasetPath = path.join(root, 'animals.jsonl');
  if (!fs.existsSync(datasetPath)) {
    const nouns = Object.keys(animals);
    const rows = Array.from({ length: 48 }, (_, i) =>
      JSON.stringify({ prompt: `${nouns[i % nouns.length]} says`, completion: ` ${animals[nouns[i % nouns.length]!]}` }),
    );
    fs.writeFileSync(datasetPath, `${rows.join('\n')}\n`);
  }
  const runDir = path.join(root, name);
  const messages: WorkerToMain[] = [];
  const parsed = RunConfigSchema.parse({
    model: fixtureModelDir,
    dataset: datasetPath,
    backend: 'cpu',
    ...config,
    training: {
      learningRate: 3e-2,
      batchSize: 8,
      maxSteps: 24,
      maxSeqLen: 16,
      warmupSteps: 2,
      evalEvery: 12,
      evalBatches: 1,
      checkpointEvery: 12,
      seed: 3,
      validationFraction: 0.1,
      ...config.training,
    },
  });
  await runTraining(
    { type: 'train', runId: name, config: parsed, modelDir: fixtureModelDir, datasetPath, runDir, resumeFrom: null },
    { emit: (m) => messages.push(m), shouldStop: () => false },
  );
  return {
    messages,
    runDir,
    points: (metric) => messages.flatMap((m) => (m.type === 'metrics' ? m.points.filter((p) => p.name === metric) : [])),
    exportTo: (sourceDir, outDir) => exportAdapter({ type: 'export', sourceDir, modelDir: fixtureModelDir, outDir, backend: 'cpu', format: 'peft' }),
  };
}

export const tempRoot = (prefix: string) => fs.mkdtempSync(path.join(tmpdir(), prefix));

export const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
