// Runs one training job on either engine in-process for the torch tests: the tfjs engine's loop
// (src-worker/train/loop.ts) or the pytorch engine's child (src-main/engines/pytorch-engine.ts), and
// collects what each reports.
import fs from 'node:fs';
import path from 'node:path';
import { RunConfigSchema, type RunConfig, type RunConfigInput } from '../../src-shared/config.ts';
import type { MetricPoint } from '../../src-shared/runs.ts';
import type { TrainJob, WorkerToMain } from '../../src-shared/worker-protocol.ts';
import { findAppRoot } from '../../src-main/paths.ts';
import { PytorchEngineWorker } from '../../src-main/engines/pytorch-engine.ts';
import { runTraining } from '../../src-worker/train/loop.ts';

export const root = findAppRoot(import.meta.dirname);
export const fixture = (name: string) => path.join(root, 'test', 'fixtures', name);

export interface EngineRun {
  messages: WorkerToMain[];
  points: MetricPoint[];
  /** train/loss by step. */
  losses: Map<number, number>;
}

/** A toy instruction dataset (24 rows) written into `dir`. */
export function toyDataset(dir: string): string {
  const file = path.join(dir, 'toy.jsonl');
  const pairs = [
    ['The cat', 'meow'],
    ['The dog', 'woof'],
    ['He said the cow', 'moo'],
    ['She said the owl', 'hoot'],
    ['A small bird', 'tweet tweet'],
  ];
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    file,
    Array.from({ length: 24 }, (_, i) => JSON.stringify({ prompt: `${pairs[i % 5]![0]} says`, completion: ` ${pairs[i % 5]![1]}` })).join('\n') + '\n',
  );
  return file;
}

export function makeJob(runDir: string, model: string, datasetPath: string, input: RunConfigInput, resumeFrom: string | null = null): TrainJob {
  const config: RunConfig = RunConfigSchema.parse({ ...input, model, dataset: datasetPath, backend: 'cpu' });
  return { type: 'train', runId: path.basename(runDir), config, modelDir: model, datasetPath, runDir, resumeFrom };
}

function collect(messages: WorkerToMain[]): EngineRun {
  const points = messages.flatMap((m) => (m.type === 'metrics' ? m.points : []));
  return { messages, points, losses: new Map(points.filter((p) => p.name === 'train/loss').map((p) => [p.step, p.value])) };
}

export async function runTfjs(job: TrainJob): Promise<EngineRun> {
  const messages: WorkerToMain[] = [];
  await runTraining(job, { emit: (m) => messages.push(m), shouldStop: () => false });
  const failed = messages.find((m) => m.type === 'failed');
  if (failed && failed.type === 'failed') throw new Error(`tfjs run failed: ${failed.error.message}`);
  return collect(messages);
}

export interface PytorchRunOptions {
  /** Called with every message as it arrives, and the engine (to stop or kill it). */
  onMessage?: (message: WorkerToMain, engine: PytorchEngineWorker) => void;
  env?: NodeJS.ProcessEnv;
}

/** Runs the job in the pytorch engine's child; resolves with its messages and exit code (failures are returned, not thrown). */
export function runPytorch(job: TrainJob, options: PytorchRunOptions = {}): Promise<EngineRun & { exitCode: number }> {
  const engine = new PytorchEngineWorker({ appRoot: root, env: options.env });
  const messages: WorkerToMain[] = [];
  return new Promise((resolve) => {
    engine.on('message', (m) => {
      messages.push(m as WorkerToMain);
      options.onMessage?.(m as WorkerToMain, engine);
    });
    engine.on('error', (e) => messages.push({ type: 'log', level: 'error', message: String(e) }));
    engine.on('exit', (code) => resolve({ ...collect(messages), exitCode: code as number }));
    engine.postMessage(job);
  });
}

export function failureOf(run: EngineRun): string | null {
  const failed = run.messages.find((m) => m.type === 'failed');
  return failed && failed.type === 'failed' ? failed.error.message : null;
}
