// Issue 15, finding 5: an evaluation runs out of the box. With nothing downloaded, evals.quick scores the
// embedded model's perplexity on the sample dataset's held-out rows (the default run's split), with the
// real engine; the held-out file holds exactly the rows training's split leaves out.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatch, type WorkbenchApi } from '../../src-shared/api.ts';
import { defaultRunConfig } from '../../src-shared/config.ts';
import type { Evaluation } from '../../src-shared/eval.ts';
import { createWorkbenchApi } from '../../src-main/api.ts';
import { resolvePaths, type WorkbenchPaths } from '../../src-main/paths.ts';
import { createServices, type Services } from '../../src-main/services.ts';
import { Store } from '../../src-main/store/index.ts';
import { readInstructionDataset } from '../../src-worker/data/dataset.ts';
import { splitTrainValidation } from '../../src-worker/data/split.ts';

let root: string;
let paths: WorkbenchPaths;
let store: Store;
let services: Services;
let api: WorkbenchApi;
beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'lw-quick-eval-'));
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

describe('evals.quick', () => {
  it("scores the base model's perplexity on the sample dataset's held-out rows, with nothing downloaded", async () => {
    const [started] = (await dispatch(api, 'evals.quick', { backend: 'cpu' })) as Evaluation[];
    expect(started).toMatchObject({ suite: 'perplexity', adapterId: null, model: 'default' });
    const done = await services.evals.waitFor(started!.id);
    expect(done.status, done.error ?? '').toBe('completed');
    // perplexity.text.* figures: loss, perplexity per token and word, bits per byte.
    const figures = Object.entries(done.summary!).filter(([key]) => key.startsWith('perplexity.text.'));
    expect(figures.length, JSON.stringify(done.summary)).toBeGreaterThan(0);
    for (const [key, value] of figures) expect(Number.isFinite(value) && value > 0, key).toBe(true);

    const { training } = defaultRunConfig();
    const rows = await readInstructionDataset(paths.sampleDatasetPath);
    const heldout = splitTrainValidation(rows.length, training.validationFraction, training.seed).validation;
    const written = readFileSync(started!.datasets.text!, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => (JSON.parse(l) as { text: string }).text);
    expect(written).toEqual(heldout.map((i) => rows[i]!.prompt + rows[i]!.completion));
  });

  it('refuses an unknown adapter', async () => {
    await expect(dispatch(api, 'evals.quick', { adapterId: 'ad-nope' })).rejects.toMatchObject({ code: 'not_found' });
  });
});
