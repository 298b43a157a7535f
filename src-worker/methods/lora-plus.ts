// LoRA+ (Hayou, Ghosh, Yu 2024, arXiv:2402.12354; METHODS.md section 2): the LoRA layer unchanged,
// trained with two AdamW parameter groups, lora_A at the learning rate eta and lora_B at lambda * eta.
// With unequal widths (in >> r) the paper shows equal rates make feature learning inefficient.
// The "improved LoRA" paper's target-density matching score is specific to object detection and has
// no meaning for text, so it is not implemented. The layer and its tensors are plain LoRA, so the
// export is a plain PEFT LoRA; lambda lives in the sidecar (workbench_adapter.json) only.
import { LoraPlusSettingsSchema, LoraSettingsSchema, type LoraPlusSettings, type LoraSettings } from '../../src-shared/methods.ts';
import { validate } from '../../src-shared/errors.ts';
import type { CausalLM } from '../models/types.ts';
import { LoraModel } from './lora.ts';
import type { MethodImplementation } from './types.ts';

export interface LoraPlusConfig {
  lora: LoraSettings;
  loraPlus: LoraPlusSettings;
}

export class LoraPlusModel extends LoraModel {
  override readonly method: string = 'lora-plus';

  constructor(
    model: CausalLM,
    readonly plus: LoraPlusSettings,
    lora: LoraSettings,
    seed: number,
  ) {
    super(model, lora, seed);
  }

  /** lora_B's peak rate: learningRateB when given, else ratio * eta; lora_A keeps eta. */
  learningRateScale(group: string, learningRate: number): number {
    if (group !== 'lora_B') return 1;
    return this.plus.learningRateB === null ? this.plus.ratio : this.plus.learningRateB / learningRate;
  }
}

export const loraPlus: MethodImplementation<LoraPlusConfig> = {
  id: 'lora-plus',
  parseSettings: (raw) => {
    const sections = (raw ?? {}) as { lora?: unknown; loraPlus?: unknown };
    return {
      lora: validate(LoraSettingsSchema, sections.lora ?? {}, 'LoRA settings'),
      loraPlus: validate(LoraPlusSettingsSchema, sections.loraPlus ?? {}, 'LoRA+ settings'),
    };
  },
  create: (model, settings, seed) => new LoraPlusModel(model, settings.loraPlus, settings.lora, seed),
  capabilities: { peftForm: () => 'native', mergeable: true, batcher: () => ({ kind: 'shuffled' }), hooks: ['learningRateScale'] },
};
