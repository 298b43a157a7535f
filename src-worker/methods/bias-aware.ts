// Bias-aware LoRA (METHODS.md section 4): the LoRA layer W' = W0 + s B A trained on
//   L = L_task + l1 L_bias + l3 L_KL.
// L_bias = mean over the batch of || f(x') - f(x) ||^2, f the mean over the prompt tokens of the final
// hidden states with the adapter on. A learnable offset alone would collapse to zero, so x' is either
// (a) counterfactual: the prompt with its demographic terms swapped (the robustness evaluation's
//     demographic-swap at level 1, so every term with a partner is swapped), prepared once per prompt;
// (b) adversarial: x with b_bias in R^{d_model} added to its input embeddings, b_bias kept at norm
//     epsilon and moved by one signed gradient-ascent step on L_bias before every training step.
// L_KL = KL(P_lora || P_orig) averaged over the completion tokens, P_orig from the base model.
// L_align (one adapter per jointly trained task) needs multi-task training, which the loop does not do.
// The tensors are plain LoRA, so the export is a plain PEFT LoRA; the settings live in the sidecar only.
import type * as tfc from '@tensorflow/tfjs-core';
import { BiasAwareSettingsSchema, LoraSettingsSchema, type BiasAwareSettings, type LoraSettings } from '../../src-shared/config.ts';
import { validate } from '../../src-shared/errors.ts';
import { perturb } from '../eval/perturb.ts';
import type { TextTokenizer } from '../formats/tokenizer.ts';
import type { CausalLM } from '../models/types.ts';
import { deriveSeed, mulberry32 } from '../rng.ts';
import { tf } from '../tf.ts';
import { LoraModel } from './lora.ts';
import type { MethodImplementation, RegularizerBatch } from './types.ts';

export interface BiasAwareConfig {
  lora: LoraSettings;
  biasAware: BiasAwareSettings;
}

const keyOf = (ids: readonly number[]) => ids.join(',');

/**
 * Mean-pooled final hidden states [N, hidden] of `rows` (each at least one token), with the adapter on
 * and no dropout. Rows are right-padded: causal attention keeps the pads out of the real positions,
 * and the pooling mask keeps them out of the mean.
 */
export function pooledStates(model: CausalLM, adapter: LoraModel, rows: readonly (readonly number[])[], offset: tfc.Tensor1D | null = null): tfc.Tensor2D {
  return tf.tidy(() => {
    const length = Math.max(...rows.map((r) => r.length));
    const ids = rows.map((r) => [...r, ...new Array<number>(length - r.length).fill(0)]);
    const mask = rows.map((r) => Array.from({ length }, (_, t) => (t < r.length ? 1 : 0)));
    const states = model.hiddenStates(tf.tensor2d(ids, [rows.length, length], 'int32'), { adapters: adapter, training: false, inputEmbeddingOffset: offset });
    const m = tf.tensor2d(mask, [rows.length, length]);
    return tf.div(tf.sum(tf.mul(states, tf.expandDims(m, -1)), 1), tf.expandDims(tf.sum(m, 1), -1)) as tfc.Tensor2D;
  });
}

/**
 * KL(P_lora || P_orig) per next-token distribution, averaged over the positions whose next token is a
 * target (the positions causalLMLoss counts); 0 for a batch without targets.
 */
export function tokenKL(loraLogits: tfc.Tensor3D, baseLogits: tfc.Tensor3D, lossMask: tfc.Tensor2D): tfc.Scalar {
  return tf.tidy(() => {
    const [B, T, V] = loraLogits.shape;
    const m = tf.cast(lossMask, 'float32') as tfc.Tensor2D;
    const weights = tf.reshape(tf.concat([tf.slice(m, [0, 1], [B, T - 1]), tf.zeros([B, 1])], 1), [B * T]);
    const logP = tf.logSoftmax(tf.reshape(loraLogits, [B * T, V]));
    const logQ = tf.logSoftmax(tf.reshape(baseLogits, [B * T, V]));
    const kl = tf.sum(tf.mul(tf.exp(logP), tf.sub(logP, logQ)), -1);
    return tf.div(tf.sum(tf.mul(kl, weights)), tf.maximum(tf.sum(weights), tf.scalar(1))) as tfc.Scalar;
  });
}

export class BiasAwareModel extends LoraModel {
  override readonly method: string = 'bias-aware';
  /** b_bias (adversarial reading): not a trainable parameter, the optimizer never sees it; it moves by ascent in prepare. */
  readonly biasOffset: tfc.Variable<tfc.Rank.R1> | null = null;
  private tokenizer: TextTokenizer | null = null;
  private readonly counterfactuals = new Map<string, number[] | null>();
  private model: CausalLM | null = null;
  private prompts: (readonly number[])[] = [];
  private readonly maxPositions: number;

  constructor(
    model: CausalLM,
    readonly bias: BiasAwareSettings,
    lora: LoraSettings,
    private readonly biasSeed: number,
  ) {
    super(model, lora, biasSeed);
    this.maxPositions = model.config.maxPositions;
    if (bias.reading === 'adversarial') {
      // A seeded random direction: zero has no direction to project back onto the sphere from.
      const random = mulberry32(deriveSeed(biasSeed, 0xb1a5));
      const v = Float32Array.from({ length: model.config.hiddenSize }, () => 2 * random.next() - 1);
      const norm = Math.hypot(...v);
      this.biasOffset = tf.variable(tf.tensor1d(v.map((x) => (x * bias.epsilon) / norm)), false);
    }
  }

