// The main process with the real engine: a worker thread running src-worker/main.ts on the
// embedded default model and sample dataset, on the cpu backend, persisting into SQLite.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunEvent } from '../../src-shared/api.ts';
import type { RunConfigInput } from '../../src-shared/config.ts';
import type { MetricPoint } from '../../src-shared/runs.ts';
import { findAppRoot, resolvePaths, type WorkbenchPaths } from '../../src-main/paths.ts';
import { RunManager } from '../../src-main/runs.ts';
import { Store } from '../../src-main/store/index.ts';

const appRoot = findAppRoot(path.dirname(fileURLToPath(import.meta.url)));
const bin = path.join(appRoot, 'bin', 'lora-workbench.mjs');

// Small enough for well under two minutes per run on one free CPU core. Validation loss is measured
// every 3 steps on the same held-out batches: unlike the loss of each step's own batch, it is
// comparable across steps.
const config: RunConfigInput = {
  name: 'integration',
  backend: 'cpu',
  training: { maxSteps: 30, batchSize: 4, maxSeqLen: 32, learningRate: 5e-3, warmupSteps: 3, checkpointEvery: 10, evalEvery: 3, evalBatches: 2, seed: 7 },
};

let dataDir: string;
let paths: WorkbenchPaths;

beforeAll(() => {
  paths = resolvePaths({ dataDir: path.join(os.tmpdir(), 'unused') });
  const missing = [path.join(appRoot, 'src-worker', 'main.ts'), path.join(paths.defaultModelDir, 'config.json'), paths.sampleDatasetPath].filter(
    (f) => !existsSync(f),
  );
  if (missing.length) throw new Error(`The engine or the embedded resources are missing: ${missing.join(', ')}`);
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'lw-integration-'));
  paths = resolvePaths({ dataDir });
});
afterAll(() => {
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const lossSteps = (points: MetricPoint[]) => points.filter((p) => p.name === 'train/loss').map((p) => p.step);

describe('RunManager with the real worker', () => {
  it('trains 30 steps on cpu, records everything in SQLite, and exports a verified PEFT adapter', async () => {
    const store = Store.open(paths.dbFile);
    const manager = new RunManager({ store, paths });
    const events: RunEvent[] = [];
    manager.subscribe((e) => events.push(e));
    try {
      const run = await manager.start(config);
      const final = await manager.waitForRun(run.id);
      expect(final.error).toBeNull();
      expect(final.status).toBe('completed');
      expect(final.backend?.name).toBe('cpu');
      expect(final.progress).toMatchObject({ step: 30, maxSteps: 30 });
      expect(final.startedAt).not.toBeNull();
      expect(final.finishedAt).not.toBeNull();

      const losses = store.metrics.list(run.id, 'train/loss');
      expect(new Set(lossSteps(losses)).size).toBe(losses.length);
      expect(Math.max(...lossSteps(losses))).toBe(30);
      expect(losses.every((p) => Number.isFinite(p.value))).toBe(true);
      const validation = store.metrics.list(run.id, 'val/loss');
      expect(validation.map((p) => p.step)).toEqual([3, 6, 9, 12, 15, 18, 21, 24, 27, 30]);
      expect(validation.at(-1)!.value).toBeLessThan(validation[0]!.value);

      // The engine keeps its newest checkpoints only; the rows follow the folders that remain.
      const checkpoints = store.checkpoints.list(run.id);
      expect(checkpoints.map((c) => c.step)).toContain(30);
      expect(checkpoints.map((c) => c.step)).not.toContain(10);
      for (const c of checkpoints) expect(existsSync(c.dir)).toBe(true);
      expect(final.lastCheckpointStep).toBe(checkpoints.at(-1)!.step);

      const adapter = store.adapters.require(final.adapterId!);
      expect(adapter).toMatchObject({ runId: run.id, name: 'integration', method: 'lora', baseModel: 'default', step: 30 });
      expect(adapter.trainableParams).toBeGreaterThan(0);
      expect(existsSync(adapter.path)).toBe(true);

      expect(events.some((e) => e.kind === 'metrics' && e.runId === run.id)).toBe(true);
      expect(events.some((e) => e.kind === 'run' && e.run.status === 'running')).toBe(true);

      const outDir = path.join(dataDir, 'export-out');
      const report = await manager.exportAdapter({ runId: run.id, outDir });
      expect(report.outDir).toBe(outDir);
      const names = report.files.map((f) => f.name);
      expect(names).toEqual(expect.arrayContaining(['adapter_model.safetensors', 'adapter_config.json']));
      for (const file of report.files) expect(statSync(path.join(outDir, file.name)).size).toBe(file.bytes);
      const peftConfig = JSON.parse(readFileSync(path.join(outDir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
      expect(peftConfig).toMatchObject({ peft_type: 'LORA', r: 8 });
      expect(report.verification.passed).toBe(true);
      expect(report.verification.maxAbsDiffToTrained).toBeLessThan(1e-4);
      expect(report.verification.maxAbsDiffToBase).toBeGreaterThan(0);
    } finally {
      await manager.close();
      store.close();
    }
  });

  it('survives a killed process: the run is interrupted, then resumes from its last checkpoint and completes', async () => {
    const configFile = path.join(dataDir, 'kill-run.json');
    writeFileSync(configFile, JSON.stringify({ ...config, name: 'killed' }));
    // The first process is the CLI, killed with SIGKILL: nothing of it gets to clean up.
    const child = spawn(process.execPath, [bin, 'train', '--config', configFile, '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));

    const watcher = Store.open(paths.dbFile);
    let runId: string | null = null;
    const deadline = Date.now() + 150_000;
    for (;;) {
      const run = watcher.runs.list().find((r) => r.name === 'killed');
      if (run && run.lastCheckpointStep !== null && run.status === 'running') {
        runId = run.id;
        break;
      }
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`No checkpoint before the kill.\nstdout:\n${stdout}\nstderr:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    watcher.close();
    expect(stdout).toMatch(/^step\s+\d+\/30 {2}loss /m);

    const store = Store.open(paths.dbFile);
    const manager = new RunManager({ store, paths });
    try {
      const interrupted = manager.get(runId);
      expect(interrupted.status).toBe('interrupted');
      const checkpointStep = interrupted.lastCheckpointStep!;
      expect(checkpointStep).toBeGreaterThanOrEqual(10);
      expect(checkpointStep).toBeLessThan(30);

      const resumed = await manager.resume(runId);
      expect(resumed.status).toBe('queued');
      const final = await manager.waitForRun(runId);
      expect(final.error).toBeNull();
      expect(final.status).toBe('completed');
      expect(final.progress?.step).toBe(30);
      expect(final.startedAt).toBe(interrupted.startedAt);

      // One point per step: the steps the killed process trained past its checkpoint were replaced.
      const steps = lossSteps(store.metrics.list(runId));
      expect(new Set(steps).size).toBe(steps.length);
      expect(Math.max(...steps)).toBe(30);
      expect(steps.filter((s) => s <= checkpointStep).length).toBeGreaterThan(0);
      expect(store.adapters.require(final.adapterId!).step).toBe(30);
    } finally {
      await manager.close();
      store.close();
    }
  });
});
