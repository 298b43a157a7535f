// The token embedding and the LM head of a causal LM, shared by every family: the lookup, the head's
// weight as the forward uses it (tied to the embedding or lm_head.weight; a method's replacement when
// it trains or dequantizes base weights) and the logits, computed with the weight held once
// (kernels/head-product.ts). The training loss never asks for full logits: it takes headWeight and
// the hidden states to kernels/head-cross-entropy.ts.
//
// Where one [V, C] table exceeds the backend's largest tensor (webgpu binds a tensor whole, and GPT-2's
// 154 MB table is over Dawn's 128 MiB maxStorageBufferBindingSize), the table is held as row shards,
// each within the limit (VocabShards): the lookup gathers from every shard with the ids clipped into
// it and masked, and the head kernels make logits per shard. Elsewhere there is one shard, the table
// itself, and today's single-tensor path.
import { WorkbenchError } from '../../src-shared/errors.ts';
import { type HeadWeight, headProduct, vocabShardRows } from '../kernels/head-product.ts';
import { tf } from '../tf.ts';
import { activeMaxTensorBytes } from '../train/memory-plan.ts';
import { trainableGather } from './ops.ts';
import type { AdapterHooks, NamedParameter } from './types.ts';

export const LM_HEAD_KEY = 'lm_head.weight';

/** A [V, C] table as row shards within a tensor size limit (one shard, the table itself, when it fits). */
export class VocabShards {
  readonly shards: readonly tf.Tensor2D[];

  constructor(
    readonly table: tf.Tensor2D,
    maxTensorBytes: number | null,
  ) {
    const [V, C] = table.shape;
    const rows = vocabShardRows(V, C, maxTensorBytes);
    if (rows === V) {
      this.shards = [table];
      return;
    }
    // Cut from the values in JavaScript: a slice op would bind the whole table, which is what the
    // limit forbids (webgpu keeps a new tensor's values on the CPU until a kernel first uses it).
    const values = table.dataSync() as Float32Array;
    const shards: tf.Tensor2D[] = [];
    for (let start = 0; start < V; start += rows) {
      const n = Math.min(rows, V - start);
      shards.push(tf.tensor2d(values.subarray(start * C, (start + n) * C), [n, C]));
    }
    this.shards = shards;
  }

  /** The head's weight as the kernels take it: the table when whole, else the shards. */
  get weight(): HeadWeight {
    return this.shards.length === 1 ? this.table : this.shards;
  }

  /** Rows of the table for ids [N] (int32): [N, C], shard by shard, each id clipped into the shard and masked. */
  lookup(ids: tf.Tensor1D): tf.Tensor2D {
    if (this.shards.length === 1) return tf.gather(this.table, ids);
    return tf.tidy(() => {
      let rows: tf.Tensor2D | null = null;
      let offset = 0;
      for (const shard of this.shards) {
        const n = shard.shape[0];
        const local = tf.sub(ids, tf.scalar(offset, 'int32'));
        const inShard = tf.logicalAnd(tf.greaterEqual(local, tf.scalar(0, 'int32')), tf.less(local, tf.scalar(n, 'int32')));
        const clipped = tf.maximum(tf.minimum(local, tf.scalar(n - 1, 'int32')), tf.scalar(0, 'int32'));
        const part = tf.mul(tf.gather(shard, clipped), tf.expandDims(tf.cast(inShard, 'float32'), 1)) as tf.Tensor2D;
        rows = rows ? (tf.add(rows, part) as tf.Tensor2D) : part;
        offset += n;
      }
      return rows!;
    });
  }

  dispose(): void {
    if (this.shards.length > 1) tf.dispose([...this.shards]);
  }
}

export class LMHead {
  private readonly embeddingShards: VocabShards;
  private readonly untiedShards: VocabShards | null;

  constructor(
    /** The embedding's checkpoint key (transformer.wte.weight, model.embed_tokens.weight). */
    readonly embeddingKey: string,
    embeddingTable: tf.Tensor2D, // [V, C]
    /** lm_head.weight [V, C] when the checkpoint has its own head; null when the head is the embedding. */
    private readonly untied: tf.Tensor2D | null,
    /** The backend's largest tensor (memory-plan.ts BackendLimits.maxTensorBytes); tests force a small one. */
    private readonly maxTensorBytes: number | null = activeMaxTensorBytes(),
  ) {
    this.embeddingShards = new VocabShards(embeddingTable, maxTensorBytes);
    this.untiedShards = untied ? new VocabShards(untied, maxTensorBytes) : null;
  }

  get tied(): boolean {
    return this.untied === null;
  }

  /** A method's replacement of `key` (a trained or dequantized table), held whole: refused where it exceeds the backend's largest tensor. */
  private replacement(key: string, hooks: AdapterHooks | null | undefined): tf.Tensor2D | null {
    const table = (hooks?.parameter?.(key) as tf.Tensor2D | null | undefined) ?? null;
    if (table && this.maxTensorBytes !== null && table.size * 4 > this.maxTensorBytes) {
      throw new WorkbenchError(
        'out_of_memory',
        `${key} [${table.shape}] takes ${((table.size * 4) / 1e6).toFixed(0)} MB as one trained tensor, over this backend's largest tensor (${(this.maxTensorBytes / 1e6).toFixed(0)} MB). Freeze the embeddings (full fine-tuning's trainEmbeddings false), use an adapter method such as LoRA, or the wasm or cpu backend.`,
        { tensor: key, bytes: table.size * 4, maxTensorBytes: this.maxTensorBytes },
      );
    }
    return table;
  }

  /** Rows of the embedding for ids [N] (int32): [N, C]; a trained table gets its gradient without UnsortedSegmentSum (ops.ts). */
  lookup(ids: tf.Tensor1D, hooks: AdapterHooks | null | undefined): tf.Tensor2D {
    const table = this.replacement(this.embeddingKey, hooks);
    if (!table) return this.embeddingShards.lookup(ids);
    return table instanceof tf.Variable ? trainableGather(table, ids) : tf.gather(table, ids);
  }

  /** The head's weight [V, C] as the forward uses it, or its row shards where the backend needs them. */
  weight(hooks: AdapterHooks | null | undefined): HeadWeight {
    if (!this.untiedShards) return this.replacement(this.embeddingKey, hooks) ?? this.embeddingShards.weight;
    return this.replacement(LM_HEAD_KEY, hooks) ?? this.untiedShards.weight;
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

  /** The shards made here; the embedding table itself belongs to the model's parameters. */
  dispose(): void {
    this.embeddingShards.dispose();
    this.untiedShards?.dispose();
    if (this.untied && !this.untied.isDisposed) this.untied.dispose();
  }
}
