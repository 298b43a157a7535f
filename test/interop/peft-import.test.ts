// Issue 14 acceptance: an adapter made by PEFT in this test (get_peft_model + save_pretrained on the
// GPT-2 and Llama fixtures, random non-zero lora_B: scripts/make-fixtures-peft-import.py run into a
// temporary folder) imports, and the app's logits with it equal PEFT's within 1e-4 on cpu and wasm.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxAbsDiff } from '../../src-worker/export/probe.ts';
import { importAndCompare, importFixtures } from '../helpers/peft-import.ts';
import { repoRoot, requirePython, runPythonScript } from './python.ts';

let work: string;
const figures: string[] = [];
beforeAll(() => {
  const python = requirePython(['torch', 'transformers', 'peft', 'safetensors']);
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-interop-import-'));
  runPythonScript(python, path.join('..', '..', 'scripts', 'make-fixtures-peft-import.py'), [path.join(work, 'made-by-peft')]);
}, 600_000);
afterAll(() => {
  if (figures.length) console.log(`Imported PEFT adapters: max |app logits - PEFT logits|\n${figures.join('\n')}`);
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe.each(['cpu', 'wasm'] as const)('an adapter PEFT made in this test, imported, on %s', (backend) => {
  for (const [name, family] of Object.entries(importFixtures)) {
    it(`${name}: the app's logits equal PEFT's within 1e-4`, async () => {
      const { app, base, peft } = await importAndCompare(
        repoRoot,
        path.join(work, 'made-by-peft', name),
        family,
        backend,
        path.join(work, `${backend}-${name}`),
      );
      const diff = maxAbsDiff(app, peft);
      figures.push(`  ${`${name} (${backend})`.padEnd(30)} ${diff.toExponential(2)}  (PEFT vs base ${maxAbsDiff(base, peft).toExponential(2)})`);
      expect(diff).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(base, peft)).toBeGreaterThan(1e-2);
    });
  }
});
