// The shape of an adapter method, after PEFT's tuners: a config, a layer, one registry entry.
import type * as tf from '@tensorflow/tfjs-core';
import type { LoraSettings, MethodId } from '../../src-shared/config.ts';
import type { TextTokenizer } from '../formats/tokenizer.ts';
import type { AdapterHooks, CausalLM, LinearModule } from '../models/types.ts';

/** The batch the task loss was computed on, for regularizers that compare against it (bias-aware's L_KL). */
export interface RegularizerBatch {
  inputIds: tf.Tensor2D;
  lossMask: tf.Tensor2D;
  /** The adapted forward's logits [B, T, V], inside the gradient tape. */
  logits: tf.Tensor3D;
}

/** A flattened adapter: a plain LoRA with its own settings (a multi-task merge has rank T r, not the run's r). */
export type FlatLora = AdapterModel & { readonly settings: LoraSettings };

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
  /**
   * The position of every random stream the method draws from while training (LoRA's dropout masks), saved
   * in each checkpoint so that a resumed run draws what the uninterrupted run would have drawn.
   */
  randomState?(): Record<string, number>;
  restoreRandomState?(state: Record<string, number>): void;
  /**
   * adapter_config.json content: only keys PEFT knows for its peft_type (LORA, PROMPT_TUNING). Called
   * only when the method's capabilities say PEFT holds the adapter as it is (peftForm 'native').
   */
  peftConfig(baseModelNameOrPath: string): Record<string, unknown>;
  /** True when the trainable parameters are base parameters (full fine-tuning, BitFit): they add nothing to the model's size. */
  readonly trainsBaseParameters?: boolean;
  /** Lines logged when a run starts (QLoRA: the memory its quantized base occupies). */
  startupNotes?(): string[];
  /**
   * A group's peak learning rate as a multiple of the run's (LoRA+: lora_B at lambda); the schedule
   * scales every group alike. Absent: 1 for every group.
   */
  learningRateScale?(group: string, learningRate: number): number;
  /**
   * Called once before training with the prompt tokens of every training example, for methods that
   * derive per-example inputs from the data (SeLoRA's semantic vectors and their training-set mean).
   */
  fit?(model: CausalLM, trainingPrompts: readonly (readonly number[])[], tokenizer?: TextTokenizer): void;
  /**
   * True when the adapted forward depends on what `prepare` was given (SeLoRA's per-prompt semantic
   * vector): scoring must then run every full input on its own and cannot reuse a shared prefix's states.
   * Methods whose `prepare` only feeds their regularizers (bias-aware) leave it unset.
   */
  readonly conditionsOnInput?: boolean;
  /** Called before every forward with the prompt tokens of each row of the batch; training is true before an optimizer step. */
  prepare?(model: CausalLM, prompts: readonly (readonly number[])[], training?: boolean): void;
  /**
   * Loss terms beyond the task loss, computed after a forward (inside the gradient tape, so they are
   * differentiated too): L = L_task + sum weight * value, each logged as loss/<name>.
   */
  regularizers?(batch?: RegularizerBatch): { name: string; weight: number; value: tf.Scalar }[];
  /**
   * For adapters PEFT cannot load as they are (SeLoRA): the plain LoRA closest to this one (SeLoRA at
   * the training set's mean semantic vector). Training writes it beside the native adapter. The caller disposes it.
   */
  flattened?(): Promise<FlatLora>;
  /**
   * Multi-task methods (bias-aware LoRA with L_align): the task whose adapter the next training step
   * trains (an index into the run's tasks), or null for the mixture every other forward uses.
   */
  selectTask?(task: number | null): void;
  /** Multi-task methods: the probability of each task in the training mixture, which weights their merge. */
  setTaskMixture?(probabilities: readonly number[]): void;
  /** Keys in stateDict that are not PEFT LoRA tensors (method-specific weights in the native format). */
  readonly extraStateKeys?: ReadonlySet<string>;
  /**
   * QLoRA: frees the float32 copies of the weights it holds quantized. Training calls it (it never runs
   * the base model without the adapter); evaluation and generation do not.
   */
  releaseFloatWeights?(): void;
  dispose(): void;
}

/**
 * How PEFT can hold a method's adapter: as it is ('native'), only through the plain LoRA that
 * `flattened()` writes beside it ('flattened': the native form has tensors or an input dependence PEFT
 * has no type for), or not at all ('none': PEFT has no adapter type for the method).
 */
export type PeftForm = 'native' | 'flattened' | 'none';

/** The optional AdapterModel hooks, by name, as a method declares the ones its adapters implement. */
export const adapterHooks = [
  'fit',
  'prepare',
  'regularizers',
  'flattened',
  'learningRateScale',
  'selectTask',
  'setTaskMixture',
  'startupNotes',
  'releaseFloatWeights',
] as const;
export type AdapterHook = (typeof adapterHooks)[number];

/** The rows a training step draws: a shuffled pass over all rows, or one task's rows at a time by a mixture. */
export type BatcherPlan = { kind: 'shuffled' } | { kind: 'task-mixture'; tasks: string[]; ratios: number[] };

/** What a method can do, declared beside its implementation: the training loop and the export read these, never the method's name. */
export interface MethodCapabilities<Settings> {
  peftForm(settings: Settings): PeftForm;
  /** The adapter (or its flattened form) folds into the base weights as W + s B A: the 'merged' export. */
  mergeable: boolean;
  batcher(settings: Settings): BatcherPlan;
  /**
   * The optional hooks its adapters implement (a test checks the declaration against the instances);
   * its losses are the `regularizers` hook's terms.
   */
  hooks: readonly AdapterHook[];
}

export interface MethodImplementation<Settings> {
  id: MethodId;
  /** Parses and checks settings, throwing field-named errors. */
  parseSettings(raw: unknown): Settings;
  create(model: CausalLM, settings: Settings, seed: number): AdapterModel;
  capabilities: MethodCapabilities<Settings>;
}
