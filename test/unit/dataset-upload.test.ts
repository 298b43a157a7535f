// Issue 15, finding 15 on the server side: browser mode's drop zone stores the dropped file's text under
// <dataDir>/uploads/ by a new, safe name and answers its path; other file types and oversized text are refused.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dispatch, MAX_UPLOAD_CHARS } from '../../src-shared/api.ts';
import { createWorkbenchApi } from '../../src-main/api.ts';
import { resolvePaths, type WorkbenchPaths } from '../../src-main/paths.ts';
import { createServices, type Services } from '../../src-main/services.ts';
import { Store } from '../../src-main/store/index.ts';

let root: string;
let paths: WorkbenchPaths;
let store: Store;
let services: Services;
beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'lw-upload-'));
  paths = resolvePaths({ dataDir: path.join(root, 'data') });
  store = Store.open(paths.dbFile);
  services = createServices({
    store,
    paths,
    createWorker: () => {
      throw new Error('no worker in this test');
    },
  });
});
afterEach(async () => {
  await services.close();
  store.close();
  rmSync(root, { recursive: true, force: true });
});

describe('datasets.upload', () => {
  it('stores the text under uploads/ by a safe new name', async () => {
    const api = createWorkbenchApi({ ...services, paths, mode: 'browser' });
    const { path: stored } = (await dispatch(api, 'datasets.upload', { name: '../../evil dir/my data.csv', content: 'q,a\nhi,there\n' })) as { path: string };
    expect(path.dirname(stored)).toBe(path.join(paths.dataDir, 'uploads'));
    expect(path.basename(stored)).toMatch(/^\d{8}-\d{6}-[0-9a-f]{6}-my-data\.csv$/);
    expect(readFileSync(stored, 'utf8')).toBe('q,a\nhi,there\n');
    const again = (await dispatch(api, 'datasets.upload', { name: 'my data.csv', content: 'x' })) as { path: string };
    expect(again.path).not.toBe(stored);
  });

  it('refuses other file types and text over the limit', async () => {
    const api = createWorkbenchApi({ ...services, paths, mode: 'browser' });
    await expect(dispatch(api, 'datasets.upload', { name: 'run.sh', content: 'rm -rf /' })).rejects.toMatchObject({
      code: 'invalid_input',
      details: { field: 'name' },
    });
    await expect(dispatch(api, 'datasets.upload', { name: 'big.jsonl', content: 'x'.repeat(MAX_UPLOAD_CHARS + 1) })).rejects.toMatchObject({
      code: 'invalid_input',
      message: expect.stringMatching(/at most 15 MB/),
    });
  });
});
