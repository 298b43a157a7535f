// The token embedding and the LM head of a causal LM, shared by every family: the lookup, the head's
// weight as the forward uses it (tied to the embedding or lm_head.weight; a method's replacement when
// it trains or dequantizes base weights) and the logits, computed with the weight held once
// (kernels/head-product.ts). The training loss never asks for full logits: it takes headWeight and
// the hidden states to kernels/head-cross-entropy.ts.
import { headProduct } from '../kernels/head-product.ts';
import { tf } from '../tf.ts';
import { trainableGather } from './ops.ts';
import type { AdapterHooks, NamedParameter } from './types.ts';

export const LM_HEAD_KEY = 'lm_head.weight';

export class LMHead {
  constructor(
    /** The embedding's checkpoint key (transformer.wte.weight, model.embed_tokens.weight). */
    readonly embeddingKey: string,
    private readonly embeddingTable: tf.Tensor2D, // [V, C]
    /** lm_head.weight [V, C] when the checkpoint has its own head; null when the head is the embedding. */
    private readonly untied: tf.Tensor2D | null,
  ) {}

  get tied(): boolean {
    return this.untied === null;
  }

  /** The embedding table [V, C] the forward uses. */
  embedding(hooks: AdapterHooks | null | undefined): tf.Tensor2D {
    return (hooks?.parameter?.(this.embeddingKey) as tf.Tensor2D | null | undefined) ?? this.embeddingTable;
  }

  /** Rows of the embedding for ids [N] (int32): [N, C]; a trained table gets its gradient without UnsortedSegmentSum (ops.ts). */
  lookup(ids: tf.Tensor1D, hooks: AdapterHooks | null | undefined): tf.Tensor2D {
    const table = this.embedding(hooks);
    return table instanceof tf.Variable ? trainableGather(table, ids) : tf.gather(table, ids);
  }

  /** The head's weight [V, C] as the forward uses it. */
  weight(hooks: AdapterHooks | null | undefined): tf.Tensor2D {
    if (!this.untied) return this.embedding(hooks);
    return (hooks?.parameter?.(LM_HEAD_KEY) as tf.Tensor2D | null | undefined) ?? this.untied;
  }

  /** Logits [N, V] for hidden states h [N, C]. */
  logits(h: tf.Tensor2D, hooks: AdapterHooks | null | undefined): tf.Tensor2D {
    return headProduct(h, this.weight(hooks));
  }

  /** lm_head.weight as a named parameter when it is not the embedding. */
  namedParameters(): NamedParameter[] {
    return this.untied ? [{ key: LM_HEAD_KEY, tensor: this.untied, transposed: false }] : [];
  }

  /** Parameters beyond the embedding's. */
  extraParameterCount(): number {
    return this.untied?.size ?? 0;
  }

  dispose(): void {
    if (this.untied && !this.untied.isDisposed) this.untied.dispose();
  }
}
