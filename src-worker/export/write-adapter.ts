// Saving a live adapter: its tensors named as PEFT stores LoRA weights (or declared as its method's own),
// adapter_config.json only when its method says PEFT holds it as it is.
import { WorkbenchError } from '../../src-shared/errors.ts';
import { AdapterSidecarSchema, type AdapterSidecarInput, tensorsToData, type WrittenFile, writeAdapterFolder } from '../formats/adapter-folder.ts';
import { methodOf } from '../methods/index.ts';
import type { AdapterModel, MethodImplementation } from '../methods/types.ts';

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
