// adapters.import through the API with real workers: a PEFT-made LoRA (test/fixtures/peft-import) joins
// the library, and then everything that takes an adapter takes it: the Playground, an evaluation,
// SG-LoRA's bank, a merged export and a PEFT export.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkbenchApi } from '../../src-main/api.ts';
import { IMPORTED_METHOD } from '../../src-main/adapter-import.ts';
import { findAppRoot, resolvePaths } from '../../src-main/paths.ts';
import { createServices, type Services } from '../../src-main/services.ts';
import { Store } from '../../src-main/store/index.ts';
import type { WorkbenchApi } from '../../src-shared/api.ts';

const root = findAppRoot(import.meta.dirname);
const modelDir = path.join(root, 'test', 'fixtures', 'gpt2-tiny');
const adapterDir = path.join(root, 'test', 'fixtures', 'peft-import', 'gpt2-tiny-lora');

let dataDir: string;
let store: Store;
let services: Services;
let api: WorkbenchApi;
beforeAll(() => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'lw-adapter-import-'));
  const paths = resolvePaths({ dataDir });
  store = Store.open(paths.dbFile);
  services = createServices({ store, paths });
  api = createWorkbenchApi({ ...services, paths, mode: 'headless' });
});
afterAll(async () => {
  await services?.close();
  store?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('an imported PEFT adapter', () => {
  it('joins the library and works in the Playground, evaluations, the SG-LoRA bank and both exports', async () => {
    const { adapter, settings, warnings } = await api.adapters.import({ dir: adapterDir, baseModel: modelDir, name: 'from-the-hub', backend: 'cpu' });
    // Two layers of rank-4 A and B on attn.c_attn (32 -> 96), attn.c_proj (32 -> 32) and mlp.c_proj (128 -> 32).
    expect(adapter).toMatchObject({
      name: 'from-the-hub',
      method: IMPORTED_METHOD,
      baseModel: modelDir,
      step: 0,
      trainableParams: 2 * 4 * (32 + 96 + (32 + 32) + (128 + 32)),
    });
    expect(settings).toMatchObject({ r: 4, alpha: 8, useRslora: false, targetModules: ['c_attn', 'c_proj'] });
    expect(warnings).toEqual([]);
    expect((await api.adapters.list()).map((a) => a.id)).toContain(adapter.id);
    expect((await api.runs.get(adapter.runId)).status).toBe('completed');

    const generated = await api.playground.generate({
      adapterId: adapter.id,
      prompt: 'The cat',
      sampling: { maxNewTokens: 6, temperature: 0 },
      backend: 'cpu',
    });
    expect(generated.adapter).not.toBeNull();
    expect(generated.adapter!.text).not.toBe(generated.base.text);

    const text = path.join(dataDir, 'corpus.txt');
    writeFileSync(text, 'the cat sat on the mat. the dog ran in the park.\n');
    const evaluation = await services.evals.waitFor(
      (await api.evals.start({ suite: 'perplexity', adapterId: adapter.id, datasets: { text }, backend: 'cpu' })).id,
    );
    expect(evaluation.status).toBe('completed');

    await api.adapters.describe({ adapterId: adapter.id, description: 'animal sounds' });
    const sg = await api.adapters.generate({ name: 'generated', description: 'animal noises', r: 2, backend: 'cpu' });
    expect(sg.experts.map((e) => e.adapterId)).toEqual([adapter.id]);

    for (const format of ['peft', 'merged'] as const) {
      const report = await api.exports.create({ adapterId: adapter.id, format, outDir: path.join(dataDir, `export-${format}`) });
      expect(report.verification.passed).toBe(true);
    }
  }, 600_000);

  it('is refused with the reason when the base model does not fit', async () => {
    await expect(api.adapters.import({ dir: adapterDir, baseModel: path.join(root, 'test', 'fixtures', 'llama-tiny'), backend: 'cpu' })).rejects.toThrow(
      /no linear layer for: transformer\.h\.0\.attn\.c_attn/,
    );
    await expect(api.adapters.import({ dir: path.join(dataDir, 'nowhere'), baseModel: modelDir })).rejects.toThrow(/does not exist/);
  }, 120_000);
});
