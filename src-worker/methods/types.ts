// The shape of an adapter method, after PEFT's tuners: a config, a layer, one registry entry.
import type * as tf from '@tensorflow/tfjs-core';
import type { AdapterHooks, CausalLM, LinearModule } from '../models/types.ts';

/** One method instance attached to one model. */
export interface AdapterModel extends AdapterHooks {
  readonly method: string;
  /** The modules this instance adapts. */
  readonly targets: LinearModule[];
  /** Variables the optimizer updates, with the parameter group each belongs to (e.g. "lora_A"). */
  trainable(): { name: string; group: string; variable: tf.Variable }[];
  trainableParamCount(): number;
  /**
   * Tensors to save, keyed exactly as PEFT stores them, without the adapter name:
   * base_model.model.<module path>.lora_A.weight [r, in] and .lora_B.weight [out, r].
   */
  stateDict(): Map<string, tf.Tensor>;
  /** Loads tensors saved by stateDict (validating names and shapes). */
  loadStateDict(tensors: Map<string, { shape: number[]; data: Float32Array }>): void;
  /** adapter_config.json content: only keys PEFT knows. */
  peftConfig(baseModelNameOrPath: string): Record<string, unknown>;
  dispose(): void;
}

export interface MethodImplementation<Settings> {
  id: string;
  /** Parses and checks settings, throwing field-named errors. */
  parseSettings(raw: unknown): Settings;
  create(model: CausalLM, settings: Settings, seed: number): AdapterModel;
}
