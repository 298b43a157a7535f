// Saving a live adapter: its tensors named as PEFT stores LoRA weights (or declared as its method's own),
// adapter_config.json only when its method says PEFT holds it as it is.
import fs from 'node:fs';
import path from 'node:path';
import type { RunConfig } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { BackendInfo } from '../../src-shared/runs.ts';
import {
  AdapterSidecarSchema,
  type AdapterSidecarInput,
  baseModelFingerprint,
  tensorsToData,
  type WrittenFile,
  writeAdapterFolder,
} from '../formats/adapter-folder.ts';
import { methodOf } from '../methods/index.ts';
import type { AdapterModel, MethodImplementation } from '../methods/types.ts';
import { type Probe, writeProbe } from './probe.ts';

const LORA_KEY = /^base_model\.model\..+\.lora_[AB]\.weight$/;

export async function writeAdapter(
  adapter: AdapterModel,
  dir: string,
  options: { baseModelNameOrPath: string; sidecar: AdapterSidecarInput },
): Promise<WrittenFile[]> {
  const { method, settings } = methodOf(AdapterSidecarSchema.parse(options.sidecar).config);
  const peftConfig = peftHoldsNative(method, settings) ? adapter.peftConfig(options.baseModelNameOrPath) : null;
  const tensors = await tensorsToData(adapter.stateDict());
  for (const name of tensors.keys()) {
    if (!LORA_KEY.test(name) && !adapter.extraStateKeys?.has(name)) {
      throw new WorkbenchError('internal', `Adapter tensor ${name} is not named as PEFT stores LoRA weights (base_model.model.<module>.lora_A.weight).`);
    }
  }
  return writeAdapterFolder(dir, { tensors, peftConfig, sidecar: options.sidecar });
}

/** Only an adapter PEFT represents as it is gets an adapter_config.json: PEFT would load any other silently wrong. */
function peftHoldsNative(method: MethodImplementation<unknown>, settings: unknown): boolean {
  return method.capabilities.peftForm(settings) === 'native';
}

/**
 * A LoRA made without training (a PEFT import, an SG-LoRA generation) saved as training saves one, at
 * step 0 with its probe: written beside `outDir` and moved into place, so a failure leaves no half-written folder.
 */
export async function writeUntrainedLora(
  adapter: AdapterModel,
  outDir: string,
  options: { modelDir: string; runId: string; config: RunConfig; backend: BackendInfo; probe: Probe; logits: { shape: number[]; data: Float32Array } },
): Promise<void> {
  const { modelDir, runId, config, backend, probe, logits } = options;
  const tmp = `${outDir}.tmp-${process.pid}`;
  await fs.promises.rm(tmp, { recursive: true, force: true });
  try {
    await writeAdapter(adapter, tmp, {
      baseModelNameOrPath: modelDir,
      sidecar: {
        format: 'lora-workbench-adapter',
        version: 1,
        method: 'lora',
        runId,
        step: 0,
        trainableParams: adapter.trainableParamCount(),
        config,
        backend,
        baseModel: { path: modelDir, fingerprint: await baseModelFingerprint(modelDir) },
        createdAt: new Date().toISOString(),
      },
    });
    await writeProbe(tmp, probe, logits, backend.name);
    await fs.promises.rm(outDir, { recursive: true, force: true });
    await fs.promises.mkdir(path.dirname(outDir), { recursive: true });
    await fs.promises.rename(tmp, outDir);
  } catch (error) {
    await fs.promises.rm(tmp, { recursive: true, force: true });
    throw error;
  }
}
