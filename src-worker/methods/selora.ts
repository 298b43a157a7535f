// SeLoRA, semantic-guided LoRA (METHODS.md section 3). For each adapted layer
//   Delta W(s) = B M(s) A,   M(s) = I_r + reshape(g(s)) (row-major, as torch's g(s).view(r, r)),
// g = Linear(d_s, hidden) -> tanh -> Linear(hidden, r*r) with the last layer zero, so training starts
// exactly as LoRA. Per example b of a batch: y_b = x_b W0^T + scale * ((x_b A^T) M_b^T) B^T.
// s is the semantic vector of the example's prompt (semantic.ts), set before each forward by
// prepare(); a forward without one uses the training set's mean s_bar (what `flatten` bakes in).
// Semantic consistency, summed over layers:
//   L_sem = mean_{i<j} w_ij ||B (M_i - M_j) A||_F^2,  w_ij = max(0, cos(s_i, s_j)),
// through r x r Grams: ||B D A||_F^2 = trace(D^T G_B D G_A), G_A = A A^T, G_B = B^T B.
import { LoraSettingsSchema, SeloraSettingsSchema, type LoraSettings, type SeloraSettings } from '../../src-shared/methods.ts';
import { validate, WorkbenchError } from '../../src-shared/errors.ts';
import type { CausalLM } from '../models/types.ts';
import { matMul } from '../models/ops.ts';
import { deriveSeed, mulberry32 } from '../rng.ts';
import { tf } from '../tf.ts';
import { keyPrefix, LoraModel } from './lora.ts';
import { clampedPairCosines, pooledPromptStates } from './semantic.ts';
import type { MethodImplementation } from './types.ts';

export interface SeloraConfig {
  lora: LoraSettings;
  selora: SeloraSettings;
}

/** g's weights of one layer, named as torch's nn.Sequential(Linear, Tanh, Linear) would save them. */
interface Encoder {
  w1: tf.Variable<tf.Rank.R2>; // [hidden, d_s]
  b1: tf.Variable<tf.Rank.R1>; // [hidden]
  w2: tf.Variable<tf.Rank.R2>; // [r*r, hidden], zero at init
  b2: tf.Variable<tf.Rank.R1>; // [r*r], zero at init
}

const encoderKeys = (path: string) => {
  const p = `${keyPrefix(path)}.selora_g`;
  return { w1: `${p}.0.weight`, b1: `${p}.0.bias`, w2: `${p}.2.weight`, b2: `${p}.2.bias` };
};
export const SEMANTIC_MEAN_KEY = 'base_model.model.selora.semantic_mean';

/** Squared Frobenius norms ||B D_p A||_F^2 for D [P, r, r], from G_A = A A^T and G_B = B^T B, in O(P r^3). */
export function gramFrobenius(d: tf.Tensor3D, gA: tf.Tensor2D, gB: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => {
    const [P, r] = d.shape;
    // trace(D^T X) = sum(D (.) X) with X = G_B D G_A; both Grams are symmetric, so
    // X^T = (D G_A)^T G_B and sum(D (.) X) = sum(D^T (.) X^T): two plain [P r, r] x [r, r] products.
    const dGA = tf.reshape(matMul(tf.reshape(d, [P * r, r]) as tf.Tensor2D, gA), [P, r, r]);
    const xT = tf.reshape(matMul(tf.reshape(tf.transpose(dGA, [0, 2, 1]), [P * r, r]) as tf.Tensor2D, gB), [P, r, r]);
    return tf.sum(tf.mul(tf.transpose(d, [0, 2, 1]), xT), [1, 2]) as tf.Tensor1D;
  });
}

