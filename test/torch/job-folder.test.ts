// export-job / import-run: a torchrun job folder, copied to a temporary place, runs from its own launch
// script (two processes, gloo on the CPU), and import-run brings it back with every metric point its
// rank 0 reported, its checkpoints and its adapter.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src-main/cli.ts';
import { resolveEnginePython } from '../../src-main/engines/pytorch-engine.ts';
import { resolvePaths } from '../../src-main/paths.ts';
import { Store } from '../../src-main/store/index.ts';
import type { WorkerToMain } from '../../src-shared/worker-protocol.ts';
import { fixture, root, toyDataset } from './engine-run.ts';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-job-folder-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

describe('export-job and import-run', () => {
  it('a torchrun job folder runs from its launch script elsewhere, and comes back with all its metrics', async () => {
    const configFile = path.join(work, 'run.json');
    fs.writeFileSync(
      configFile,
      JSON.stringify({
        name: 'cluster job',
        engine: 'pytorch',
        model: fixture('gpt2-tiny'),
        dataset: toyDataset(path.join(work, 'data')),
        lora: { r: 2, alpha: 4, dropout: 0, targetModules: ['c_attn'] },
        distributed: { processes: 2, launcher: 'torchrun' },
        training: { learningRate: 1e-2, batchSize: 4, maxSteps: 4, maxSeqLen: 16, warmupSteps: 1, evalEvery: 2, evalBatches: 1, checkpointEvery: 2, seed: 1 },
      }),
    );
    const exported = path.join(work, 'exported');
    const c = capture();
    expect(await runCli(['export-job', configFile, '--out', exported, '--launcher', 'torchrun'], c.io), c.err.join('\n')).toBe(0);
    for (const file of [
      'launch.sh',
      'job.json',
      'data-plan.json',
      'README.md',
      'data/toy.jsonl',
      'engine-torch/workbench_torch/__main__.py',
      'engine-torch/requirements.txt',
      // QLoRA's bitsandbytes, for a cluster with CUDA.
      'engine-torch/requirements-cuda.txt',
    ]) {
      expect(fs.existsSync(path.join(exported, file)), file).toBe(true);
    }
    // The folder is self-contained: moved elsewhere, it runs from its own script.
    const moved = path.join(work, 'elsewhere', 'job');
    fs.mkdirSync(path.dirname(moved), { recursive: true });
    fs.renameSync(exported, moved);
    const launched = spawnSync('bash', [path.join(moved, 'launch.sh')], {
      cwd: os.tmpdir(),
      encoding: 'utf8',
      timeout: 600_000,
      env: { ...process.env, PYTHON: resolveEnginePython(null, root), OMP_NUM_THREADS: '1', PYTHONPATH: '' },
    });
    expect(launched.status, `${launched.stderr}\n${fs.readFileSync(path.join(moved, 'run', 'train.log'), 'utf8').slice(-3000)}`).toBe(0);
    const messages = fs
      .readFileSync(path.join(moved, 'run', 'messages.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as WorkerToMain);
    expect(messages.filter((m) => m.type === 'started')).toHaveLength(1);
    expect(messages.at(-1)?.type).toBe('trained');
    const reported = messages.flatMap((m) => (m.type === 'metrics' ? m.points : []));

    const dataDir = path.join(work, 'home');
    const i = capture();
    expect(await runCli(['import-run', moved, '--json', '--data-dir', dataDir], i.io), i.err.join('\n')).toBe(0);
    const run = JSON.parse(i.out.join('\n')) as { id: string; status: string; backend: { name: string } };
    expect(run.status).toBe('completed');
    expect(run.backend.name).toBe('pytorch');
    const store = Store.open(resolvePaths({ dataDir }).dbFile);
    try {
      const points = store.metrics.list(run.id);
      expect(points.length).toBe(reported.length);
      expect(points.filter((p) => p.name === 'train/loss').map((p) => p.step)).toEqual([1, 2, 3, 4]);
      expect(
        store.checkpoints
          .list(run.id)
          .map((k) => k.step)
          .sort(),
      ).toEqual([2, 4]);
      const adapter = store.adapters.list().find((a) => a.runId === run.id)!;
      expect(fs.existsSync(path.join(adapter.path, 'adapter_model.safetensors'))).toBe(true);
      expect(adapter.path.startsWith(dataDir)).toBe(true);
    } finally {
      store.close();
    }
  });
});
