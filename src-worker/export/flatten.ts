// Flattening (METHODS.md section 3, Export): an adapter PEFT cannot load as it is (SeLoRA) written as
// the plain PEFT LoRA its method offers (SeLoRA: B' = B M(s_bar) at the training set's mean semantic
// vector). The flattened adapter no longer depends on the input, so it differs from the native one
// wherever a prompt's s is not s_bar; that cost is measured on the probe and written into the sidecar.
import type { RunConfig } from '../../src-shared/config.ts';
import type { AdapterModel } from '../methods/types.ts';
import type { CausalLM } from '../models/types.ts';
import fs from 'node:fs';
import path from 'node:path';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { ExportReport } from '../../src-shared/runs.ts';
import type { ExportJob } from '../../src-shared/worker-protocol.ts';
import { exportAdapter, readSidecar, SIDECAR_FILE, writePeftAdapter, type AdapterSidecar } from './peft.ts';
import { maxAbsDiff, probeLogits, readProbe, writeProbe, type Probe } from './probe.ts';

/** Sub-folder of a native adapter holding its flattened PEFT LoRA. */
export const FLATTENED_ADAPTER_DIR = 'flattened';

/** Writes `flat`, the flattened form of a `fromMethod` adapter, as a LoRA adapter folder with its own probe. */
export async function writeFlattenedAdapter(
  model: CausalLM,
  flat: AdapterModel,
  fromMethod: string,
  dir: string,
  options: { probe: Probe; nativeLogits: { shape: number[]; data: Float32Array }; config: RunConfig; backend: string; baseModelNameOrPath: string; sidecar: AdapterSidecar },
): Promise<{ maxAbsLogitDiff: number }> {
  const logits = await probeLogits(model, flat, options.probe);
  const maxAbsLogitDiff = maxAbsDiff(logits.data, options.nativeLogits.data);
  // A LoRA run in every respect: re-exporting it loads it with LoRA, and its probe is its own logits.
  // The flat adapter's own LoRA settings: a multi-task merge has rank T r, not the run's r.
  const config: RunConfig = { ...options.config, method: 'lora', lora: (flat as { settings?: RunConfig['lora'] }).settings ?? options.config.lora };
  await writePeftAdapter(flat, dir, {
    baseModelNameOrPath: options.baseModelNameOrPath,
    sidecar: { ...options.sidecar, method: 'lora', config, trainableParams: flat.trainableParamCount(), flattenedFrom: { method: fromMethod, maxAbsLogitDiff } },
  });
  await writeProbe(dir, options.probe, logits, options.backend);
  return { maxAbsLogitDiff };
}

/**
 * The formats served by an adapter's flattened form: 'flattened' exports flattened/ as a PEFT LoRA
 * and reports what it costs against the native adapter on the probe; 'merged' of a conditional
 * adapter folds its flattened LoRA (folded weights cannot depend on the input). Null: export as usual.
 */
export async function exportFlattenedForm(job: ExportJob, sourceDir: string, log?: (message: string) => void): Promise<ExportReport | null> {
  if (job.format === 'peft') return null;
  const sidecar = await readSidecar(sourceDir);
  const flatDir = path.join(sourceDir, FLATTENED_ADAPTER_DIR);
  const hasFlat = fs.existsSync(path.join(flatDir, SIDECAR_FILE));
  if (job.format === 'merged') return hasFlat ? exportAdapter({ ...job, sourceDir: flatDir }, log) : null;
  if (!hasFlat) {
    throw new WorkbenchError(
      'invalid_input',
      sidecar.method === 'selora'
        ? 'Only a finished SeLoRA adapter has a flattened form (checkpoints do not); export the run once it completes, or export with format "peft".'
        : `A ${sidecar.method} adapter needs no flattening: it is exported as it is. Export it with format "peft".`,
      { field: 'format', method: sidecar.method },
    );
  }
  const report = await exportAdapter({ ...job, sourceDir: flatDir, format: 'peft' }, log);
  const native = await readProbe(sourceDir);
  const flat = await readProbe(flatDir);
  // Training wrote both probes on one backend and the same inputs: their difference is the cost.
  const maxAbsLogitDiffToNative = native && flat
    ? maxAbsDiff(native.logits.data, flat.logits.data)
    : ((await readSidecar(flatDir)).flattenedFrom?.maxAbsLogitDiff ?? Infinity);
  log?.(`Flattened ${sidecar.method} to a plain LoRA: its probe logits differ from the native adapter's by up to ${maxAbsLogitDiffToNative.toPrecision(3)}.`);
  return { ...report, flattening: { fromMethod: sidecar.method, maxAbsLogitDiffToNative } };
}
