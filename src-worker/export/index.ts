// The export dispatcher: it first resolves which folder to write and with which writer (from the job's
// format and what the adapter's method declares it can do), then calls that one plain writer:
//   peft       what PEFT loads as it is: the adapter where PEFT represents it, else its flattened plain
//              LoRA with what flattening costs; never an adapter_config.json beside tensors PEFT would
//              misread (methods PEFT has no type for: the native tensors and the sidecar, said so)
//   workbench  the native adapter as trained, for the workbench's own loader
//   flattened  the plain LoRA written beside a SeLoRA or multi-task adapter, with what flattening costs
//   merged     the adapter (or its flattened form) folded into the base weights, a full model folder
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { ExportReport } from '../../src-shared/runs.ts';
import type { ExportJob } from '../../src-shared/worker-protocol.ts';
import { initBackend } from '../backend.ts';
import {
  ADAPTER_WEIGHTS_FILE,
  type AdapterSidecar,
  FLATTENED_ADAPTER_DIR,
  hasFlattenedForm,
  readSidecar,
  SIDECAR_FILE,
  type TensorData,
} from '../formats/adapter-folder.ts';
import { loadCausalLM } from '../formats/model-folder.ts';
import { readSafetensorsFile } from '../formats/safetensors.ts';
import { methodOf } from '../methods/index.ts';
import type { CausalLM } from '../models/types.ts';
import { exportMerged } from './merged.ts';
import { readAdapterFiles, writeVerifiedCopy } from './peft.ts';
import { maxAbsDiff, probeLogits, readProbe, type Probe } from './probe.ts';

/** What an export writes: which adapter folder, by which writer. */
export interface ExportForm {
  /** The adapter folder the export reads: the native one or its flattened/ LoRA. */
  dir: string;
  writer: 'copy' | 'merged';
  /** copy: whether adapter_config.json goes with it (PEFT holds the adapter as it is). */
  peftLoadable: boolean;
  /** Set when dir is the flattened form of a native adapter of this method: the report states the cost. */
  flattenedFrom?: string;
}

/** Resolves the job's format against the adapter's declared capabilities, refusing what the method cannot do. */
export function resolveExportForm(format: ExportJob['format'], sourceDir: string, sidecar: AdapterSidecar): ExportForm {
  const { method, settings } = methodOf(sidecar.config);
  const { peftForm, mergeable } = method.capabilities;
  const flatDir = path.join(sourceDir, FLATTENED_ADAPTER_DIR);
  const hasFlat = hasFlattenedForm(sourceDir);
  const form = peftForm(settings);
  if (format === 'workbench' || (format === 'peft' && form !== 'flattened')) return { dir: sourceDir, writer: 'copy', peftLoadable: form === 'native' };
  if (format === 'merged') {
    if (!mergeable) {
      throw new WorkbenchError(
        'invalid_input',
        `A ${sidecar.method} adapter cannot be exported merged (only LoRA-family adapters fold into the base weights); export it with format "peft".`,
        { field: 'format' },
      );
    }
    // Folded weights cannot depend on the input: a conditional adapter folds its flattened LoRA.
    return hasFlat ? { dir: flatDir, writer: 'merged', peftLoadable: true } : { dir: sourceDir, writer: 'merged', peftLoadable: true };
  }
  if (!hasFlat) {
    throw new WorkbenchError(
      'invalid_input',
      form === 'flattened'
        ? `PEFT cannot represent a ${sidecar.method} adapter as it is, and only a finished one has the flattened LoRA PEFT loads (checkpoints do not): export the run once it completes, or export with format "workbench" for the workbench's own loader.`
        : `A ${sidecar.method} adapter needs no flattening: it is exported as it is. Export it with format "peft".`,
      { field: 'format', method: sidecar.method },
    );
  }
  return { dir: flatDir, writer: 'copy', peftLoadable: true, flattenedFrom: sidecar.method };
}

/** Probe inputs of a checkpoint (trainer_state.json), or fixed ids spread over the vocabulary. */
async function fallbackProbe(dir: string, vocabSize: number): Promise<Probe> {
  try {
    const state = JSON.parse(await fs.promises.readFile(path.join(dir, 'trainer_state.json'), 'utf8')) as { probeInputIds?: unknown };
    const ids = z
      .array(
        z
          .array(
            z
              .number()
              .int()
              .min(0)
              .max(vocabSize - 1),
          )
          .min(1),
      )
      .min(1)
      .parse(state.probeInputIds);
    if (ids.every((row) => row.length === ids[0]!.length)) return { inputIds: ids };
  } catch {
    // No usable trainer state: fall through to synthetic ids.
  }
  return { inputIds: [Array.from({ length: 16 }, (_, i) => (i * 7919 + 13) % vocabSize)] };
}

