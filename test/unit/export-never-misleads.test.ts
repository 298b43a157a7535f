// Exports that never mislead (issue 14): an adapter PEFT cannot represent as it is (SeLoRA) is never
// written with a PEFT adapter_config.json beside tensors PEFT would misread. Its `peft` export is its
// flattened plain LoRA, with the logit difference that costs; its native form is the `workbench` format.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSafetensorsFile } from '../../src-worker/formats/safetensors.ts';
import { exportAdapter } from '../../src-worker/export/index.ts';
import { maxAbsDiff, readProbe } from '../../src-worker/export/probe.ts';
import { readSidecar } from '../../src-worker/formats/adapter-folder.ts';
import { fixtureModelDir, tempRoot, trainTiny } from './method-run.ts';

const root = tempRoot('lw-export-form-');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

let seloraDir: string;
let loraDir: string;
beforeAll(async () => {
  seloraDir = path.join(
    (await trainTiny(root, 'selora', { method: 'selora', selora: { hiddenSize: 8, lambdaSem: 0.1 }, training: { maxSteps: 12 } })).runDir,
    'adapter',
  );
  loraDir = path.join((await trainTiny(root, 'lora', { method: 'lora', training: { maxSteps: 12 } })).runDir, 'adapter');
}, 120_000);

const exportAs = (sourceDir: string, name: string, format: 'peft' | 'workbench') =>
  exportAdapter({ type: 'export', sourceDir, modelDir: fixtureModelDir, outDir: path.join(root, name), backend: 'cpu', format });
const tensorKeys = async (dir: string) => [...(await readSafetensorsFile(path.join(dir, 'adapter_model.safetensors'))).tensors.keys()];

describe('an adapter PEFT cannot represent as it is (SeLoRA)', () => {
  it('is trained and kept without an adapter_config.json in its native folder', () => {
    expect(fs.existsSync(path.join(seloraDir, 'adapter_config.json'))).toBe(false);
    expect(fs.existsSync(path.join(seloraDir, 'flattened', 'adapter_config.json'))).toBe(true);
  });

  it("exports as 'peft' its flattened plain LoRA, stating what flattening costs and what verified it", async () => {
    const report = await exportAs(seloraDir, 'selora-peft', 'peft');
    const outDir = path.join(root, 'selora-peft');
    expect(report.verification).toMatchObject({ passed: true, verifiedWith: ['workbench'] });
    expect(report.peftLoadable).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(outDir, 'adapter_config.json'), 'utf8'))).toMatchObject({ peft_type: 'LORA' });
    expect((await tensorKeys(outDir)).every((k) => /\.lora_[AB]\.weight$/.test(k))).toBe(true);
    expect((await readSidecar(outDir)).flattenedFrom?.method).toBe('selora');
    const native = await readProbe(seloraDir);
    const flat = await readProbe(path.join(seloraDir, 'flattened'));
    expect(report.flattening).toEqual({ fromMethod: 'selora', maxAbsLogitDiffToNative: maxAbsDiff(native!.logits.data, flat!.logits.data) });
    expect(report.flattening!.maxAbsLogitDiffToNative).toBeGreaterThan(0);
  }, 60_000);

  it("exports as 'workbench' its native adapter, without adapter_config.json, saying what loads it", async () => {
    const report = await exportAs(seloraDir, 'selora-native', 'workbench');
    const outDir = path.join(root, 'selora-native');
    expect(report.verification.passed).toBe(true);
    expect(report.peftLoadable).toBe(false);
    expect(report.note).toMatch(/PEFT cannot load this folder: it cannot represent this selora adapter as it is/);
    expect(report.flattening).toBeUndefined();
    expect(fs.existsSync(path.join(outDir, 'adapter_config.json'))).toBe(false);
    expect((await tensorKeys(outDir)).some((k) => !/\.lora_[AB]\.weight$/.test(k))).toBe(true);
    expect((await readSidecar(outDir)).method).toBe('selora');
  }, 60_000);
});

describe('an adapter PEFT represents as it is (LoRA)', () => {
  it("is the same folder as 'peft' and as 'workbench'", async () => {
    const peft = await exportAs(loraDir, 'lora-peft', 'peft');
    const workbench = await exportAs(loraDir, 'lora-native', 'workbench');
    expect(peft.flattening).toBeUndefined();
    expect(workbench.files.map((f) => f.name)).toEqual(peft.files.map((f) => f.name));
    expect(workbench.files.map((f) => f.name)).toContain('adapter_config.json');
    expect(workbench.peftLoadable).toBe(true);
  }, 60_000);
});
