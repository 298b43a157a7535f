// A whole WorkbenchApi over a fresh data folder in the temp directory, with every service and no engine
// (a test that starts a worker job gets an error saying so): for tests of API calls that need no training.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { SystemInfo, WorkbenchApi } from '../../src-shared/api.ts';
import { createWorkbenchApi } from '../../src-main/api.ts';
import { resolvePaths, type WorkbenchPaths } from '../../src-main/paths.ts';
import { createServices, type Services } from '../../src-main/services.ts';
import { Store } from '../../src-main/store/index.ts';

export interface TestWorkbench {
  root: string;
  paths: WorkbenchPaths;
  services: Services;
  api: WorkbenchApi;
  /** Closes the services and the store, and removes the folder. */
  close(): Promise<void>;
}

export function openTestWorkbench(prefix: string, mode: SystemInfo['mode'] = 'headless'): TestWorkbench {
  const root = mkdtempSync(path.join(os.tmpdir(), prefix));
  const paths = resolvePaths({ dataDir: path.join(root, 'data') });
  const store = Store.open(paths.dbFile);
  const services = createServices({
    store,
    paths,
    createWorker: () => {
      throw new Error('no worker in this test');
    },
  });
  const api = createWorkbenchApi({ ...services, paths, mode });
  return {
    root,
    paths,
    services,
    api,
    close: async () => {
      await services.close();
      store.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