/** An adapter folder's method, bound to a model, to compute its logits for any tensors of its shape. */
function adapterOn(model: CausalLM, sidecar: AdapterSidecar) {
  const { method, settings } = methodOf(sidecar.config);
  const withTensors = <T>(tensors: TensorData, use: (adapter: ReturnType<typeof method.create>) => Promise<T>) => {
    const adapter = method.create(model, settings, sidecar.config.training.seed);
    adapter.loadStateDict(tensors);
    return use(adapter).finally(() => adapter.dispose());
  };
  return { withTensors, logits: (tensors: TensorData, probe: Probe) => withTensors(tensors, (adapter) => probeLogits(model, adapter, probe)) };
}

/**
 * Exports an adapter (final folder or checkpoint) to job.outDir in the job's format and proves the
 * written files against the trained model's logits.
 */
export async function exportAdapter(job: ExportJob, log?: (message: string) => void): Promise<ExportReport> {
  const sourceDir = path.resolve(job.sourceDir);
  const outDir = path.resolve(job.outDir);
  if (sourceDir === outDir) throw new WorkbenchError('invalid_input', "Export to a folder other than the adapter's own.", { outDir });
  const form = resolveExportForm(job.format, sourceDir, await readSidecar(sourceDir));
  const sidecar = await readSidecar(form.dir);
  const files = form.writer === 'copy' ? await readAdapterFiles(form.dir, form.peftLoadable) : null;
  const sourceTensors = (await readSafetensorsFile(path.join(form.dir, ADAPTER_WEIGHTS_FILE))).tensors;
  const backend = await initBackend(job.backend, log);
  const model = await loadCausalLM(job.modelDir);
  try {
    const adapter = adapterOn(model, sidecar);
    // The reference: the trained model's own logits when they were computed on this backend; else
    // (a checkpoint, or another backend whose kernels round differently) the source tensors' logits here.
    const saved = await readProbe(form.dir);
    const fromThisBackend = saved && saved.backend === backend.name;
    const probe = saved?.probe ?? (await fallbackProbe(form.dir, model.config.vocabSize));
    // Built before any forward of the base model: QLoRA quantizes the base weights on creation, reading them
    // synchronously, which webgpu allows only before their first upload (its cache then serves later adapters).
    if (fromThisBackend) await adapter.withTensors(sourceTensors, async () => undefined);
    const reference = fromThisBackend ? saved.logits : await adapter.logits(sourceTensors, probe);

    if (form.writer === 'merged') {
      return await adapter.withTensors(sourceTensors, (live) => exportMerged({ sourceDir: form.dir, modelDir: job.modelDir, outDir }, model, live, probe, log));
    }
    const base = await probeLogits(model, null, probe);
    const report = await writeVerifiedCopy(files!, outDir, { reference, base, adaptedLogits: (tensors) => adapter.logits(tensors, probe) });
    const note = form.peftLoadable ? undefined : notLoadableByPeft(sidecar);
    const flattening = form.flattenedFrom ? { fromMethod: form.flattenedFrom, maxAbsLogitDiffToNative: await flatteningCost(sourceDir, form.dir) } : undefined;
    if (flattening)
      log?.(
        `Flattened ${flattening.fromMethod} to a plain LoRA: its probe logits differ from the native adapter's by up to ${flattening.maxAbsLogitDiffToNative.toPrecision(3)}.`,
      );
    return { ...report, peftLoadable: form.peftLoadable, ...(note ? { note } : {}), ...(flattening ? { flattening } : {}) };
  } finally {
    model.dispose();
  }
}

/** Why a folder has no adapter_config.json, for the report. */
function notLoadableByPeft(sidecar: AdapterSidecar): string {
  const { method, settings } = methodOf(sidecar.config);
  const why =
    method.capabilities.peftForm(settings) === 'none'
      ? `it has no adapter type for ${sidecar.method}`
      : `it cannot represent this ${sidecar.method} adapter as it is (export with format "peft" for its flattened LoRA)`;
  return `PEFT cannot load this folder: ${why}. ${ADAPTER_WEIGHTS_FILE} holds the native tensors and ${SIDECAR_FILE} the settings; load it with lora-workbench.`;
}

/** Training wrote both probes on one backend and the same inputs: their difference is what flattening costs. */
async function flatteningCost(nativeDir: string, flatDir: string): Promise<number> {
  const native = await readProbe(nativeDir);
  const flat = await readProbe(flatDir);
  if (native && flat) return maxAbsDiff(native.logits.data, flat.logits.data);
  return (await readSidecar(flatDir)).flattenedFrom?.maxAbsLogitDiff ?? Infinity;
}
