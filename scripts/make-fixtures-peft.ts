// Writes the adapters of the PyTorch parity fixture: test/fixtures/peft-parity/<family>-<method>/
// adapter_model.safetensors and adapter_config.json, exactly as `lora-workbench export` writes them
// (the sidecar, which holds machine paths and timestamps, is left out). Then run the PyTorch side:
//   node --import tsx scripts/make-fixtures-peft.ts && .venv/bin/python scripts/make-fixtures-peft.py
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findAppRoot } from '../src-main/paths.ts';
import { families, makeParityAdapter, PARITY_DIR, parityMethods } from '../test/helpers/peft-parity.ts';

const root = findAppRoot();
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-peft-parity-'));
try {
  for (const family of families) {
    for (const method of parityMethods) {
      const outDir = path.join(root, PARITY_DIR, `${family}-${method}`);
      const tmp = path.join(work, `export-${family}-${method}`);
      const report = await makeParityAdapter(root, work, family, method, tmp);
      fs.mkdirSync(outDir, { recursive: true });
      for (const name of ['adapter_model.safetensors', 'adapter_config.json']) fs.copyFileSync(path.join(tmp, name), path.join(outDir, name));
      console.log(`${family}-${method}: max |logits - base| ${report.verification.maxAbsDiffToBase.toExponential(3)}`);
    }
  }
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