export class SeloraModel extends LoraModel {
  override readonly method: string = 'selora';
  readonly conditionsOnInput = true;
  readonly extraStateKeys: ReadonlySet<string>;
  private readonly encoders = new Map<string, Encoder>();
  private readonly semanticSize: number;
  /** s_bar, the training set's mean semantic vector [d_s]: used when no semantics are set, and by flatten. */
  private readonly semanticMean: tf.Variable<tf.Rank.R1>;
  /** Semantic vectors of the rows of the next forwards [B, d_s], and the pair weights of L_sem. */
  private semantics: tf.Tensor2D | null = null;
  /** diff [P, B] with +1 at i and -1 at j for each pair i < j (a product, not a gather: wasm has no gather gradient). */
  private pairs: { diff: tf.Tensor2D; w: tf.Tensor1D } | null = null;
  private readonly cache = new Map<string, tf.Tensor1D>();

  constructor(
    private readonly model: CausalLM,
    readonly selora: SeloraSettings,
    lora: LoraSettings,
    seed: number,
  ) {
    super(model, lora, seed);
    const ds = (this.semanticSize = model.config.hiddenSize);
    const { r } = lora;
    const h = selora.hiddenSize;
    const extra = new Set<string>([SEMANTIC_MEAN_KEY]);
    for (const layer of this.layers.values()) {
      // nn.Linear's default init for the first layer: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
      const random = mulberry32(deriveSeed(seed, 0x5e10, layer.index));
      const bound = 1 / Math.sqrt(ds);
      const w1 = new Float32Array(h * ds).map(() => (2 * random.next() - 1) * bound);
      const b1 = new Float32Array(h).map(() => (2 * random.next() - 1) * bound);
      this.encoders.set(layer.module.path, {
        w1: tf.tidy(() => tf.variable(tf.tensor2d(w1, [h, ds]), true)),
        b1: tf.tidy(() => tf.variable(tf.tensor1d(b1), true)),
        w2: tf.tidy(() => tf.variable(tf.zeros<tf.Rank.R2>([r * r, h]), true)),
        b2: tf.tidy(() => tf.variable(tf.zeros<tf.Rank.R1>([r * r]), true)),
      });
      for (const key of Object.values(encoderKeys(layer.module.path))) extra.add(key);
    }
    this.semanticMean = tf.tidy(() => tf.variable(tf.zeros<tf.Rank.R1>([ds]), false));
    this.extraStateKeys = extra;
  }

  /** Sets the semantic vectors [B, d_s] of the rows of the following forwards. */
  setSemantics(s: tf.Tensor2D): void {
    if (s.shape[1] !== this.semanticSize)
      throw new WorkbenchError('internal', `SeLoRA: semantic vectors have width ${s.shape[1]}, expected ${this.semanticSize}.`);
    this.clearSemantics();
    const B = s.shape[0];
    const diff: number[] = [];
    for (let a = 0; a < B; a++) {
      for (let b = a + 1; b < B; b++) {
        const row = new Array<number>(B).fill(0);
        row[a] = 1;
        row[b] = -1;
        diff.push(...row);
      }
    }
    this.semantics = tf.keep(tf.clone(s));
    // A negative cosine would reward dissimilar prompts' updates for diverging: the weights clamp at 0.
    if (B > 1) this.pairs = { diff: tf.keep(tf.tensor2d(diff, [(B * (B - 1)) / 2, B])), w: tf.keep(clampedPairCosines(s)) };
  }

  clearSemantics(): void {
    this.semantics?.dispose();
    this.semantics = null;
    if (this.pairs) tf.dispose([this.pairs.diff, this.pairs.w]);
    this.pairs = null;
  }

  /**
   * Semantic vectors of prompts [n, d_s], each computed once with the base model and cached by its tokens.
   * The cache stays on the device: these hooks are synchronous and webgpu cannot read back synchronously.
   */
  private semanticVectors(model: CausalLM, prompts: readonly (readonly number[])[]): tf.Tensor2D {
    const keyOf = (p: readonly number[]) => p.join(',');
    const missing = [...new Map(prompts.filter((p) => !this.cache.has(keyOf(p))).map((p) => [keyOf(p), p])).values()];
    if (missing.length > 0) {
      const pooled = pooledPromptStates(model, missing);
      tf.unstack(pooled).forEach((v, k) => this.cache.set(keyOf(missing[k]!), tf.keep(v as tf.Tensor1D)));
      pooled.dispose();
    }
    return tf.stack(prompts.map((p) => this.cache.get(keyOf(p))!)) as tf.Tensor2D;
  }

