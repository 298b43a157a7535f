// Bias-aware LoRA (METHODS.md section 4): the LoRA layer W' = W0 + s B A trained on
//   L = L_task + l1 L_bias + l3 L_KL.
// L_bias = mean over the batch of || f(x') - f(x) ||^2, f the mean over the prompt tokens of the final
// hidden states with the adapter on. A learnable offset alone would collapse to zero, so x' is either
// (a) counterfactual: the prompt with its demographic terms swapped (the robustness evaluation's
//     demographic-swap at level 1, so every term with a partner is swapped), prepared once per prompt;
// (b) adversarial: x with b_bias in R^{d_model} added to its input embeddings, b_bias kept at norm
//     epsilon and moved by one signed gradient-ascent step on L_bias before every training step.
// L_KL = KL(P_lora || P_orig) averaged over the completion tokens, P_orig from the base model.
// L_align = sum_{i<j} ||B_i A_i - B_j A_j||_F^2 with two or more `tasks`: one adapter per task (task 0
// is LoRA's own layer, the others are extra tensors), a training step trains the task its batch was
// drawn for (data/task-mixture.ts), and every other forward (validation, probe, export, evaluation)
// uses the mixture sum_t pi_t s B_t A_t. Its flattened form is that mixture as one exact PEFT LoRA of
// rank T r. With fewer than two tasks the tensors are plain LoRA, so the export is a plain PEFT LoRA;
// the settings live in the sidecar only.
import type * as tfc from '@tensorflow/tfjs-core';
import { BiasAwareSettingsSchema, LoraSettingsSchema, type BiasAwareSettings, type LoraSettings } from '../../src-shared/methods.ts';
import { validate } from '../../src-shared/errors.ts';
import { perturb } from '../eval/perturb.ts';
import type { TextTokenizer } from '../formats/tokenizer.ts';
import type { CausalLM } from '../models/types.ts';
import { deriveSeed, mulberry32 } from '../rng.ts';
import { tf } from '../tf.ts';
import { matMul } from '../models/ops.ts';
import { alignLossOverModules } from './align.ts';
import { keyPrefix, LoraModel, type LoraLayer } from './lora.ts';
import type { FlatLora, MethodImplementation, RegularizerBatch } from './types.ts';

/** Key of the mixture probabilities in a multi-task adapter's state. */
export const TASK_MIXTURE_KEY = 'base_model.model.align_task_mixture';
const taskKey = (path: string, task: number, matrix: 'A' | 'B') => `${keyPrefix(path)}.align_tasks.${task}.lora_${matrix}.weight`;

export interface BiasAwareConfig {
  lora: LoraSettings;
  biasAware: BiasAwareSettings;
}

const keyOf = (ids: readonly number[]) => ids.join(',');

/** Two or more tasks: one adapter per task, batches drawn by the task mixture, and L_align between them. */
const isMultiTask = (settings: BiasAwareSettings) => settings.tasks.length >= 2;

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

/**
 * The prompt with its demographic terms swapped (the robustness evaluation's demographic-swap at level 1),
 * tokenised and cut to the model's positions; null when it has none. The pytorch engine's data plan
 * carries these ids, computed here, so both engines train on the same counterfactuals.
 */
