// DatasetRegistry with the real worker (inspect-dataset in src-worker/main.ts): register -> list -> a run
// naming the dataset's id trains on its normalized file; and the CLI's `datasets add` / `list` over the same.
import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrainJob } from '../../src-shared/worker-protocol.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { createWorkbenchApi } from '../../src-main/api.ts';
import { runCli } from '../../src-main/cli.ts';
import { createServices } from '../../src-main/services.ts';
import { DatasetRegistry } from '../../src-main/datasets.ts';
import { resolvePaths, type WorkbenchPaths } from '../../src-main/paths.ts';
import { RunManager } from '../../src-main/runs.ts';
import { Store } from '../../src-main/store/index.ts';

const fixture = (name: string) => path.join(import.meta.dirname, '..', 'fixtures', 'datasets', 'user', name);
let dataDir: string;
let paths: WorkbenchPaths;
beforeAll(() => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'lw-datasets-'));
  paths = resolvePaths({ dataDir });
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

/** Stands in for the training worker: records the train job it is given and never answers. */
class JobRecorder extends EventEmitter {
  jobs: unknown[] = [];
  postMessage(message: unknown) {
    this.jobs.push(message);
  }
  async terminate() {
    queueMicrotask(() => this.emit('exit', 1));
    return 1;
  }
}

describe('DatasetRegistry with the real worker', () => {
  it('registers a CSV, lists it, and a run naming its id resolves to the normalized JSONL', async () => {
    const store = Store.open(paths.dbFile);
    const registry = new DatasetRegistry({ store, paths });
    const recorders: JobRecorder[] = [];
    const manager = new RunManager({ store, paths, createWorker: () => (recorders.push(new JobRecorder()), recorders.at(-1) as unknown as Worker) });
    try {
      const preview = await registry.preview({ path: fixture('qa.csv') });
      expect(preview.suggestedMapping).toEqual({ prompt: 'question', completion: 'answer', task: 'category' });

      const missing = await registry
        .register({ path: fixture('qa.csv'), name: 'qa', mapping: { prompt: 'question', completion: 'reply' } })
        .catch((e: unknown) => e);
      expect(missing).toBeInstanceOf(WorkbenchError);
      expect(missing).toMatchObject({ code: 'invalid_input', details: { field: 'mapping.completion' } });

      const dataset = await registry.register({ path: fixture('qa.csv'), name: 'qa', mapping: { prompt: 'question', completion: 'answer', task: 'category' } });
      expect(dataset).toMatchObject({ name: 'qa', format: 'csv', rowCount: 4, skippedRows: 2, usedByRuns: 0, sourcePath: fixture('qa.csv') });
      expect(dataset.normalizedPath).toBe(path.join(dataDir, 'datasets', `${dataset.id}.jsonl`));
      expect(readFileSync(dataset.normalizedPath, 'utf8').trimEnd().split('\n')).toHaveLength(4);
      expect(await registry.list()).toEqual([dataset]);
      await expect(registry.register({ path: fixture('sst.tsv'), name: 'qa', mapping: { text: 'sentence' } })).rejects.toMatchObject({ code: 'conflict' });

      // The New run page's picker lists it after the embedded sample dataset.
      const services = createServices({ store, paths });
      try {
        const catalog = await createWorkbenchApi({ ...services, paths, mode: 'headless' }).catalog.list();
        expect(catalog.datasets.map((d) => d.id)).toEqual(['sample', dataset.id]);
        expect(catalog.datasets[1]).toMatchObject({ name: 'qa', path: dataset.normalizedPath });
        expect(catalog.datasets[1]!.description).toBe(
          '4 rows from qa.csv (csv, 2 bad rows left out); prompt ← question, completion ← answer, task ← category.',
        );
      } finally {
        await services.close();
      }

      const run = await manager.start({ name: 'on qa', dataset: dataset.id, backend: 'cpu' });
      expect(run.config.dataset).toBe(dataset.id);
      const job = recorders[0]!.jobs[0] as TrainJob;
      expect(job).toMatchObject({ type: 'train', datasetPath: dataset.normalizedPath });

      // A dataset runs trained on leaves the list but keeps its file for them.
      expect(await registry.remove(dataset.id)).toEqual([]);
      expect(existsSync(dataset.normalizedPath)).toBe(true);
      expect(store.datasets.require(dataset.id).usedByRuns).toBe(1);
    } finally {
      await manager.close();
      await registry.close();
      store.close();
    }
  });

  it('refuses a file with no usable row and leaves no file behind', async () => {
    const store = Store.open(paths.dbFile);
    const registry = new DatasetRegistry({ store, paths });
    try {
      const empty = path.join(dataDir, 'empty-answers.csv');
      writeFileSync(empty, 'q,a\nfirst,\nsecond,  \n');
      const error = await registry.register({ path: empty, name: 'empty', mapping: { prompt: 'q', completion: 'a' } }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'dataset_invalid', details: { errorCount: 2 } });
      expect((error as Error).message).toMatch(/line 2: "a" is empty/);
      expect(await registry.list()).toEqual([]);
    } finally {
      await registry.close();
      store.close();
    }
  });
});

describe('lora-workbench datasets', () => {
  it('adds a CSV with a mapping from flags, lists it, and removes it with its file', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
    const cliDir = path.join(dataDir, 'cli');
    expect(
      await runCli(['datasets', 'add', fixture('qa.csv'), '--name', 'cli qa', '--prompt', 'question', '--completion', 'answer', '--data-dir', cliDir], io),
    ).toBe(0);
    expect(err).toEqual(['warning: qa.csv line 5: has 4 fields, the header has 3', 'warning: qa.csv line 8: "answer" is empty']);
    expect(out[0]).toMatch(/^Registered dataset ds-\S+ \(cli qa\): 4 rows, 2 skipped, sha256 [0-9a-f]{12}…$/);
    const id = /dataset (ds-\S+)/.exec(out[0]!)![1]!;

    out.length = 0;
    expect(await runCli(['datasets', 'list', '--data-dir', cliDir], io)).toBe(0);
    expect(out[0]).toMatch(/^ID\s+NAME\s+ROWS\s+SKIPPED\s+SHA256\s+SOURCE$/);
    expect(out[1]).toContain(id);
    expect(out[1]).toContain(fixture('qa.csv'));

    const file = path.join(cliDir, 'datasets', `${id}.jsonl`);
    expect(existsSync(file)).toBe(true);
    expect(await runCli(['datasets', 'remove', id, '--data-dir', cliDir], io)).toBe(0);
    expect(existsSync(file)).toBe(false);
    expect(await runCli(['datasets', 'add', fixture('qa.csv'), '--name', 'x', '--data-dir', cliDir], io)).toBe(2);
  });
});
