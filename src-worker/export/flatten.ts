// Flattening (METHODS.md section 3, Export): an adapter PEFT cannot hold as it is (SeLoRA, a multi-task
// bias-aware run) written as the plain PEFT LoRA its method offers (SeLoRA: B' = B M(s_bar) at the
// training set's mean semantic vector; multi-task: the mixture of its tasks). The flattened adapter no
// longer depends on the input, so it differs from the native one wherever a prompt's s is not s_bar;
// that cost is measured on the probe and written into the sidecar.
import { commonSettingsOf, type RunConfig } from '../../src-shared/config.ts';
import type { AdapterSidecarInput } from '../formats/adapter-folder.ts';
import type { FlatLora } from '../methods/types.ts';
import type { CausalLM } from '../models/types.ts';
import { maxAbsDiff, probeLogits, writeProbe, type Probe } from './probe.ts';
import { writeAdapter } from './write-adapter.ts';

/** Writes `flat`, the flattened form of a `fromMethod` adapter, as a LoRA adapter folder with its own probe. */
export async function writeFlattenedAdapter(
  model: CausalLM,
  flat: FlatLora,
  fromMethod: string,
  dir: string,
  options: {
    probe: Probe;
    nativeLogits: { shape: number[]; data: Float32Array };
    config: RunConfig;
    backend: string;
    baseModelNameOrPath: string;
    sidecar: AdapterSidecarInput;
  },
): Promise<{ maxAbsLogitDiff: number }> {
  const logits = await probeLogits(model, flat, options.probe);
  const maxAbsLogitDiff = maxAbsDiff(logits.data, options.nativeLogits.data);
  // A LoRA run in every respect: re-exporting it loads it with LoRA, and its probe is its own logits.
  // The flat adapter's own LoRA settings: a multi-task merge has rank T r, not the run's r.
  const config: RunConfig = { ...commonSettingsOf(options.config), method: 'lora', lora: flat.settings };
  await writeAdapter(flat, dir, {
    baseModelNameOrPath: options.baseModelNameOrPath,
    sidecar: {
      ...options.sidecar,
      method: 'lora',
      config,
      trainableParams: flat.trainableParamCount(),
      flattenedFrom: { method: fromMethod, maxAbsLogitDiff },
    },
  });
  await writeProbe(dir, options.probe, logits, options.backend);
  return { maxAbsLogitDiff };
}
