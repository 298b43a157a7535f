// Issue 15, finding 6: runs (with their folders), adapters and evaluations can be deleted through the API
// and the CLI (which asks for --yes), never while in use, never touching files outside the data folder;
// and the data folder's size is reported.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dispatch, type WorkbenchApi } from '../../src-shared/api.ts';
import { RunConfigSchema } from '../../src-shared/config.ts';
import { createWorkbenchApi } from '../../src-main/api.ts';
import { runCli } from '../../src-main/cli.ts';
import { resolvePaths, type WorkbenchPaths } from '../../src-main/paths.ts';
import { createServices, type Services } from '../../src-main/services.ts';
import { Store } from '../../src-main/store/index.ts';

let root: string;
let paths: WorkbenchPaths;
let store: Store;
let services: Services;
let api: WorkbenchApi;
const createdAt = '2026-01-01T00:00:00.000Z';

beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'lw-deletion-'));
  paths = resolvePaths({ dataDir: path.join(root, 'data') });
  store = Store.open(paths.dbFile);
  services = createServices({
    store,
    paths,
    createWorker: () => {
      throw new Error('no worker in this test');
    },
  });
  api = createWorkbenchApi({ ...services, paths, mode: 'headless' });
});
afterEach(async () => {
  await services.close();
  store.close();
  rmSync(root, { recursive: true, force: true });
});

/** A finished run with a checkpoint, metrics, its final adapter in its folder and a completed evaluation of it. */
function seedRun(id: string) {
  const runDir = paths.runDir(id);
  mkdirSync(path.join(runDir, 'adapter'), { recursive: true });
  writeFileSync(path.join(runDir, 'adapter', 'adapter_model.safetensors'), Buffer.alloc(10_000));
  store.runs.create({ id, name: id, config: RunConfigSchema.parse({}), createdAt, ownerPid: null });
  store.runs.update(id, { status: 'completed' });
  store.metrics.insertBatch([[id, [{ step: 1, name: 'train/loss', value: 2, time: 1 }]]]);
  store.checkpoints.add({ runId: id, step: 1, dir: path.join(runDir, 'checkpoints', 'step-000001'), createdAt });
  const adapterId = `ad-${id}`;
  store.adapters.create({
    id: adapterId,
    runId: id,
    name: id,
    method: 'lora',
    baseModel: 'default',
    path: path.join(runDir, 'adapter'),
    step: 1,
    trainableParams: 1,
    createdAt,
  });
  const resultPath = path.join(paths.dataDir, 'evals', `ev-${id}.json`);
  mkdirSync(path.dirname(resultPath), { recursive: true });
  writeFileSync(resultPath, '{}');
  store.evaluations.create({
    id: `ev-${id}`,
    runId: id,
    adapterId,
    suite: 'bias',
    model: 'default',
    backendChoice: 'cpu',
    seed: 1,
    limit: null,
    datasets: { crowsPairs: '/x.csv' },
    createdAt,
    ownerPid: null,
  });
  store.evaluations.update(`ev-${id}`, { status: 'completed', resultPath });
  return { runDir, adapterId, resultPath, evaluationId: `ev-${id}` };
}

describe('deleting', () => {
  it('a run takes its folder, metrics, checkpoints and adapters; its evaluation stays without it', async () => {
    const { runDir, adapterId, evaluationId } = seedRun('run-a');
    seedRun('run-b');
    const remaining = (await dispatch(api, 'runs.delete', 'run-a')) as { id: string }[];
    expect(remaining.map((r) => r.id)).toEqual(['run-b']);
    expect(existsSync(runDir)).toBe(false);
    expect(existsSync(paths.runDir('run-b'))).toBe(true);
    expect(store.metrics.list('run-a')).toEqual([]);
    expect(store.checkpoints.list('run-a')).toEqual([]);
    expect(store.adapters.get(adapterId)).toBeUndefined();
    expect(store.evaluations.require(evaluationId)).toMatchObject({ runId: null, adapterId: null });
    expect(store.db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(store.db.pragma('foreign_key_check')).toEqual([]);
  });

  it('refuses a training run and an adapter under evaluation, and an unknown id', async () => {
    const { adapterId, evaluationId } = seedRun('run-c');
    store.runs.update('run-c', { status: 'running' });
    await expect(dispatch(api, 'runs.delete', 'run-c')).rejects.toMatchObject({ code: 'conflict', message: expect.stringMatching(/stop it before deleting/) });
    store.runs.update('run-c', { status: 'completed' });
    store.evaluations.update(evaluationId, { status: 'running' });
    await expect(dispatch(api, 'adapters.delete', adapterId)).rejects.toMatchObject({ code: 'conflict' });
    await expect(dispatch(api, 'evals.delete', evaluationId)).rejects.toMatchObject({ code: 'conflict' });
    await expect(dispatch(api, 'runs.delete', 'no-such-run')).rejects.toMatchObject({ code: 'not_found' });
    expect(existsSync(paths.runDir('run-c'))).toBe(true);
  });

  it('an evaluation takes its result file; an adapter outside the data folder keeps its files', async () => {
    const { resultPath, evaluationId } = seedRun('run-d');
    expect(await dispatch(api, 'evals.delete', evaluationId)).toEqual([]);
    expect(existsSync(resultPath)).toBe(false);
    const outside = path.join(root, 'my-adapter');
    mkdirSync(outside);
    writeFileSync(path.join(outside, 'adapter_model.safetensors'), 'mine');
    store.adapters.create({
      id: 'ad-outside',
      runId: 'run-d',
      name: 'x',
      method: 'lora',
      baseModel: 'default',
      path: outside,
      step: 1,
      trainableParams: 1,
      createdAt,
    });
    await dispatch(api, 'adapters.delete', 'ad-outside');
    expect(store.adapters.get('ad-outside')).toBeUndefined();
    expect(existsSync(path.join(outside, 'adapter_model.safetensors'))).toBe(true);
  });

  it('reports the data folder size, largest part first', async () => {
    seedRun('run-e');
    const usage = (await dispatch(api, 'system.usage', undefined)) as { bytes: number; parts: { name: string; bytes: number }[] };
    expect(usage.parts.find((p) => p.name === 'runs')!.bytes).toBeGreaterThanOrEqual(10_000);
    expect(usage.parts.map((p) => p.bytes)).toEqual([...usage.parts.map((p) => p.bytes)].sort((a, b) => b - a));
    expect(usage.bytes).toBe(usage.parts.reduce((s, p) => s + p.bytes, 0));
  });
});

describe('lora-workbench delete', () => {
  it('asks for --yes before deleting, then deletes', async () => {
    seedRun('run-f');
    await services.close();
    store.close();
    const io = () => {
      const lines: string[] = [];
      return { lines, io: { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) } };
    };
    const dry = io();
    expect(await runCli(['delete', 'run', 'run-f', '--data-dir', paths.dataDir], dry.io)).toBe(2);
    expect(dry.lines.join('\n')).toMatch(/This would delete run run-f "run-f" \(completed\).*--yes/);
    expect(existsSync(paths.runDir('run-f'))).toBe(true);
    const real = io();
    expect(await runCli(['delete', 'run', 'run-f', '--yes', '--data-dir', paths.dataDir], real.io)).toBe(0);
    expect(real.lines.join('\n')).toMatch(/Deleted run run-f .* The data folder now takes/);
    expect(existsSync(paths.runDir('run-f'))).toBe(false);
    // Reopened for afterEach.
    store = Store.open(paths.dbFile);
    services = createServices({ store, paths });
    expect(store.runs.list()).toEqual([]);
  });
});