  fit(model: CausalLM, trainingPrompts: readonly (readonly number[])[]): void {
    const vectors = this.semanticVectors(model, trainingPrompts);
    tf.tidy(() => this.semanticMean.assign(tf.mean(vectors, 0)));
    vectors.dispose();
  }

  prepare(model: CausalLM, prompts: readonly (readonly number[])[]): void {
    const s = this.semanticVectors(model, prompts);
    this.setSemantics(s);
    s.dispose();
  }

  /** M(s) = I + reshape(g(s)) for each row of s [B, d_s]: [B, r, r]. */
  mixing(path: string, s: tf.Tensor2D): tf.Tensor3D {
    const e = this.encoders.get(path)!;
    const r = this.settings.r;
    return tf.tidy(() => {
      const hidden = tf.tanh(tf.add(matMul(s, e.w1 as tf.Tensor2D, false, true), e.b1));
      const g = tf.add(matMul(hidden, e.w2 as tf.Tensor2D, false, true), e.b2);
      return tf.add(tf.reshape(g, [s.shape[0], r, r]), tf.eye(r)) as tf.Tensor3D;
    });
  }

  private currentSemantics(): tf.Tensor2D {
    return this.semantics ?? (tf.reshape(this.semanticMean, [1, this.semanticSize]) as tf.Tensor2D);
  }