export function counterfactualIds(tokenizer: TextTokenizer, prompt: readonly number[], seed: number, maxPositions: number): number[] | null {
  if (prompt.length === 0) return null;
  const swapped = perturb(tokenizer.decode([...prompt]), 'demographic-swap', 1, seed);
  if (swapped.touchedWordIndices.length === 0) return null;
  const ids = tokenizer.encode(swapped.text).slice(0, maxPositions);
  return ids.length > 0 ? ids : null;
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
  /** Tasks 1..T-1's layers by module path (task 0 is LoRA's own); empty with fewer than two tasks. */
  private readonly taskLayers: Map<string, LoraLayer>[] = [];
  /** pi_t, saved with the tensors so a reloaded adapter applies the same mixture; null with fewer than two tasks. */
  private readonly mixture: tfc.Variable<tfc.Rank.R1> | null = null;
  private activeTask: number | null = null;
  readonly extraStateKeys?: ReadonlySet<string>;
  /** Set with two or more tasks only: a single-task adapter is a plain LoRA and needs no flattening. */
  flattened?: () => Promise<FlatLora>;
  private readonly owner: CausalLM;

  constructor(
    model: CausalLM,
    readonly bias: BiasAwareSettings,
    lora: LoraSettings,
    private readonly biasSeed: number,
  ) {
    super(model, lora, biasSeed);
    this.owner = model;
    this.maxPositions = model.config.maxPositions;
    const T = bias.tasks.length;
    if (isMultiTask(bias)) {
      const extra = new Set<string>([TASK_MIXTURE_KEY]);
      for (let task = 1; task < T; task++) {
        const layers = new Map<string, LoraLayer>();
        for (const [path, base] of this.layers) {
          const { module, index } = base;
          // PEFT's init for every task: A kaiming-uniform (bound 1 / sqrt(in)), B zero; each task its own stream.
          const random = mulberry32(deriveSeed(biasSeed, index, 0xa119, task));
          const bound = 1 / Math.sqrt(module.inFeatures);
          const a = Float32Array.from({ length: lora.r * module.inFeatures }, () => (2 * random.next() - 1) * bound);
          const layer: LoraLayer = {
            module,
            index,
            loraA: tf.tidy(() => tf.variable(tf.tensor2d(a, [lora.r, module.inFeatures]), true)),
            loraB: tf.tidy(() => tf.variable(tf.zeros<tfc.Rank.R2>([module.outFeatures, lora.r]), true)),
            keyA: taskKey(path, task, 'A'),
            keyB: taskKey(path, task, 'B'),
          };
          layers.set(path, layer);
          extra.add(layer.keyA).add(layer.keyB);
        }
        this.taskLayers.push(layers);
      }
      this.mixture = tf.variable(tf.fill([T], 1 / T), false);
      this.extraStateKeys = extra;
      this.flattened = () => this.flattenTasks();
    }
    if (bias.reading === 'adversarial') {
      // A seeded random direction: zero has no direction to project back onto the sphere from.
      const random = mulberry32(deriveSeed(biasSeed, 0xb1a5));
      const v = Float32Array.from({ length: model.config.hiddenSize }, () => 2 * random.next() - 1);
      const norm = Math.hypot(...v);
      this.biasOffset = tf.variable(tf.tensor1d(v.map((x) => (x * bias.epsilon) / norm)), false);
    }
  }

  /** Every task's layer of one module, task 0 first. */
  private layersOf(path: string): LoraLayer[] {
    const first = this.layers.get(path);
    return first ? [first, ...this.taskLayers.map((m) => m.get(path)!)] : [];
  }

  selectTask(task: number | null): void {
    if (task !== null && (task < 0 || task >= Math.max(1, this.bias.tasks.length))) throw new Error(`selectTask: no task ${task}`);
    this.activeTask = task;
  }

  setTaskMixture(probabilities: readonly number[]): void {
    if (!this.mixture) return;
    if (probabilities.length !== this.mixture.size) throw new Error(`setTaskMixture: ${probabilities.length} probabilities for ${this.mixture.size} tasks`);
    tf.tidy(() => this.mixture!.assign(tf.tensor1d([...probabilities])));
  }

  /** s x A^T B^T of one task's layer, with LoRA's dropout. */
  private layerDelta(layer: LoraLayer, x: tfc.Tensor, training: boolean): tfc.Tensor {
    return tf.tidy(() => {
      let x2 = (x.rank === 2 ? x : tf.reshape(x, [-1, layer.module.inFeatures])) as tfc.Tensor2D;
      if (training && this.settings.dropout > 0) x2 = this.dropout(x2, layer);
      const y = matMul(tf.mul(matMul(x2, layer.loraA as tfc.Tensor2D, false, true), this.scale), layer.loraB as tfc.Tensor2D, false, true);
      return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), layer.module.outFeatures]);
    });
  }

  override delta(path: string, x: tfc.Tensor, training: boolean): tfc.Tensor | null {
    if (!this.mixture || this.activeTask === 0) return super.delta(path, x, training);
    const layers = this.layersOf(path);
    if (layers.length === 0) return null;
    if (this.activeTask !== null) return this.layerDelta(layers[this.activeTask]!, x, training);
    const mixture = this.mixture;
    return tf.tidy(() => layers.map((layer, t) => tf.mul(this.layerDelta(layer, x, training), tf.slice(mixture, [t], [1]))).reduce((a, b) => tf.add(a, b)));
  }

  override trainable(): { name: string; group: string; variable: tfc.Variable }[] {
    return [
      ...super.trainable(),
      ...this.taskLayers.flatMap((m) =>
        [...m.values()].flatMap((l) => [
          { name: l.keyA, group: 'lora_A', variable: l.loraA as tfc.Variable },
          { name: l.keyB, group: 'lora_B', variable: l.loraB as tfc.Variable },
        ]),
      ),
    ];
  }

  protected override stateVariables(): Map<string, tfc.Variable> {
    const out = super.stateVariables();
    for (const m of this.taskLayers) for (const l of m.values()) out.set(l.keyA, l.loraA as tfc.Variable).set(l.keyB, l.loraB as tfc.Variable);
    if (this.mixture) out.set(TASK_MIXTURE_KEY, this.mixture as tfc.Variable);
    return out;
  }

  /** L_align over every adapted module (0 with fewer than two tasks). */
  alignLoss(): tfc.Scalar {
    if (!this.mixture) return tf.scalar(0);
    return alignLossOverModules(
      [...this.layers.keys()].map((path) => this.layersOf(path).map((l) => ({ a: l.loraA as tfc.Tensor2D, b: l.loraB as tfc.Tensor2D }))),
    );
  }

  /**
   * A multi-task adapter as the plain LoRA it applies outside training: sum_t pi_t s B_t A_t, exactly, as
   * rank T r factors B_cat = [pi_0 B_0 | pi_1 B_1 | ...], A_cat = [A_0; A_1; ...] (scale kept: alpha = s T r).
   */
  async flattenTasks(): Promise<FlatLora> {
    if (!this.mixture) throw new Error('flattened: a single-task bias-aware adapter is a plain LoRA already');
    const T = this.bias.tasks.length;
    const r = this.settings.r;
    const flat = new LoraModel(this.owner, { ...this.settings, r: T * r, alpha: this.scaling * T * r, useRslora: false }, this.biasSeed);
    const pi = (await this.mixture.data()) as Float32Array;
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const path of this.layers.keys()) {
      const layers = this.layersOf(path);
      const { inFeatures, outFeatures } = layers[0]!.module;
      const a = new Float32Array(T * r * inFeatures);
      const b = new Float32Array(outFeatures * T * r);
      for (const [t, layer] of layers.entries()) {
        a.set((await layer.loraA.data()) as Float32Array, t * r * inFeatures);
        const bt = (await layer.loraB.data()) as Float32Array;
        for (let o = 0; o < outFeatures; o++) for (let k = 0; k < r; k++) b[o * T * r + t * r + k] = pi[t]! * bt[o * r + k]!;
      }
      tensors.set(`${keyPrefix(path)}.lora_A.weight`, { shape: [T * r, inFeatures], data: a });
      tensors.set(`${keyPrefix(path)}.lora_B.weight`, { shape: [outFeatures, T * r], data: b });
    }
    flat.loadStateDict(tensors);
    return flat;
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
    const result = this.tokenizer ? counterfactualIds(this.tokenizer, prompt, this.biasSeed, this.maxPositions) : null;
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
        diff = tf.sub(
          pooledStates(
            model,
            this,
            rows.map((p) => this.counterfactualOf(p)!),
          ),
          pooledStates(model, this, rows),
        );
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
    if (this.mixture) terms.push({ name: 'align', weight: this.bias.lambdaAlign, value: this.alignLoss() });
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
    this.mixture?.dispose();
    for (const m of this.taskLayers) for (const l of m.values()) tf.dispose([l.loraA, l.loraB]);
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
  capabilities: {
    // With two or more tasks the adapter is one LoRA per task plus their mixture: PEFT holds only the merged mixture.
    peftForm: (settings) => (isMultiTask(settings.biasAware) ? 'flattened' : 'native'),
    mergeable: true,
    batcher: (settings) =>
      isMultiTask(settings.biasAware)
        ? { kind: 'task-mixture', tasks: settings.biasAware.tasks, ratios: settings.biasAware.taskMixture }
        : { kind: 'shuffled' },
    hooks: ['fit', 'prepare', 'regularizers', 'flattened', 'selectTask', 'setTaskMixture'],
  },
};
