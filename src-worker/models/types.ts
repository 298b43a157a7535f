// What every model family offers the training loop and the adapter methods.
import type * as tf from '@tensorflow/tfjs-core';
import type { KVCache } from './kv-cache.ts';
import type { HeadWeight } from '../kernels/head-product.ts';

/** A linear layer an adapter may target, named by its Hugging Face module path. */
export interface LinearModule {
  /** e.g. transformer.h.0.attn.c_attn (the safetensors key without `.weight`). */
  path: string;
  inFeatures: number;
  outFeatures: number;
  /** True for GPT-2's Conv1D, whose weight is stored [in, out]. */
  fanInFanOut: boolean;
}

/** The adapted layers of one method instance, as the model sees them. */
export interface AdapterHooks {
  /** The layer attached at `path`, if any: returns the update to add to the base output. */
  delta(path: string, x: tf.Tensor, training: boolean): tf.Tensor | null;
  /**
   * Methods that train or replace base parameters (full fine-tuning, BitFit, QLoRA's dequantized
   * weights): the tensor the forward uses for base parameter `key` (a namedParameters key, in the
   * forward's layout), or null to keep the stored one. A tf.Variable is trained (gradients flow to
   * it); any other tensor is used frozen.
   */
  parameter?(key: string): tf.Tensor | null;
  /** Adapters on a module's output (Houlsby): an update added to the output y [N, out] of the linear module at `path`. */
  outputDelta?(path: string, y: tf.Tensor2D, training: boolean): tf.Tensor2D | null;
  /**
   * Prompt tuning: rows [n, hidden] prepended to the input embeddings of a sequence that starts at
   * position 0 (the real tokens move to positions n..); outputs cover the real tokens only.
   */
  inputEmbeddingPrefix?(): tf.Tensor2D | null;
}

/** A base parameter as the forward uses it. */
export interface NamedParameter {
  /** The checkpoint's key (lm_head.weight only when the head is not tied to the embedding). */
  key: string;
  tensor: tf.Tensor;
  /** True when the forward keeps the transpose of the checkpoint's tensor (Llama's linear weights, [in, out]). */
  transposed: boolean;
}

export interface ForwardOptions {
  adapters?: AdapterHooks | null;
  /** Enables dropout in the adapters (the frozen base model has none at fine-tuning time). */
  training?: boolean;
  /**
   * Training only: recompute each transformer block's activations in the backward pass instead of
   * keeping them (kernels/recompute.ts); the trainable variables the blocks may read. Ignored with a KV cache.
   */
  recompute?: readonly tf.Variable[] | null;
  /** Added to every input token embedding [hidden] (bias-aware LoRA's adversarial b_bias); gradients flow to it. */
  inputEmbeddingOffset?: tf.Tensor1D | null;
}

/** The sizes every family's model reports, decoder or encoder (its config.json's fields under common names). */
export interface ArchitectureSummary {
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  maxPositions: number;
}

export interface ModelConfigSummary extends ArchitectureSummary {
  family: 'gpt2' | 'llama';
}

export interface CausalLM {
  readonly config: ModelConfigSummary;
  /** Linear layers in a stable order (layer by layer). */
  linearModules(): LinearModule[];
  /** Logits [B, T, vocab] for token ids [B, T] (int32). */
  forward(inputIds: tf.Tensor2D, options?: ForwardOptions): tf.Tensor3D;
  /**
   * Logits [B, T, vocab] for ids [B, T] that continue the `cache.length` tokens already in `cache`
   * (positions cache.length .. cache.length + T - 1); their keys and values are appended to it.
   * For decoding only: no gradient flows through the cache.
   */
  forwardWithCache(inputIds: tf.Tensor2D, cache: KVCache, options?: ForwardOptions): tf.Tensor3D;
  /**
   * The LM head's weight [V, hidden] as the forward uses it (the embedding when tied; a method's
   * replacement when it trains or dequantizes base weights). With hiddenStates it lets the loss run
   * the head in chunks of tokens (kernels/head-cross-entropy.ts) instead of asking for [B, T, V] logits.
   * Row shards where one [V, hidden] tensor would exceed the backend's largest (models/lm-head.ts).
   */
  headWeight?(adapters?: AdapterHooks | null): HeadWeight;
  /** Pooled representation used by semantic and bias methods: final hidden states [B, T, hidden]. */
  hiddenStates(inputIds: tf.Tensor2D, options?: ForwardOptions): tf.Tensor3D;
  parameterCount(): number;
  /** Every base parameter once (a tied head is the embedding), in a stable order; methods that train base weights need it. */
  namedParameters?(): NamedParameter[];
  dispose(): void;
}
