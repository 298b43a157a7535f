// SemSim (EVALUATION.md): the cosine similarity of semantic-encoder embeddings of a prediction and
// its gold answer, averaged. The encoder is the base model itself by default (its final hidden
// states mean-pooled over the text's tokens, adapters off, so base and adapter answers are embedded
// by the same function), or a BERT-style sentence encoder folder with Sentence-BERT mean pooling.
import { WorkbenchError } from '../../src-shared/errors.ts';
import { loadEncoder } from '../formats/model-folder.ts';
import { loadTokenizer } from '../formats/tokenizer.ts';
import type { TextTokenizer } from '../formats/tokenizer.ts';
import type { CausalLM } from '../models/types.ts';
import { tf } from '../tf.ts';
import { cosineSimilarity, type QaReport, type QaScores } from './metrics.ts';

export interface SemanticEncoder {
  /** Says which encoder produced the figures ("base model" or the folder). */
  readonly name: string;
  /** One embedding per text; an empty text embeds as zeros (cosine 0 against anything). */
  embed(texts: readonly string[]): Promise<Float32Array[]>;
  dispose(): void;
}

const BATCH = 16;

/**
 * Embeds texts in right-padded batches and caches them by text: gold answers recur across the base
 * model's and the adapter's runs and across perturbation levels.
 */
abstract class BatchedEncoder implements SemanticEncoder {
  private readonly cache = new Map<string, Float32Array>();
  abstract readonly name: string;
  protected abstract readonly hiddenSize: number;
  protected abstract readonly maxPositions: number;
  protected abstract ids(text: string): number[];
  /** Mean-pooled embeddings [B, C] of right-padded ids [B, T] with mask [B, T] (1 = real token). */
  protected abstract pool(ids: tf.Tensor2D, mask: tf.Tensor2D): tf.Tensor2D;

  async embed(texts: readonly string[]): Promise<Float32Array[]> {
    const missing = [...new Set(texts.filter((t) => !this.cache.has(t)))];
    const zeros = new Float32Array(this.hiddenSize);
    const work = missing.map((text) => ({ text, ids: this.ids(text).slice(0, this.maxPositions) }));
    for (const w of work) if (w.ids.length === 0) this.cache.set(w.text, zeros);
    const real = work.filter((w) => w.ids.length > 0).sort((a, b) => b.ids.length - a.ids.length);
    for (let start = 0; start < real.length; start += BATCH) {
      const batch = real.slice(start, start + BATCH);
      const T = batch[0]!.ids.length;
      const ids = new Int32Array(batch.length * T);
      const mask = new Float32Array(batch.length * T);
      batch.forEach((w, b) => {
        ids.set(w.ids, b * T);
        mask.fill(1, b * T, b * T + w.ids.length);
      });
      const pooled = tf.tidy(() => this.pool(tf.tensor2d(ids, [batch.length, T], 'int32'), tf.tensor2d(mask, [batch.length, T])));
      const data = (await pooled.data()) as Float32Array;
      pooled.dispose();
      batch.forEach((w, b) => this.cache.set(w.text, data.slice(b * this.hiddenSize, (b + 1) * this.hiddenSize)));
    }
    return texts.map((t) => this.cache.get(t)!);
  }

  dispose(): void {
    this.cache.clear();
  }
}

/** The evaluated model's own pooled final hidden states, adapters off. The model stays the caller's. */
export class BaseModelEncoder extends BatchedEncoder {
  readonly name = 'base model (mean-pooled final hidden states)';
  protected readonly hiddenSize: number;
  protected readonly maxPositions: number;

  constructor(
    private readonly model: CausalLM,
    private readonly tokenizer: TextTokenizer,
  ) {
    super();
    this.hiddenSize = model.config.hiddenSize;
    this.maxPositions = model.config.maxPositions;
  }

  protected ids(text: string): number[] {
    return this.tokenizer.encode(text);
  }

  protected pool(ids: tf.Tensor2D, mask: tf.Tensor2D): tf.Tensor2D {
    // Right padding cannot reach a real position of a causal model; the mask keeps it out of the mean.
    const h = this.model.hiddenStates(ids, { adapters: null, training: false });
    const m = tf.expandDims(mask, 2);
    return tf.div(tf.sum(tf.mul(h, m), 1), tf.sum(m, 1)) as tf.Tensor2D;
  }
}

/** A BERT-style encoder folder (BertModel, BertForMaskedLM or sentence-transformers), mean pooled. */
export async function loadBertSemanticEncoder(dir: string): Promise<SemanticEncoder> {
  const encoder = await loadEncoder(dir);
  const tokenizer = await loadTokenizer(dir);
  return new (class extends BatchedEncoder {
    readonly name = dir;
    protected readonly hiddenSize = encoder.config.hiddenSize;
    protected readonly maxPositions = encoder.config.maxPositions;
    protected ids(text: string): number[] {
      // [CLS] text [SEP], truncated keeping [SEP] last as the tokenizer's truncation would.
      if (text.trim() === '') return [];
      const ids = tokenizer.encodeWithSpecialTokens(text);
      return ids.length <= this.maxPositions ? ids : [...ids.slice(0, this.maxPositions - 1), ids[ids.length - 1]!];
    }
    protected pool(ids: tf.Tensor2D, mask: tf.Tensor2D): tf.Tensor2D {
      return encoder.meanPooled(ids, mask);
    }
    override dispose(): void {
      super.dispose();
      encoder.dispose();
    }
  })();
}

/** Per-item cosine similarity of prediction and gold embeddings. */
export async function semSimScores(encoder: SemanticEncoder, pairs: readonly { prediction: string; gold: string }[]): Promise<number[]> {
  if (pairs.length === 0) return [];
  const embeddings = await encoder.embed(pairs.flatMap((p) => [p.prediction, p.gold]));
  return pairs.map((_, i) => cosineSimilarity(embeddings[2 * i]!, embeddings[2 * i + 1]!));
}

type WithSemSim<T> = T & { semsim: number };

/** The QA report with each group's mean SemSim beside its EM / F1 (items carry type, level and semsim). */
export function withSemSim(
  report: QaReport,
  items: readonly { type: string | null; level: string | null; semsim: number }[],
): { overall: WithSemSim<QaScores>; byType: Record<string, WithSemSim<QaScores>>; byLevel: Record<string, WithSemSim<QaScores>> } {
  if (items.length === 0) throw new WorkbenchError('invalid_input', 'SemSim needs at least one item; the evaluation slice is empty.');
  const meanOf = (group: readonly { semsim: number }[]) => group.reduce((s, i) => s + i.semsim, 0) / group.length;
  const split = (groups: Record<string, QaScores>, key: (i: (typeof items)[number]) => string | null) =>
    Object.fromEntries(Object.entries(groups).map(([k, scores]) => [k, { ...scores, semsim: meanOf(items.filter((i) => key(i) === k)) }]));
  return { overall: { ...report.overall, semsim: meanOf(items) }, byType: split(report.byType, (i) => i.type), byLevel: split(report.byLevel, (i) => i.level) };
}