  /** Keeps the tokenizer so prompts can be turned into counterfactuals (decode, swap, encode). */
  fit(model: CausalLM, trainingPrompts: readonly (readonly number[])[], tokenizer?: TextTokenizer): void {
    this.tokenizer = tokenizer ?? null;
    if (this.bias.reading === 'counterfactual') for (const p of trainingPrompts) this.counterfactualOf(p);
    this.model = model;
  }

  /** The prompt with its demographic terms swapped, tokenised; null when it has none (or without a tokenizer). */
  counterfactualOf(prompt: readonly number[]): number[] | null {
    const key = keyOf(prompt);
    const known = this.counterfactuals.get(key);
    if (known !== undefined) return known;
    let result: number[] | null = null;
    if (this.tokenizer && prompt.length > 0) {
      const swapped = perturb(this.tokenizer.decode([...prompt]), 'demographic-swap', 1, this.biasSeed);
      if (swapped.touchedWordIndices.length > 0) {
        const ids = this.tokenizer.encode(swapped.text).slice(0, this.maxPositions);
        if (ids.length > 0) result = ids;
      }
    }
    this.counterfactuals.set(key, result);
    return result;
  }

  /** For tests and callers that have their own tokenizer-free counterfactuals. */
  setCounterfactual(prompt: readonly number[], counterfactual: number[] | null): void {
    this.counterfactuals.set(keyOf(prompt), counterfactual);
  }

  /** Before a training step (training = true) the adversary also takes its ascent step on the new batch. */
  prepare(model: CausalLM, prompts: readonly (readonly number[])[], training = false): void {
    this.model = model;
    this.prompts = prompts.filter((p) => p.length > 0).map((p) => p.slice(0, this.maxPositions));
    if (training) this.ascend();
  }

  /** Rows of the current batch that have a counterfactual. */
  counterfactualCount(): number {
    return this.prompts.filter((p) => this.counterfactualOf(p) !== null).length;
  }

  /** L_bias on the prompts of the last prepare (0 before any, and for a batch without counterfactuals). */
  biasLoss(offset: tfc.Tensor1D | null = this.biasOffset): tfc.Scalar {
    const model = this.model;
    const prompts = this.prompts;
    if (!model || prompts.length === 0) return tf.scalar(0);
    return tf.tidy(() => {
      let diff: tfc.Tensor2D;
      if (this.bias.reading === 'adversarial') {
        diff = tf.sub(pooledStates(model, this, prompts, offset), pooledStates(model, this, prompts));
      } else {
        const rows = prompts.filter((p) => this.counterfactualOf(p) !== null);
        if (rows.length === 0) return tf.scalar(0);
        diff = tf.sub(pooledStates(model, this, rows.map((p) => this.counterfactualOf(p)!)), pooledStates(model, this, rows));
      }
      // Averaged over the whole batch: rows without a counterfactual contribute 0.
      return tf.div(tf.sum(tf.square(diff)), prompts.length) as tfc.Scalar;
    });
  }

  /**
   * One signed ascent step on L_bias for b_bias (step norm epsilon / 2), then back onto the sphere of
   * radius epsilon: the adversary looks for the offset the adapter is most sensitive to.
   */
  ascend(): void {
    const b = this.biasOffset;
    if (!b || !this.model || this.prompts.length === 0) return;
    const epsilon = this.bias.epsilon;
    tf.tidy(() => {
      const g = tf.grad((offset: tfc.Tensor) => this.biasLoss(offset as tfc.Tensor1D))(b);
      const step = (0.5 * epsilon) / Math.sqrt(b.size);
      const moved = tf.add(b, tf.mul(tf.sign(g), step));
      const norm = tf.norm(moved);
      b.assign(tf.mul(moved, tf.div(tf.scalar(epsilon), tf.maximum(norm, tf.scalar(1e-12)))) as tfc.Tensor1D);
    });
  }

  regularizers(batch?: RegularizerBatch): { name: string; weight: number; value: tfc.Scalar }[] {
    const terms = [{ name: 'bias', weight: this.bias.lambdaBias, value: this.biasLoss() }];
    if (this.bias.reading === 'counterfactual') {
      // Logged (weight 0) so a run shows how many of its examples the bias term can act on.
      terms.push({ name: 'bias_counterfactuals', weight: 0, value: tf.scalar(this.counterfactualCount()) });
    }
    if (batch && this.model) {
      const model = this.model;
      // P_orig depends on no variable, so the tape has no path from it to the adapter: no gradient flows into it.
      const base = model.forward(batch.inputIds, { adapters: null, training: false });
      terms.push({ name: 'kl', weight: this.bias.lambdaKl, value: tokenKL(batch.logits, base, batch.lossMask) });
      base.dispose();
    }
    return terms;
  }

  override dispose(): void {
    this.biasOffset?.dispose();
    super.dispose();
  }
}

export const biasAware: MethodImplementation<BiasAwareConfig> = {
  id: 'bias-aware',
  parseSettings: (raw) => {
    const sections = (raw ?? {}) as { lora?: unknown; biasAware?: unknown };
    return {
      lora: validate(LoraSettingsSchema, sections.lora ?? {}, 'LoRA settings'),
      biasAware: validate(BiasAwareSettingsSchema, sections.biasAware ?? {}, 'Bias-aware settings'),
    };
  },
  create: (model, settings, seed) => new BiasAwareModel(model, settings.biasAware, settings.lora, seed),
};
