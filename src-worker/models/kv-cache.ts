// Keys and values of the tokens a causal LM has already seen, so that decoding one more token costs
// one position's work instead of a forward over the whole sequence (the `past_key_values` of
// Hugging Face's generate). Each layer holds (B, n_kv_heads, T_past, head_dim) tensors kept outside
// any tf.tidy scope; appending replaces them with their concatenation with the new positions.
import { WorkbenchError } from '../../src-shared/errors.ts';
import { tf } from '../tf.ts';

export class KVCache {
  private readonly keys: (tf.Tensor4D | null)[];
  private readonly values: (tf.Tensor4D | null)[];
  /** Positions stored, the same in every layer once a forward has finished. */
  private stored = 0;

  constructor(readonly numLayers: number) {
    this.keys = new Array<tf.Tensor4D | null>(numLayers).fill(null);
    this.values = new Array<tf.Tensor4D | null>(numLayers).fill(null);
  }

  get length(): number {
    return this.stored;
  }

  /** Checks that a model with `numLayers` layers may use this cache. */
  assertFits(numLayers: number): void {
    if (numLayers !== this.numLayers) {
      throw new WorkbenchError(
        'internal',
        `A KV cache made for ${this.numLayers} layers was given to a model with ${numLayers}; create the cache for this model.`,
      );
    }
  }

  /**
   * Appends the new positions k, v (B, n_kv_heads, T_new, hs) of `layer` and returns all positions so
   * far. Call it inside the forward's tidy: the stored result is kept, the previous one disposed.
   */
  append(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): { k: tf.Tensor4D; v: tf.Tensor4D } {
    const pastK = this.keys[layer];
    const pastV = this.values[layer];
    const have = pastK ? pastK.shape[2] : 0;
    if (have !== this.stored) {
      throw new WorkbenchError(
        'internal',
        `KV cache layer ${layer} holds ${have} positions but the cache ${this.stored}: a previous forward failed halfway; start with a new cache.`,
      );
    }
    const allK = tf.keep(pastK ? (tf.concat([pastK, k], 2) as tf.Tensor4D) : tf.clone(k));
    const allV = tf.keep(pastV ? (tf.concat([pastV, v], 2) as tf.Tensor4D) : tf.clone(v));
    pastK?.dispose();
    pastV?.dispose();
    this.keys[layer] = allK;
    this.values[layer] = allV;
    return { k: allK, v: allV };
  }

  /** Called by the model once every layer has appended `count` positions. */
  advance(count: number): void {
    this.stored += count;
  }

  dispose(): void {
    for (const list of [this.keys, this.values]) {
      for (let i = 0; i < list.length; i++) {
        list[i]?.dispose();
        list[i] = null;
      }
    }
    this.stored = 0;
  }
}
