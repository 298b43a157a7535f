// Finding 1 and 9 of issue 15 with the real engine: a dataset preview of /dev/zero, a named pipe or a file
// larger than any string answers at once with a dataset_invalid error naming the limit; a large file's
// preview reads only its head; and many previews share the pool's two reused workers.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, ftruncateSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetRegistry } from '../../src-main/datasets.ts';
import { resolvePaths, type WorkbenchPaths } from '../../src-main/paths.ts';
import { Store } from '../../src-main/store/index.ts';
import { WorkerPool } from '../../src-main/worker-pool.ts';
import { startEngineWorker } from '../../src-main/worker-thread.ts';

let dir: string;
let paths: WorkbenchPaths;
let store: Store;
let registry: DatasetRegistry;
let pool: WorkerPool;
const started: Worker[] = [];

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lw-dataset-limits-'));
  paths = resolvePaths({ dataDir: path.join(dir, 'data') });
  store = Store.open(paths.dbFile);
  pool = new WorkerPool({ size: 2, createWorker: () => (started.push(startEngineWorker()), started.at(-1)!) });
  registry = new DatasetRegistry({ store, paths, pool });
});
afterAll(async () => {
  await registry.close();
  await pool.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('bounded dataset reads', () => {
  it('refuses /dev/zero and a named pipe (which used to read forever, or hang), as regular files only', async () => {
    await expect(registry.preview({ path: '/dev/zero' })).rejects.toMatchObject({
      code: 'dataset_invalid',
      message: expect.stringMatching(/not a regular file/),
      details: { field: 'path' },
    });
    const fifo = path.join(dir, 'pipe.jsonl');
    execFileSync('mkfifo', [fifo]);
    await expect(registry.preview({ path: fifo })).rejects.toMatchObject({ code: 'dataset_invalid', message: expect.stringMatching(/not a regular file/) });
    await expect(registry.register({ path: fifo, name: 'pipe', mapping: { text: 'text' } })).rejects.toMatchObject({ code: 'dataset_invalid' });
  });

  it('previews the head of a file too large to register, and refuses to register it with the limit in the message', async () => {
    // A sparse 600 MB file: the head holds real rows, the rest is a hole (no disk used).
    const big = path.join(dir, 'big.jsonl');
    const rows = Array.from({ length: 1000 }, (_, k) => JSON.stringify({ prompt: `q${k}`, completion: `a${k}` })).join('\n');
    writeFileSync(big, `${rows}\n`);
    const fd = openSync(big, 'r+');
    ftruncateSync(fd, 600_000_000);
    closeSync(fd);

    const preview = await registry.preview({ path: big, rows: 3 });
    expect(preview).toMatchObject({ partial: true, columns: ['prompt', 'completion'] });
    expect(preview.rows).toHaveLength(3);
    await expect(registry.register({ path: big, name: 'big', mapping: { prompt: 'prompt', completion: 'completion' } })).rejects.toMatchObject({
      code: 'dataset_invalid',
      message: expect.stringMatching(/is 600 MB; the workbench reads dataset files up to 500 MB\. Split it/),
    });
    expect(store.datasets.list()).toEqual([]);
  });

  it('answers 12 previews with at most two engine workers, the same ones that answered the errors above', async () => {
    const small = path.join(dir, 'small.jsonl');
    writeFileSync(small, '{"text": "one"}\n{"text": "two"}\n');
    const previews = await Promise.all(Array.from({ length: 12 }, () => registry.preview({ path: small })));
    expect(previews.every((p) => p.rowCount === 2 && !p.partial)).toBe(true);
    expect(started.length).toBeLessThanOrEqual(2);
    expect(pool.workerCount).toBeLessThanOrEqual(2);
  });
});
