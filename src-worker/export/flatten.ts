// Flattening (METHODS.md section 3, Export): an adapter PEFT cannot load as it is (SeLoRA) written as
// the plain PEFT LoRA its method offers (SeLoRA: B' = B M(s_bar) at the training set's mean semantic
// vector). The flattened adapter no longer depends on the input, so it differs from the native one
// wherever a prompt's s is not s_bar; that cost is measured on the probe and written into the sidecar.
import type { RunConfig } from '../../src-shared/config.ts';
import type { AdapterModel } from '../methods/types.ts';
import type { CausalLM } from '../models/types.ts';
import { writePeftAdapter, type AdapterSidecar } from './peft.ts';
import { maxAbsDiff, probeLogits, writeProbe, type Probe } from './probe.ts';

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
  const config: RunConfig = { ...options.config, method: 'lora' };
  await writePeftAdapter(flat, dir, {
    baseModelNameOrPath: options.baseModelNameOrPath,
    sidecar: { ...options.sidecar, method: 'lora', config, trainableParams: flat.trainableParamCount(), flattenedFrom: { method: fromMethod, maxAbsLogitDiff } },
  });
  await writeProbe(dir, options.probe, logits, options.backend);
  return { maxAbsLogitDiff };
}
