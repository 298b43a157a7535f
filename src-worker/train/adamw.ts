// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019) over parameter groups,
// step for step as torch.optim.AdamW: each group has its own learning rate (LoRA+ gives lora_B
// lambda times lora_A's rate) and weight decay.
import { WorkbenchError } from '../../src-shared/errors.ts';
import type * as tfc from '@tensorflow/tfjs-core';
import { tf } from '../tf.ts';

export interface OptimizerParam {
  /** Stable name used for the optimizer state in checkpoints (the PEFT key of the tensor). */
  name: string;
  variable: tfc.Variable;
}

export interface ParamGroup {
  name: string;
  params: OptimizerParam[];
  lr: number;
  weightDecay: number;
}

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Steps taken so far; bias correction of step t uses t = stepCount after the increment. */
  stepCount = 0;
  private readonly groups: ParamGroup[];
  /** exp_avg (m) and exp_avg_sq (v) per parameter name, as torch names them. */
  private readonly expAvg = new Map<string, tfc.Tensor>();
  private readonly expAvgSq = new Map<string, tfc.Tensor>();

  constructor(groups: ParamGroup[], options: AdamWOptions = {}) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.groups = groups.map((g) => ({ ...g, params: [...g.params] }));
    const seen = new Set<string>();
    for (const { name, variable } of this.groups.flatMap((g) => g.params)) {
      if (seen.has(name)) throw new Error(`AdamW: parameter ${name} is in more than one group`);
      seen.add(name);
      this.expAvg.set(name, tf.keep(tf.zerosLike(variable)));
      this.expAvgSq.set(name, tf.keep(tf.zerosLike(variable)));
    }
  }

  groupNames(): string[] {
    return this.groups.map((g) => g.name);
  }

  learningRate(group: string): number {
    return this.group(group).lr;
  }

  setLearningRate(group: string, lr: number): void {
    this.group(group).lr = lr;
  }

  private group(name: string): ParamGroup {
    const group = this.groups.find((g) => g.name === name);
    if (!group) throw new Error(`AdamW: no parameter group ${name} (have ${this.groupNames().join(', ')})`);
    return group;
  }

  /**
   * One update with `grads` keyed by parameter name. A parameter without a gradient is left alone
   * (as torch skips p.grad is None), but its state still ages with the step count.
   *   p <- p * (1 - lr * wd)                                  (decoupled decay)
   *   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
   *   p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
   */
  step(grads: ReadonlyMap<string, tfc.Tensor>): void {
    this.stepCount += 1;
    const t = this.stepCount;
    const bc1 = 1 - this.beta1 ** t;
    const bc2 = 1 - this.beta2 ** t;
    for (const group of this.groups) {
      for (const { name, variable } of group.params) {
        const g = grads.get(name);
        if (!g) continue;
        const [m, v] = tf.tidy(() => {
          const m = tf.add(tf.mul(this.expAvg.get(name)!, this.beta1), tf.mul(g, 1 - this.beta1));
          const v = tf.add(tf.mul(this.expAvgSq.get(name)!, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
          const decayed = group.weightDecay > 0 ? tf.mul(variable, 1 - group.lr * group.weightDecay) : variable;
          const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(bc2)), this.eps);
          variable.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), group.lr / bc1)));
          return [m, v];
        });
        this.expAvg.get(name)!.dispose();
        this.expAvgSq.get(name)!.dispose();
        this.expAvg.set(name, m);
        this.expAvgSq.set(name, v);
      }
    }
  }

  /** State for a checkpoint: `<param>.exp_avg` and `<param>.exp_avg_sq`; the step count goes beside it. */
  stateDict(): Map<string, tfc.Tensor> {
    const out = new Map<string, tfc.Tensor>();
    for (const [name, m] of this.expAvg) {
      out.set(`${name}.exp_avg`, m);
      out.set(`${name}.exp_avg_sq`, this.expAvgSq.get(name)!);
    }
    return out;
  }

  loadStateDict(tensors: ReadonlyMap<string, { shape: number[]; data: Float32Array }>, stepCount: number): void {
    const problems: string[] = [];
    const loaded: [Map<string, tfc.Tensor>, string, tfc.Tensor][] = [];
    for (const [name, m] of this.expAvg) {
      for (const [store, suffix] of [
        [this.expAvg, 'exp_avg'],
        [this.expAvgSq, 'exp_avg_sq'],
      ] as const) {
        const saved = tensors.get(`${name}.${suffix}`);
        if (!saved) problems.push(`missing ${name}.${suffix}`);
        else if (saved.shape.join() !== m.shape.join()) problems.push(`${name}.${suffix} has shape [${saved.shape}], expected [${m.shape}]`);
        else loaded.push([store, name, tf.keep(tf.tensor(saved.data, saved.shape, 'float32'))]);
      }
    }
    const expected = 2 * this.expAvg.size;
    if (tensors.size !== expected) problems.push(`found ${tensors.size} tensors, expected ${expected}`);
    if (problems.length > 0) {
      loaded.forEach(([, , t]) => t.dispose());
      // The checkpoint on disk is the user's data: one from another run or method, or a damaged one.
      throw new WorkbenchError(
        'format_invalid',
        `The checkpoint's optimizer state does not match the adapter: ${problems.slice(0, 5).join('; ')}. Resume from a checkpoint of this run, or start the run again.`,
      );
    }
    for (const [store, name, tensor] of loaded) {
      store.get(name)!.dispose();
      store.set(name, tensor);
    }
    this.stepCount = stepCount;
  }

  dispose(): void {
    for (const t of [...this.expAvg.values(), ...this.expAvgSq.values()]) t.dispose();
    this.expAvg.clear();
    this.expAvgSq.clear();
  }
}

/**
 * Scales all gradients together so their global L2 norm is at most maxNorm (torch's
 * clip_grad_norm_: coefficient maxNorm / (norm + 1e-6), capped at 1). Returns new tensors and the
 * norm before clipping; the caller owns (and disposes) all of them.
 */
export function clipByGlobalNorm(grads: ReadonlyMap<string, tfc.Tensor>, maxNorm: number): { grads: Map<string, tfc.Tensor>; norm: tfc.Scalar } {
  const clipped = new Map<string, tfc.Tensor>();
  const norm = tf.tidy(() => {
    const squares = [...grads.values()].map((g) => tf.sum(tf.square(g)));
    // stack + sum, not addN: the webgpu backend binds every addN input to one shader, and WebGPU allows
    // 8 storage buffers per stage, so an adapter with more than 7 tensors would get an invalid pipeline.
    const norm = tf.sqrt(squares.length > 0 ? tf.sum(tf.stack(squares)) : tf.scalar(0)) as tfc.Scalar;
    const coef = tf.minimum(tf.div(tf.scalar(maxNorm), tf.add(norm, 1e-6)), 1);
    for (const [name, g] of grads) clipped.set(name, tf.keep(tf.mul(g, coef)));
    return norm;
  });
  return { grads: clipped, norm };
}
