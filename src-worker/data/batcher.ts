// Seeded batches. Epoch e visits the training rows in a permutation drawn from (seed, e), so the
// batcher's whole state is two integers: a resumed run sees exactly the batches it would have seen.
import { deriveSeed, shuffled } from '../rng.ts';
import type { TokenizedExample } from './tokenize.ts';

const BATCH_STREAM = 0xba7c_4000;

export interface BatcherState {
  /** Epochs completed so far (0 during the first pass). */
  epoch: number;
  /** Next position inside the current epoch's permutation. */
  position: number;
}

export class Batcher {
  private order: number[];
  private state: BatcherState = { epoch: 0, position: 0 };

  /** `indices` are the rows to draw from (the training split). */
  constructor(
    private readonly indices: readonly number[],
    private readonly batchSize: number,
    private readonly seed: number,
  ) {
    if (indices.length === 0) throw new Error('Batcher needs at least one example');
    this.order = this.permutation(0);
  }

  private permutation(epoch: number): number[] {
    return shuffled(this.indices, deriveSeed(this.seed, BATCH_STREAM, epoch));
  }

  /**
   * The next batchSize row indices. A batch that runs past the end of an epoch is completed from
   * the next epoch's permutation, so every step sees the same number of rows.
   */
  next(): number[] {
    const batch: number[] = [];
    while (batch.length < this.batchSize) {
      if (this.state.position >= this.order.length) {
        this.state = { epoch: this.state.epoch + 1, position: 0 };
        this.order = this.permutation(this.state.epoch);
      }
      batch.push(this.order[this.state.position++]!);
    }
    return batch;
  }

  getState(): BatcherState {
    return { ...this.state };
  }

  setState(state: BatcherState): void {
    if (!Number.isInteger(state.epoch) || !Number.isInteger(state.position) || state.epoch < 0 || state.position < 0 || state.position > this.indices.length) {
      throw new Error(`Invalid batcher state ${JSON.stringify(state)} for ${this.indices.length} examples`);
    }
    this.state = { ...state };
    this.order = this.permutation(state.epoch);
  }
}

export interface Batch {
  /** [B, T] row-major token ids, right-padded with padTokenId. */
  inputIds: Int32Array;
  /** [B, T] 1 where the token is a loss target, 0 on prompt and padding. */
  lossMask: Float32Array;
  batchSize: number;
  seqLen: number;
  /** Real (non-pad) tokens in the batch, for tokens/s. */
  tokenCount: number;
}

/**
 * Right padding: with causal attention a real token never attends to the pads after it, so no
 * attention mask is needed, and the pads' mask of 0 keeps them out of the loss. The padded length
 * is rounded up to a multiple of 8 (capped at maxSeqLen) so backends that compile per shape
 * (webgpu) see few distinct shapes.
 */
export function collate(examples: readonly TokenizedExample[], padTokenId: number, maxSeqLen: number): Batch {
  const longest = Math.max(1, ...examples.map((e) => e.inputIds.length));
  const seqLen = Math.max(longest, Math.min(maxSeqLen, Math.ceil(longest / 8) * 8));
  const batchSize = examples.length;
  const inputIds = new Int32Array(batchSize * seqLen).fill(padTokenId);
  const lossMask = new Float32Array(batchSize * seqLen);
  let tokenCount = 0;
  examples.forEach((example, b) => {
    inputIds.set(example.inputIds, b * seqLen);
    lossMask.set(example.lossMask, b * seqLen);
    tokenCount += example.inputIds.length;
  });
  return { inputIds, lossMask, batchSize, seqLen, tokenCount };
}
