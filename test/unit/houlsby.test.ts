// Houlsby bottleneck adapters (METHODS.md section 6): exactly the base model at init (up = 0),
// gradients against finite differences on GPT-2 and Llama, the adapters placed after the attention
// output and MLP output of every layer with 2 m d + m + d parameters each, and an export that PEFT
// cannot misread (no adapter_config.json) but that round-trips in the workbench.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, readSidecar } from '../../src-worker/formats/adapter-folder.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { readSafetensorsFile } from '../../src-worker/formats/safetensors.ts';
import { houlsby, HoulsbyModel } from '../../src-worker/methods/houlsby.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { checkGradients } from '../helpers/finite-differences.ts';
import { gpt2, llama, logitsOf, lossOf, randomize } from './baseline-models.ts';
import { maxAbsDiff } from '../../src-worker/export/probe.ts';
import { tempRoot, trainTiny } from './method-run.ts';

const root = tempRoot('lwb-houlsby-');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const families: [string, () => CausalLM][] = [
  ['GPT-2', () => gpt2()],
  ['Llama', () => llama()],
];

describe.each(families)('Houlsby adapters on %s', (_family, makeModel) => {
  it('equal the base model exactly at initialisation, and not after up is trained', () => {
    const model = makeModel();
    const adapter = new HoulsbyModel(model, { bottleneckSize: 3 }, 7);
    const base = logitsOf(model, null);
    expect(logitsOf(model, adapter)).toEqual(base);
    randomize(adapter, /up_proj\.weight$/, 3, 0.2);
    expect(maxAbsDiff(logitsOf(model, adapter), base)).toBeGreaterThan(1e-3);
    adapter.dispose();
    model.dispose();
  });

  it.each(['cpu', 'wasm'] as const)('match central finite differences on %s', async (backend) => {
    await initBackend(backend);
    const model = makeModel();
    const adapter = new HoulsbyModel(model, { bottleneckSize: 3 }, 7);
    // With up = 0 the down projection gets no gradient at all; move up off zero first.
    randomize(adapter, /up_proj\.weight$/, 3, 0.5);
    const { loss, dispose } = lossOf(model, adapter);
    const trainable = adapter.trainable();
    expect(checkGradients(loss, trainable, { entriesPerTensor: 1, rtol: 2e-2, atol: 2e-4 })).toBe(trainable.length);
    dispose();
    adapter.dispose();
    model.dispose();
    await initBackend('cpu');
  });
});

describe('Houlsby placement and size', () => {
  it('follows the attention output and the MLP output of every layer', () => {
    const g = gpt2();
    const a = new HoulsbyModel(g, { bottleneckSize: 4 }, 1);
    expect(a.targets.map((t) => t.path)).toEqual([
      'transformer.h.0.attn.c_proj',
      'transformer.h.0.mlp.c_proj',
      'transformer.h.1.attn.c_proj',
      'transformer.h.1.mlp.c_proj',
    ]);
    // d = 8, m = 4: 2 m d + m + d per adapter, four adapters.
    expect(a.trainableParamCount()).toBe(4 * (2 * 4 * 8 + 4 + 8));
    a.dispose();
    g.dispose();
    const l = llama();
    const b = new HoulsbyModel(l, { bottleneckSize: 4 }, 1);
    expect(b.targets.map((t) => t.path)).toEqual([
      'model.layers.0.self_attn.o_proj',
      'model.layers.0.mlp.down_proj',
      'model.layers.1.self_attn.o_proj',
      'model.layers.1.mlp.down_proj',
    ]);
    b.dispose();
    l.dispose();
  });

  it('trains in a run, writes no adapter_config.json, and its export round-trips with a report that PEFT cannot load it', async () => {
    const run = await trainTiny(root, 'houlsby', { method: 'houlsby', houlsby: { bottleneckSize: 8 }, training: { maxSteps: 12 } });
    expect(run.messages.find((m) => m.type === 'failed')).toBeUndefined();
    const adapterDir = path.join(run.runDir, 'adapter');
    expect(fs.existsSync(path.join(adapterDir, ADAPTER_CONFIG_FILE))).toBe(false);
    const saved = await readSafetensorsFile(path.join(adapterDir, ADAPTER_WEIGHTS_FILE));
    expect(saved.tensors.get('base_model.model.transformer.h.0.mlp.c_proj.houlsby.down_proj.weight')!.shape).toEqual([8, 32]);
    expect(saved.tensors.get('base_model.model.transformer.h.0.mlp.c_proj.houlsby.up_proj.weight')!.shape).toEqual([32, 8]);
    expect((await readSidecar(adapterDir)).method).toBe('houlsby');
    const out = path.join(root, 'houlsby-export');
    const report = await run.exportTo(adapterDir, out);
    expect(report.verification.passed).toBe(true);
    expect(report.peftLoadable).toBe(false);
    expect(report.note).toMatch(/PEFT cannot load this folder: it has no adapter type for houlsby/);
    expect(fs.readdirSync(out).sort()).toEqual([ADAPTER_WEIGHTS_FILE, 'workbench_adapter.json'].sort());
  }, 60_000);

  it('parses its settings with a named error', () => {
    expect(() => houlsby.parseSettings({ bottleneckSize: 0 })).toThrow(/bottleneckSize/);
  });
});
