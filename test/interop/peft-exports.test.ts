// Issue 14: real PEFT and transformers as the referees of every export that claims PEFT compatibility.
// Each method trains briefly on the GPT-2, Llama and Qwen2 fixtures and is exported; Python
// (reference_logits.py) loads each folder as a user would (PeftModel.from_pretrained over
// AutoModelForCausalLM; merged folders with AutoModelForCausalLM alone) and its logits must equal the
// app's within 1e-4. The app's side is the adapter the run trained, in the app: a PEFT folder must
// reproduce it; a flattened one must reproduce the app's own flattened adapter (what the report's
// flattening figure measures against the native one). BERT is not here: no method trains on an
// encoder; transformers referees its forward through the parity fixture (scripts/make-fixtures-bert.py).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAdapter } from '../../src-worker/eval/job.ts';
import { maxAbsDiff, probeLogits, type Probe } from '../../src-worker/export/probe.ts';
import { FLATTENED_ADAPTER_DIR } from '../../src-worker/formats/adapter-folder.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { requirePython, runPythonScript } from './python.ts';
import { interopFamilies, trainFixture, type InteropFamily, type TrainedSetting } from './train-export.ts';

const TOLERANCE = 1e-4;
/** Two rows, no padding (the referee gets no attention mask), spread over the smallest vocabulary (264). */
const probe: Probe = {
  inputIds: [
    [5, 17, 40, 99, 3, 150, 7, 61],
    [200, 12, 9, 33, 250, 1, 88, 14],
  ],
};

interface ExportCase {
  id: string;
  family: InteropFamily;
  label: string;
  setting: TrainedSetting;
  format: 'peft' | 'flattened' | 'merged';
  /** The app's logits come from the run's native adapter, or from its flattened form. */
  appAdapter: 'native' | 'flattened';
}

const exportsChecked: Omit<ExportCase, 'id' | 'family'>[] = [
  { label: 'LoRA', setting: 'lora', format: 'peft', appAdapter: 'native' },
  { label: 'rsLoRA', setting: 'rslora', format: 'peft', appAdapter: 'native' },
  { label: 'LoRA+', setting: 'lora-plus', format: 'peft', appAdapter: 'native' },
  { label: 'bias-aware (one task)', setting: 'bias-aware', format: 'peft', appAdapter: 'native' },
  { label: 'prompt tuning', setting: 'prompt-tuning', format: 'peft', appAdapter: 'native' },
  { label: 'SeLoRA flattened', setting: 'selora', format: 'flattened', appAdapter: 'flattened' },
  { label: 'LoRA merged', setting: 'lora', format: 'merged', appAdapter: 'native' },
];
const cases: ExportCase[] = interopFamilies.flatMap((family) => exportsChecked.map((c) => ({ ...c, family, id: `${family}/${c.label}` })));

let work: string;
const results = new Map<string, { diff: number; toBase: number; flattening?: number }>();

beforeAll(async () => {
  const python = requirePython(['torch', 'transformers', 'peft', 'safetensors']);
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-interop-'));
  const manifest: unknown[] = [];
  const app = new Map<string, Float32Array>();
  const base = new Map<InteropFamily, Float32Array>();
  for (const family of interopFamilies) {
    const runs = new Map<TrainedSetting, Awaited<ReturnType<typeof trainFixture>>>();
    for (const c of cases.filter((x) => x.family === family)) {
      if (!runs.has(c.setting)) runs.set(c.setting, await trainFixture(work, family, c.setting));
      const run = runs.get(c.setting)!;
      const outDir = path.join(work, 'exports', c.id.replace(/[^\w-]+/g, '_'));
      const report = await run.exportTo(c.format, outDir);
      expect(report.verification.passed, c.id).toBe(true);
      const model = await loadCausalLM(run.modelDir);
      try {
        if (!base.has(family)) base.set(family, (await probeLogits(model, null, probe)).data);
        const { adapter } = await loadAdapter(model, c.appAdapter === 'native' ? run.adapterDir : path.join(run.adapterDir, FLATTENED_ADAPTER_DIR));
        try {
          app.set(c.id, (await probeLogits(model, adapter, probe)).data);
        } finally {
          adapter.dispose();
        }
      } finally {
        model.dispose();
      }
      manifest.push(
        c.format === 'merged'
          ? { id: c.id, kind: 'merged', base: outDir, adapter: null, input_ids: probe.inputIds, positions: 4 }
          : { id: c.id, kind: 'peft', base: run.modelDir, adapter: outDir, input_ids: probe.inputIds, positions: 4 },
      );
      results.set(c.id, { diff: NaN, toBase: NaN, ...(report.flattening ? { flattening: report.flattening.maxAbsLogitDiffToNative } : {}) });
    }
  }
  const manifestFile = path.join(work, 'manifest.json');
  const outFile = path.join(work, 'reference.json');
  fs.writeFileSync(manifestFile, JSON.stringify({ cases: manifest }));
  runPythonScript(python, 'reference_logits.py', [manifestFile, outFile]);
  const reference = JSON.parse(fs.readFileSync(outFile, 'utf8')) as Record<string, { shape: number[]; logits: number[] }>;
  for (const c of cases) {
    const ref = Float32Array.from(reference[c.id]!.logits);
    const ours = app.get(c.id)!;
    expect(ref.length, c.id).toBe(ours.length);
    results.set(c.id, { ...results.get(c.id)!, diff: maxAbsDiff(ours, ref), toBase: maxAbsDiff(ref, base.get(c.family)!) });
  }
}, 1_200_000);

