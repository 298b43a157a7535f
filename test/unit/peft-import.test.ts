// Issue 14: PEFT LoRA adapters the workbench did not train import (src-worker/adapters/import-peft.ts),
// and with them the app computes PEFT's logits; what the LoRA layer cannot hold is refused by name.
// The adapters were made by PEFT (get_peft_model + save_pretrained, random lora_B): regenerate with
// .venv/bin/python scripts/make-fixtures-peft-import.py. test/interop/ makes fresh ones with PEFT in the test.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findAppRoot } from '../../src-main/paths.ts';
import { importPeftAdapter, peftTargets } from '../../src-worker/adapters/import-peft.ts';
import { readSidecar } from '../../src-worker/formats/adapter-folder.ts';
import { maxAbsDiff } from '../../src-worker/export/probe.ts';
import { testBackends } from '../helpers/backends.ts';
import { importAndCompare, importFixtures } from '../helpers/peft-import.ts';
import { tempRoot } from './method-run.ts';

const root = findAppRoot(import.meta.dirname);
const fixtureDir = (name: string) => path.join(root, 'test', 'fixtures', 'peft-import', name);
let work: string;
beforeAll(() => {
  work = tempRoot('lw-peft-import-');
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe.each(testBackends(['cpu', 'wasm']))('an adapter made by PEFT, imported, on %s', (backend) => {
  for (const [name, family] of Object.entries(importFixtures)) {
    it(`${name}: the app's logits equal PEFT's within 1e-4`, async () => {
      const { imported, app, base, peft } = await importAndCompare(root, fixtureDir(name), family, backend, path.join(work, `${backend}-${name}`));
      expect(maxAbsDiff(app, peft)).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(base, peft)).toBeGreaterThan(1e-2);
      expect(imported.warnings).toEqual([]);
    });
  }
});

describe('adapter import', () => {
  it('reads rsLoRA and a regex target_modules, and writes a LoRA sidecar with the adapted modules', async () => {
    const out = path.join(work, 'sidecar');
    const modelDir = path.join(root, 'test', 'fixtures', 'llama-tiny');
    const result = await importPeftAdapter({
      type: 'import-adapter',
      sourceDir: fixtureDir('llama-tiny-rslora'),
      modelDir,
      baseModel: modelDir,
      name: 'hub',
      runId: 'imp-1',
      outDir: out,
      backend: 'cpu',
    });
    expect(result.settings).toEqual({ r: 2, alpha: 4, dropout: 0, useRslora: true, targetModules: ['down_proj', 'q_proj', 'v_proj'] });
    const sidecar = await readSidecar(out);
    expect(sidecar).toMatchObject({ method: 'lora', runId: 'imp-1', config: { method: 'lora', model: modelDir, name: 'hub' } });
    expect(fs.existsSync(path.join(out, 'probe.safetensors'))).toBe(true);
  });

  it('matches target_modules as PEFT does: names by suffix, a string by full match', () => {
    const m = (p: string) => ({ path: p, inFeatures: 1, outFeatures: 1, fanInFanOut: false });
    const modules = [m('model.layers.0.self_attn.q_proj'), m('model.layers.0.mlp.down_proj'), m('model.layers.10.self_attn.q_proj')];
    expect(peftTargets(modules, ['q_proj']).map((x) => x.path)).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.10.self_attn.q_proj']);
    expect(peftTargets(modules, 'model\\.layers\\.1\\d*\\.self_attn\\.q_proj').map((x) => x.path)).toEqual(['model.layers.10.self_attn.q_proj']);
    // A prefix alone selects nothing under re.fullmatch.
    expect(peftTargets(modules, 'model\\.layers\\.0')).toEqual([]);
  });

  /** A copy of the GPT-2 fixture adapter with adapter_config.json changed by `edit`, imported onto `family`. */
  async function importEdited(edit: (c: Record<string, unknown>) => void, family = 'gpt2-tiny'): Promise<unknown> {
    const dir = fs.mkdtempSync(path.join(work, 'edited-'));
    fs.copyFileSync(path.join(fixtureDir('gpt2-tiny-lora'), 'adapter_model.safetensors'), path.join(dir, 'adapter_model.safetensors'));
    const config = JSON.parse(fs.readFileSync(path.join(fixtureDir('gpt2-tiny-lora'), 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    edit(config);
    fs.writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify(config));
    const modelDir = path.join(root, 'test', 'fixtures', family);
    return importPeftAdapter({
      type: 'import-adapter',
      sourceDir: dir,
      modelDir,
      baseModel: modelDir,
      name: 'x',
      runId: 'imp-x',
      outDir: path.join(dir, 'out'),
      backend: 'cpu',
    }).then(
      () => null,
      (error: Error) => error.message,
    );
  }

  it('refuses other PEFT types and DoRA by name, modules_to_save and trained biases with the reason', async () => {
    expect(await importEdited((c) => (c.peft_type = 'LOHA'))).toMatch(/LoHa adapter.*only PEFT LoRA adapters/);
    expect(await importEdited((c) => (c.peft_type = 'IA3'))).toMatch(/IA3 adapter/);
    expect(await importEdited((c) => (c.use_dora = true))).toMatch(/DoRA adapter/);
    expect(await importEdited((c) => (c.modules_to_save = ['lm_head']))).toMatch(/modules_to_save \["lm_head"\].*replaces those modules whole/);
    expect(await importEdited((c) => (c.bias = 'lora_only'))).toMatch(/bias "lora_only"/);
    expect(await importEdited((c) => (c.rank_pattern = { c_attn: 8 }))).toMatch(/per-module ranks/);
  });

  it('checks the tensors against the chosen base model: module names, shapes, target_modules', async () => {
    // The GPT-2 adapter on the Llama fixture: no such modules, and the hint says which base it wants.
    expect(await importEdited(() => {}, 'llama-tiny')).toMatch(/no linear layer for: transformer\.h\.0\.attn\.c_attn.*names "test\/fixtures\/gpt2-tiny"/);
    // r = 8 in the config, tensors of rank 4.
    expect(await importEdited((c) => (c.r = 8))).toMatch(/lora_A is \[4,32\].*needs \[8,32\]/);
    // target_modules selects c_fc too, for which the file has no weights.
    expect(await importEdited((c) => (c.target_modules = ['c_attn', 'c_proj', 'c_fc']))).toMatch(/has no weights for them/);
    // target_modules leaves out tensors the file has: PEFT would not load them.
    expect(await importEdited((c) => (c.target_modules = ['c_attn']))).toMatch(/does not select .*c_proj/);
  });

  it('imports against a model folder of another name with a warning naming the hint', async () => {
    const other = path.join(work, 'renamed-gpt2');
    fs.cpSync(path.join(root, 'test', 'fixtures', 'gpt2-tiny'), other, { recursive: true });
    const result = await importPeftAdapter({
      type: 'import-adapter',
      sourceDir: fixtureDir('gpt2-tiny-lora'),
      modelDir: other,
      baseModel: other,
      name: 'x',
      runId: 'imp-w',
      outDir: path.join(work, 'renamed-out'),
      backend: 'cpu',
    });
    expect(result.warnings).toEqual([expect.stringMatching(/names "test\/fixtures\/gpt2-tiny" as the base model/)]);
  });
});