  override delta(path: string, x: tf.Tensor, training: boolean): tf.Tensor | null {
    const layer = this.layers.get(path);
    if (!layer) return null;
    return tf.tidy(() => {
      const r = this.settings.r;
      let x2 = (x.rank === 2 ? x : tf.reshape(x, [-1, layer.module.inFeatures])) as tf.Tensor2D;
      if (training && this.settings.dropout > 0) x2 = this.dropout(x2, layer);
      const N = x2.shape[0];
      const m = this.mixing(path, this.currentSemantics()); // [B, r, r]
      const B = m.shape[0];
      if (N % B !== 0)
        throw new WorkbenchError(
          'internal',
          `SeLoRA: ${N} rows do not split into the ${B} examples whose semantic vectors were set; call prepare() before each forward.`,
        );
      const h = tf.mul(matMul(x2, layer.loraA as tf.Tensor2D, false, true), this.scale); // [N, r]
      const mixed = tf.reshape(matMul(tf.reshape(h, [B, N / B, r]) as tf.Tensor3D, m, false, true), [N, r]) as tf.Tensor2D;
      const y = matMul(mixed, layer.loraB as tf.Tensor2D, false, true);
      return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), layer.module.outFeatures]);
    });
  }

  /** L_sem of the current semantics, summed over layers (0 for fewer than two examples). */
  semanticLoss(): tf.Scalar {
    return tf.tidy(() => {
      const pairs = this.pairs;
      if (!pairs || !this.semantics) return tf.scalar(0);
      const terms = [...this.layers.values()].map((layer) => {
        const m = this.mixing(layer.module.path, this.semantics!);
        const [B, r] = m.shape;
        const d = tf.reshape(matMul(pairs.diff, tf.reshape(m, [B, r * r]) as tf.Tensor2D), [pairs.w.shape[0], r, r]) as tf.Tensor3D;
        const a = layer.loraA as tf.Tensor2D;
        const b = layer.loraB as tf.Tensor2D;
        const norms = gramFrobenius(d, matMul(a, a, false, true), matMul(b, b, true, false));
        return tf.mean(tf.mul(pairs.w, norms));
      });
      // Not tf.addN: webgpu compiles its inputs into one shader, limited to 8 storage buffers.
      return tf.sum(tf.stack(terms)) as tf.Scalar;
    });
  }

  regularizers(): { name: string; weight: number; value: tf.Scalar }[] {
    return [{ name: 'sem', weight: this.selora.lambdaSem, value: this.semanticLoss() }];
  }

  override trainable(): { name: string; group: string; variable: tf.Variable }[] {
    const out = super.trainable();
    for (const [path, e] of this.encoders) {
      const keys = encoderKeys(path);
      for (const k of ['w1', 'b1', 'w2', 'b2'] as const) out.push({ name: keys[k], group: 'selora_g', variable: e[k] as tf.Variable });
    }
    return out;
  }

  protected override stateVariables(): Map<string, tf.Variable> {
    const out = super.stateVariables();
    for (const [path, e] of this.encoders) {
      const keys = encoderKeys(path);
      for (const k of ['w1', 'b1', 'w2', 'b2'] as const) out.set(keys[k], e[k] as tf.Variable);
    }
    out.set(SEMANTIC_MEAN_KEY, this.semanticMean as tf.Variable);
    return out;
  }

  /**
   * Plain PEFT LoRA tensors at one semantic vector s (default s_bar): B' = B M(s), A unchanged, so
   * scale x A^T B'^T = scale (x A^T) M(s)^T B^T exactly. The caller disposes them.
   */
  flattenedStateDict(s?: Float32Array): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    tf.tidy(() => {
      const sv = s ? tf.tensor2d(s, [1, this.semanticSize]) : (tf.reshape(this.semanticMean, [1, this.semanticSize]) as tf.Tensor2D);
      for (const layer of this.layers.values()) {
        const m = tf.reshape(this.mixing(layer.module.path, sv), [this.settings.r, this.settings.r]) as tf.Tensor2D;
        out.set(layer.keyA, tf.keep(tf.clone(layer.loraA)));
        out.set(layer.keyB, tf.keep(matMul(layer.loraB as tf.Tensor2D, m)));
      }
    });
    return out;
  }

  /** A LoRA adapter holding flattenedStateDict(s): input-independent, loadable by PEFT. The caller disposes it. */
  async flattened(s?: Float32Array): Promise<LoraModel> {
    const flat = new LoraModel(this.model, this.settings, 0);
    const tensors = this.flattenedStateDict(s);
    try {
      const data = new Map<string, { shape: number[]; data: Float32Array }>();
      for (const [key, t] of tensors) data.set(key, { shape: [...t.shape], data: Float32Array.from((await t.data()) as Float32Array) });
      flat.loadStateDict(data);
      return flat;
    } catch (error) {
      flat.dispose();
      throw error;
    } finally {
      tf.dispose([...tensors.values()]);
    }
  }

  override dispose(): void {
    this.clearSemantics();
    for (const e of this.encoders.values()) tf.dispose([e.w1, e.b1, e.w2, e.b2]);
    this.encoders.clear();
    tf.dispose([...this.cache.values()]);
    this.cache.clear();
    this.semanticMean.dispose();
    super.dispose();
  }
}

export const selora: MethodImplementation<SeloraConfig> = {
  id: 'selora',
  parseSettings: (raw) => {
    const sections = (raw ?? {}) as { lora?: unknown; selora?: unknown };
    return {
      lora: validate(LoraSettingsSchema, sections.lora ?? {}, 'LoRA settings'),
      selora: validate(SeloraSettingsSchema, sections.selora ?? {}, 'SeLoRA settings'),
    };
  },
  create: (model, settings, seed) => new SeloraModel(model, settings.selora, settings.lora, seed),
  capabilities: {
    // Delta W depends on the prompt through g(s): PEFT's LoRA cannot hold that, only the flattened B M(s_bar) A.
    peftForm: () => 'flattened',
    mergeable: true,
    batcher: () => ({ kind: 'shuffled' }),
    hooks: ['fit', 'prepare', 'regularizers', 'flattened'],
  },
};
