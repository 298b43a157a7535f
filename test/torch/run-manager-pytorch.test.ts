// A pytorch run through the RunManager, as the app and the CLI start it: the same store, events and
// run folder as a tfjs run; its adapter exported and verified by the existing export code; kill -9 of
// the engine leaves the run interrupted, and Resume continues with the same batches (dropout on, its
// generator state checkpointed): every step's loss equals an uninterrupted run's.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunConfigInput } from '../../src-shared/config.ts';
import type { Run } from '../../src-shared/runs.ts';
import { resolvePaths, type WorkbenchPaths } from '../../src-main/paths.ts';
import { RunManager } from '../../src-main/runs.ts';
import { Store } from '../../src-main/store/index.ts';
import { fixture, toyDataset } from './engine-run.ts';

let dataDir: string;
let paths: WorkbenchPaths;
let store: Store;
let manager: RunManager;

beforeAll(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-torch-runs-'));
  paths = resolvePaths({ dataDir });
  store = Store.open(paths.dbFile);
  manager = new RunManager({ store, paths });
});
afterAll(async () => {
  await manager.close();
  store.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

function config(name: string): Extract<RunConfigInput, { lora?: unknown }> {
  return {
    name,
    engine: 'pytorch',
    model: fixture('gpt2-tiny'),
    dataset: toyDataset(path.join(dataDir, 'data')),
    backend: 'cpu',
    lora: { r: 2, alpha: 4, dropout: 0.2, targetModules: ['c_attn'] },
    training: { learningRate: 1e-2, batchSize: 4, maxSteps: 9, maxSeqLen: 16, warmupSteps: 1, evalEvery: 3, evalBatches: 1, checkpointEvery: 3, seed: 3 },
  };
}

const lossesOf = (runId: string) => new Map(store.metrics.list(runId, 'train/loss').map((p) => [p.step, p.value]));

/** The engine's process: the one whose command line names this run's job file (Linux /proc). */
function enginePid(runDir: string): number | null {
  const job = path.join(runDir, 'engine', 'job.json');
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmdline.includes(job) && cmdline.includes('workbench_torch')) return Number(entry);
    } catch {
      // The process ended while we looked.
    }
  }
  return null;
}

describe.skipIf(process.platform !== 'linux')('pytorch runs in the RunManager', () => {
  let reference: Run;

  it('trains, records every step, and its adapter exports and verifies with the existing export code', async () => {
    reference = await manager.waitForRun((await manager.start(config('uninterrupted'))).id);
    expect(reference.error).toBeNull();
    expect(reference.status).toBe('completed');
    expect(reference.backend?.name).toBe('pytorch');
    expect([...lossesOf(reference.id).keys()].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(store.metrics.list(reference.id, 'val/loss').length).toBe(3);
    const report = await manager.exportAdapter({ runId: reference.id, format: 'peft' });
    expect(report.verification.passed).toBe(true);
    expect(report.verification.maxAbsDiffToTrained).toBeLessThanOrEqual(1e-5);
    expect(fs.existsSync(path.join(report.outDir, 'adapter_config.json'))).toBe(true);
  });

  it('a SeLoRA run exports its flattened LoRA for PEFT and its native tensors for the workbench, both verified', async () => {
    const { lora, ...rest } = config('selora');
    const run = await manager.waitForRun(
      (
        await manager.start({
          ...rest,
          method: 'selora',
          lora: { ...lora, dropout: 0 },
          selora: { hiddenSize: 4 },
          training: { ...rest.training, maxSteps: 4 },
        } as RunConfigInput)
      ).id,
    );
    expect(run.error).toBeNull();
    expect(store.metrics.list(run.id, 'loss/sem').length).toBe(4);
    const peft = await manager.exportAdapter({ runId: run.id, format: 'peft' });
    expect(peft.verification.passed).toBe(true);
    expect(peft.flattening?.fromMethod).toBe('selora');
    expect(fs.existsSync(path.join(peft.outDir, 'adapter_config.json'))).toBe(true);
    const native = await manager.exportAdapter({ runId: run.id, format: 'workbench' });
    expect(native.verification.passed).toBe(true);
    expect(native.peftLoadable).toBe(false);
  });

  it('Stop reaches the engine on its stdin: it checkpoints and the run is stopped, resumable', async () => {
    const run = await manager.start({ ...config('stopped'), training: { ...config('stopped').training, maxSteps: 200, checkpointEvery: 1000 } });
    await new Promise<void>((resolve) => {
      const unsubscribe = manager.subscribe((event) => {
        if (event.kind === 'run' && event.run.id === run.id && (event.run.progress?.step ?? 0) >= 2) {
          unsubscribe();
          void manager.stop(run.id).then(() => resolve());
        }
      });
    });
    const stopped = await manager.waitForRun(run.id);
    expect(stopped.status).toBe('stopped');
    expect(stopped.lastCheckpointStep).toBeGreaterThanOrEqual(2);
    expect(stopped.lastCheckpointStep).toBeLessThan(200);
    expect(
      fs.existsSync(path.join(paths.runDir(run.id), 'checkpoints', `step-${String(stopped.lastCheckpointStep).padStart(6, '0')}`, 'trainer_state.json')),
    ).toBe(true);
  });

  it('kill -9 of the engine leaves the run interrupted; resume gives the uninterrupted losses', async () => {
    const run = await manager.start(config('killed'));
    const runDir = paths.runDir(run.id);
    const killedAfter = await new Promise<number>((resolve) => {
      const unsubscribe = manager.subscribe((event) => {
        if (event.kind !== 'run' || event.run.id !== run.id || (event.run.lastCheckpointStep ?? 0) < 3) return;
        const pid = enginePid(runDir);
        if (pid === null) return;
        unsubscribe();
        process.kill(pid, 'SIGKILL');
        resolve(event.run.lastCheckpointStep!);
      });
    });
    const interrupted = await manager.waitForRun(run.id);
    expect(interrupted.status).toBe('interrupted');
    expect(interrupted.error).toMatch(/killed/);
    expect(killedAfter).toBeLessThan(9);
    const resumed = await manager.waitForRun((await manager.resume(run.id)).id);
    expect(resumed.error).toBeNull();
    expect(resumed.status).toBe('completed');
    const expected = lossesOf(reference.id);
    const got = lossesOf(run.id);
    expect([...got.keys()].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const [step, loss] of expected) expect(Math.abs(got.get(step)! - loss), `step ${step}`).toBeLessThanOrEqual(1e-6);
  });
});
