// Issue 15, finding 2: an export goes into a new or empty folder unless the overwrite is confirmed; a
// relative path is refused; filesystem refusals are field errors on outDir, never `internal`. The last
// test goes through exports.create, as the view and the CLI call it.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dispatch } from '../../src-shared/api.ts';
import { RunConfigSchema } from '../../src-shared/config.ts';
import type { ExportJob } from '../../src-shared/worker-protocol.ts';
import { createWorkbenchApi } from '../../src-main/api.ts';
import { prepareExportDir } from '../../src-main/export-target.ts';
import { resolvePaths } from '../../src-main/paths.ts';
import { createServices } from '../../src-main/services.ts';
import { Store } from '../../src-main/store/index.ts';

let root: string;
beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'lw-export-target-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('prepareExportDir', () => {
  it('creates a new folder and accepts an empty one', () => {
    const fresh = path.join(root, 'a', 'b');
    expect(prepareExportDir(fresh, false)).toBe(fresh);
    expect(existsSync(fresh)).toBe(true);
    expect(prepareExportDir(fresh, false)).toBe(fresh);
  });

  it('refuses a folder holding files unless the overwrite is confirmed', () => {
    const used = path.join(root, 'used');
    mkdirSync(used);
    writeFileSync(path.join(used, 'adapter_model.safetensors'), 'mine');
    expect(() => prepareExportDir(used, false)).toThrow(
      expect.objectContaining({
        code: 'conflict',
        details: expect.objectContaining({ field: 'outDir', overwriteNeeded: true, entries: 1 }),
      }),
    );
    expect(readFileSync(path.join(used, 'adapter_model.safetensors'), 'utf8')).toBe('mine');
    expect(prepareExportDir(used, true)).toBe(used);
  });

  it('refuses relative paths and maps filesystem refusals to field errors', () => {
    expect(() => prepareExportDir('exports/mine', false)).toThrow(
      expect.objectContaining({ code: 'invalid_input', details: { field: 'outDir' }, message: expect.stringMatching(/absolute path/) }),
    );
    const file = path.join(root, 'file.txt');
    writeFileSync(file, 'x');
    expect(() => prepareExportDir(file, true)).toThrow(
      expect.objectContaining({ code: 'invalid_input', message: expect.stringMatching(/is a file, not a folder/) }),
    );
    expect(() => prepareExportDir(path.join(file, 'inside'), false)).toThrow(
      expect.objectContaining({
        code: 'invalid_input',
        message: expect.stringMatching(/a part of the path is a file/),
        details: expect.objectContaining({ field: 'outDir', errno: 'ENOTDIR' }),
      }),
    );
  });
});

/** Records the export job and never answers (the checks under test come before it). */
class ExportRecorder extends EventEmitter {
  jobs: ExportJob[] = [];
  postMessage(job: ExportJob) {
    this.jobs.push(job);
    queueMicrotask(() => this.emit('message', { type: 'failed', error: { code: 'export_mismatch', message: 'recorded only' } }));
  }
  async terminate() {
    queueMicrotask(() => this.emit('exit', 0));
    return 0;
  }
}

describe('exports.create', () => {
  it('answers /etc/passwd, a relative path and a used folder with field errors, and starts no export for them', async () => {
    const paths = resolvePaths({ dataDir: path.join(root, 'data') });
    const store = Store.open(paths.dbFile);
    const workers: ExportRecorder[] = [];
    const services = createServices({ store, paths, createWorker: () => (workers.push(new ExportRecorder()), workers.at(-1) as unknown as Worker) });
    const api = createWorkbenchApi({ ...services, paths, mode: 'headless' });
    try {
      const adapterDir = path.join(root, 'adapter');
      mkdirSync(adapterDir);
      const createdAt = new Date().toISOString();
      store.runs.create({ id: 'run-1', name: 'r', config: RunConfigSchema.parse({}), createdAt, ownerPid: null });
      store.adapters.create({
        id: 'ad-1',
        runId: 'run-1',
        name: 'r',
        method: 'lora',
        baseModel: 'default',
        path: adapterDir,
        step: 1,
        trainableParams: 1,
        createdAt,
        description: null,
      });
      const used = path.join(root, 'used');
      mkdirSync(used);
      writeFileSync(path.join(used, 'keep.txt'), 'x');

      await expect(dispatch(api, 'exports.create', { adapterId: 'ad-1', outDir: '/etc/passwd' })).rejects.toMatchObject({
        code: 'invalid_input',
        details: { field: 'outDir' },
      });
      await expect(dispatch(api, 'exports.create', { adapterId: 'ad-1', outDir: 'relative/dir' })).rejects.toMatchObject({
        code: 'invalid_input',
        details: { field: 'outDir' },
      });
      await expect(dispatch(api, 'exports.create', { adapterId: 'ad-1', outDir: used })).rejects.toMatchObject({
        code: 'conflict',
        details: { overwriteNeeded: true },
      });
      expect(workers).toHaveLength(0);
      // Confirmed: the job goes to the worker with that folder.
      await expect(dispatch(api, 'exports.create', { adapterId: 'ad-1', outDir: used, overwrite: true })).rejects.toMatchObject({ code: 'export_mismatch' });
      expect(workers[0]!.jobs[0]).toMatchObject({ type: 'export', outDir: used });
    } finally {
      await services.close();
      store.close();
    }
  });
});
