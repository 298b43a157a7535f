// Issue 15, finding 8 (and 6's "/etc in the Base model list"): mistakes found before a run starts are field
// errors from runs.start, and no run row or run folder is created for them. Real engine workers (the pool).
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatch, type WorkbenchApi } from '../../src-shared/api.ts';
import { createWorkbenchApi } from '../../src-main/api.ts';
import { resolvePaths, type WorkbenchPaths } from '../../src-main/paths.ts';
import { createServices, type Services } from '../../src-main/services.ts';
import { Store } from '../../src-main/store/index.ts';

let root: string;
let paths: WorkbenchPaths;
let store: Store;
let services: Services;
let api: WorkbenchApi;

beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'lw-preflight-'));
  paths = resolvePaths({ dataDir: path.join(root, 'data') });
  store = Store.open(paths.dbFile);
  services = createServices({ store, paths });
  api = createWorkbenchApi({ ...services, paths, mode: 'headless' });
});
afterAll(async () => {
  await services.close();
  store.close();
  rmSync(root, { recursive: true, force: true });
});

const runFolders = () => (existsSync(paths.runsDir) ? readdirSync(paths.runsDir) : []);

describe('runs.start pre-flight', () => {
  it('refuses an empty model folder, a foreign folder, absent target modules and a dataset without a usable row, creating nothing', async () => {
    const empty = path.join(root, 'empty-model');
    mkdirSync(empty);
    const unusable = path.join(root, 'unusable.jsonl');
    writeFileSync(unusable, '{"question": "no prompt/completion here"}\n{"text": ""}\n');

    await expect(dispatch(api, 'runs.start', { model: empty })).rejects.toMatchObject({ code: 'model_invalid', details: { field: 'model' } });
    await expect(dispatch(api, 'runs.start', { model: '/etc' })).rejects.toMatchObject({ details: { field: 'model' } });
    await expect(dispatch(api, 'runs.start', { lora: { targetModules: ['q_proj', 'c_attn'] } })).rejects.toMatchObject({
      code: 'invalid_input',
      details: { field: 'lora.targetModules' },
      message: expect.stringMatching(/"q_proj" is not a module of this gpt2 model; its modules are .*c_attn/),
    });
    await expect(dispatch(api, 'runs.start', { dataset: unusable })).rejects.toMatchObject({ code: 'dataset_invalid', details: { field: 'dataset' } });
    // Two problems at once: both are listed.
    const both = await dispatch(api, 'runs.start', { model: empty, dataset: unusable }).catch((e: unknown) => e);
    expect(both).toMatchObject({ details: { problems: [{ field: 'model' }, { field: 'dataset' }] } });

    expect(store.runs.list()).toEqual([]);
    expect(runFolders()).toEqual([]);
    const catalog = (await dispatch(api, 'catalog.list', undefined)) as { models: { path: string }[] };
    expect(catalog.models.map((m) => m.path)).not.toContain('/etc');
  });

  it('lets a sound configuration through to a run', async () => {
    const run = (await dispatch(api, 'runs.start', { name: 'sound', training: { maxSteps: 2 }, backend: 'cpu' })) as { id: string };
    expect(store.runs.list().map((r) => r.id)).toEqual([run.id]);
  });
});