afterAll(() => {
  if (results.size) {
    console.log("PEFT / transformers referee: max |app logits - referee logits| (and the referee's distance from the base model)");
    for (const [id, r] of results) {
      console.log(
        `  ${id.padEnd(42)} ${r.diff.toExponential(2)}  (vs base ${r.toBase.toExponential(2)}${r.flattening !== undefined ? `; flattening cost ${r.flattening.toExponential(2)}` : ''})`,
      );
    }
  }
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('exports loaded by real PEFT and transformers', () => {
  for (const c of cases) {
    it(`${c.family} ${c.label} (${c.format}): the referee's logits equal the app's within ${TOLERANCE}`, () => {
      const r = results.get(c.id)!;
      expect(r.diff).toBeLessThanOrEqual(TOLERANCE);
      // The referee must have applied the adapter: logits equal to the base model's would pass vacuously.
      expect(r.toBase).toBeGreaterThan(1e-3);
    });
  }
});

// Issue 14 ("Exports that never mislead"): SeLoRA's native adapter is not a PEFT LoRA, so its default
// ("peft") export is its flattened form, which real PEFT must load to the app's flattened logits.
describe('a SeLoRA run exported with the defaults', () => {
  it("real PEFT loads it to the app's flattened logits within 1e-4, and the report states the flattening cost", async () => {
    const python = requirePython(['torch', 'transformers', 'peft']);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-interop-selora-'));
    try {
      const run = await trainFixture(dir, 'gpt2-tiny', 'selora');
      const outDir = path.join(dir, 'export');
      const report = await run.exportTo('peft', outDir);
      expect(report.flattening?.maxAbsLogitDiffToNative).toBeGreaterThan(0);
      const model = await loadCausalLM(run.modelDir);
      let flattened: Float32Array;
      try {
        const { adapter } = await loadAdapter(model, path.join(run.adapterDir, FLATTENED_ADAPTER_DIR));
        flattened = (await probeLogits(model, adapter, probe)).data;
        adapter.dispose();
      } finally {
        model.dispose();
      }
      fs.writeFileSync(
        path.join(dir, 'manifest.json'),
        JSON.stringify({ cases: [{ id: 'selora', kind: 'peft', base: run.modelDir, adapter: outDir, input_ids: probe.inputIds, positions: 4 }] }),
      );
      runPythonScript(python, 'reference_logits.py', [path.join(dir, 'manifest.json'), path.join(dir, 'reference.json')]);
      const reference = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8')) as Record<string, { logits: number[] }>;
      const diff = maxAbsDiff(flattened, Float32Array.from(reference.selora!.logits));
      console.log(
        `SeLoRA default export: max |app flattened logits - PEFT logits| ${diff.toExponential(2)}; flattening cost stated ${report.flattening!.maxAbsLogitDiffToNative.toExponential(2)}`,
      );
      expect(diff).toBeLessThanOrEqual(TOLERANCE);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
