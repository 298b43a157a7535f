// ModelService without a worker: input validation and model resolution fail before any job starts,
// and the catalog's list of model folders from earlier runs.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunConfigSchema } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { AdapterBank } from '../../src-main/adapter-bank.ts';
import { AdapterImporter } from '../../src-main/adapter-import.ts';
import { createWorkbenchApi } from '../../src-main/api.ts';
import { DatasetRegistry } from '../../src-main/datasets.ts';
import { BenchmarkStore } from '../../src-main/benchmarks.ts';
import { Deletion } from '../../src-main/deletion.ts';
import { EvalManager } from '../../src-main/evals.ts';
import { modelFoldersOfRuns, ModelService } from '../../src-main/models.ts';
import { resolvePaths, type WorkbenchPaths } from '../../src-main/paths.ts';
import { RunManager } from '../../src-main/runs.ts';
import { Store } from '../../src-main/store/index.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
let dataDir: string;
let paths: WorkbenchPaths;
let store: Store;
let service: ModelService;
let workersStarted = 0;

beforeAll(() => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'lw-model-service-'));
  paths = resolvePaths({ dataDir });
  store = Store.open(path.join(dataDir, 'test.sqlite'));
  service = new ModelService({
    store,
    paths,
    createWorker: () => {
      workersStarted++;
      throw new Error('no worker in this test');
    },
  });
});
afterAll(async () => {
  await service.close();
  store.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function rejection(promise: Promise<unknown>): Promise<WorkbenchError> {
  const error = await promise.catch((e: unknown) => e);
  expect(error).toBeInstanceOf(WorkbenchError);
  return error as WorkbenchError;
}

describe('ModelService before the worker', () => {
  it('rejects invalid inputs, missing folders and unknown adapters without starting a worker', async () => {
    expect((await rejection(service.inspect({ model: '' }))).code).toBe('invalid_input');
    expect((await rejection(service.inspect({ model: 'default', batchSize: 0 }))).code).toBe('invalid_input');
    const missing = await rejection(service.inspect({ model: path.join(dataDir, 'no-such-model') }));
    expect(missing.code).toBe('not_found');
    expect(missing.message).toMatch(/Model folder .*no-such-model does not exist/);
    expect((await rejection(service.generate({ prompt: '' }))).code).toBe('invalid_input');
    expect((await rejection(service.generate({ prompt: 'hi', sampling: { topP: 0 } }))).code).toBe('invalid_input');
    const unknown = await rejection(service.generate({ prompt: 'hi', adapterId: 'ad-missing' }));
    expect(unknown.code).toBe('not_found');
    expect(unknown.message).toMatch(/No adapter with id "ad-missing"/);
    expect(workersStarted).toBe(0);
  });
});

describe('modelFoldersOfRuns', () => {
  it('lists each existing folder once, newest first, without the default model or vanished folders', () => {
    const gpt2 = path.join(fixtures, 'gpt2-tiny');
    const llama = path.join(fixtures, 'llama-tiny');
    const entries = modelFoldersOfRuns([
      { model: 'default' },
      { model: llama },
      { model: path.join(dataDir, 'gone') },
      { model: gpt2 },
      { model: `${llama}/` },
    ]);
    expect(entries.map((e) => e.id)).toEqual([llama, gpt2]);
    expect(entries[0]).toMatchObject({ name: 'llama-tiny', path: llama });
  });
});

describe('catalog.list', () => {
  it('offers the model folders of earlier runs after the embedded model', async () => {
    const gpt2 = path.join(fixtures, 'gpt2-tiny');
    const createdAt = new Date().toISOString();
    store.runs.create({ id: 'run-folder', name: 'a', config: RunConfigSchema.parse({ model: gpt2 }), createdAt, ownerPid: null });
    store.runs.create({ id: 'run-default', name: 'b', config: RunConfigSchema.parse({}), createdAt, ownerPid: null });
    const noWorker = () => {
      throw new Error('no worker in this test');
    };
    const options = { store, paths, createWorker: noWorker };
    const manager = new RunManager(options);
    const evals = new EvalManager(options);
    const api = createWorkbenchApi({
      manager,
      evals,
      models: service,
      datasets: new DatasetRegistry(options),
      adapterBank: new AdapterBank(options),
      adapterImporter: new AdapterImporter(options),
      paths,
      mode: 'headless',
      deletion: new Deletion({ store, paths, isTraining: () => false }),
      benchmarks: new BenchmarkStore({ paths }),
      quickEval: { start: async () => [] },
    });
    try {
      const catalog = await api.catalog.list();
      expect(catalog.models.map((m) => m.id)).toEqual(['default', gpt2]);
    } finally {
      await Promise.all([manager.close(), evals.close()]);
    }
  });
});
