// An adapter PEFT saved (scripts/make-fixtures-peft-import.py), imported as the worker imports it and
// applied in the app on a given backend, beside the logits PEFT computed for it (reference.safetensors).
import path from 'node:path';
import type { BackendName } from '../../src-shared/config.ts';
import { importPeftAdapter } from '../../src-worker/adapters/import-peft.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { loadAdapter } from '../../src-worker/eval/job.ts';
import { probeLogits } from '../../src-worker/export/probe.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { readSafetensorsFile } from '../../src-worker/formats/safetensors.ts';

export const importFixtures = { 'gpt2-tiny-lora': 'gpt2-tiny', 'llama-tiny-rslora': 'llama-tiny' } as const;

export async function importAndCompare(root: string, sourceDir: string, family: string, backend: BackendName, outDir: string) {
  const modelDir = path.join(root, 'test', 'fixtures', family);
  const imported = await importPeftAdapter({
    type: 'import-adapter',
    sourceDir,
    modelDir,
    baseModel: modelDir,
    name: path.basename(sourceDir),
    runId: 'imp-test',
    outDir,
    backend,
  });
  const { tensors } = await readSafetensorsFile(path.join(sourceDir, 'reference.safetensors'));
  const ids = tensors.get('input_ids')!;
  const [P, T] = ids.shape as [number, number];
  const inputIds = Array.from({ length: P }, (_, p) => Array.from(ids.data.subarray(p * T, (p + 1) * T), Math.round));
  await initBackend(backend);
  const model = await loadCausalLM(modelDir);
  try {
    const { adapter } = await loadAdapter(model, imported.adapterDir);
    try {
      const app = (await probeLogits(model, adapter, { inputIds })).data;
      const base = (await probeLogits(model, null, { inputIds })).data;
      return { imported, app, base, peft: tensors.get('logits')!.data };
    } finally {
      adapter.dispose();
    }
  } finally {
    model.dispose();
  }
}
