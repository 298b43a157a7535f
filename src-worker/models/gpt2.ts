/*
GPT-2 as Hugging Face's GPT2LMHeadModel computes it, in TensorFlow.js.
References:
1) OpenAI's GPT-2 release: https://github.com/openai/gpt-2/blob/master/src/model.py
2) huggingface/transformers src/transformers/models/gpt2/modeling_gpt2.py
3) nanoGPT model.py, whose layout this file follows.
The base weights are plain tensors, never tf.Variable: gradients reach only the adapters, which every
linear layer (Conv1D) consults through ForwardOptions.adapters.
*/
import { WorkbenchError } from '../../src-shared/errors.ts';
import { tf } from '../tf.ts';
import type { KVCache } from './kv-cache.ts';
import { hookedLinear, matMul } from './ops.ts';
import { asFloat, HalfWeight, halfStorageAvailable, namedParameter, type StoredWeight } from '../kernels/half-weights.ts';
import { halfStorable, type HalfFormat } from '../formats/half-bits.ts';
import type { HeadWeight } from '../kernels/head-product.ts';
import { LMHead } from './lm-head.ts';
import { recomputed } from '../kernels/recompute.ts';
import type { AdapterHooks, CausalLM, ForwardOptions, LinearModule, ModelConfigSummary, NamedParameter } from './types.ts';
import { randomWeights, type WeightData } from './random-weights.ts';
import { LayerNorm } from './layer-norm.ts';
import { positiveIntField, sameData } from './loading.ts';
export type { WeightData };

export interface GPT2Config {
  vocabSize: number; // 50257 for GPT-2's BPE
  nPositions: number; // 1024: longest sequence, size of the learned position table
  nEmbd: number; // 768: residual stream width C
  nLayer: number; // 12
  nHead: number; // 12: C must divide by it
  nInner: number; // 4 * nEmbd: MLP hidden width
  layerNormEpsilon: number; // 1e-5
  activation: GPT2Activation; // gelu_new: GELU with the tanh approximation
  scaleAttnByInverseLayerIdx: boolean; // false; scores also / (layer index + 1), as Stanford CRFM's Mistral runs train
}

const activations = ['gelu_new', 'gelu_pytorch_tanh', 'gelu_fast', 'gelu', 'relu'] as const;
export type GPT2Activation = (typeof activations)[number];

/** Reads Hugging Face's GPT2Config (config.json); names the field that is missing or unsupported. */
export function gpt2ConfigFromHF(json: Record<string, unknown>, source = 'config.json'): GPT2Config {
  const int = positiveIntField(json, source);
  const nEmbd = int('n_embd');
  const nHead = int('n_head');
  if (nEmbd % nHead !== 0) {
    throw new WorkbenchError('model_invalid', `${source}: n_embd ${nEmbd} is not divisible by n_head ${nHead}`, { file: source, field: 'n_head' });
  }
  const activation = (json.activation_function ?? 'gelu_new') as GPT2Activation;
  if (!activations.includes(activation)) {
    throw new WorkbenchError('model_invalid', `${source}: activation_function "${String(activation)}" is not supported; supported: ${activations.join(', ')}`, {
      file: source,
      field: 'activation_function',
    });
  }
  for (const key of ['add_cross_attention', 'reorder_and_upcast_attn'] as const) {
    if (json[key] === true) throw new WorkbenchError('model_invalid', `${source}: "${key}": true is not supported`, { file: source, field: key });
  }
  if (json.scale_attn_weights === false) {
    throw new WorkbenchError('model_invalid', `${source}: "scale_attn_weights": false is not supported`, { file: source, field: 'scale_attn_weights' });
  }
  const eps = json.layer_norm_epsilon ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0)) {
    throw new WorkbenchError('model_invalid', `${source}: "layer_norm_epsilon" is ${JSON.stringify(eps)}`, { file: source, field: 'layer_norm_epsilon' });
  }
  return {
    vocabSize: int('vocab_size'),
    nPositions: int('n_positions', json.n_ctx as number | undefined),
    nEmbd,
    nLayer: int('n_layer'),
    nHead,
    nInner: json.n_inner == null ? 4 * nEmbd : int('n_inner'),
    layerNormEpsilon: eps,
    activation,
    scaleAttnByInverseLayerIdx: json.scale_attn_by_inverse_layer_idx === true,
  };
}

/** Every parameter GPT2LMHeadModel has, with its shape (Conv1D weights are [in, out]). */
export function gpt2ParameterShapes(config: GPT2Config): Map<string, number[]> {
  const { vocabSize: V, nPositions: P, nEmbd: C, nInner: H } = config;
  const shapes = new Map<string, number[]>([
    ['transformer.wte.weight', [V, C]],
    ['transformer.wpe.weight', [P, C]],
  ]);
  for (let i = 0; i < config.nLayer; i++) {
    const p = `transformer.h.${i}`;
    for (const ln of ['ln_1', 'ln_2']) {
      shapes.set(`${p}.${ln}.weight`, [C]);
      shapes.set(`${p}.${ln}.bias`, [C]);
    }
    for (const [name, nIn, nOut] of [
      ['attn.c_attn', C, 3 * C],
      ['attn.c_proj', C, C],
      ['mlp.c_fc', C, H],
      ['mlp.c_proj', H, C],
    ] as const) {
      shapes.set(`${p}.${name}.weight`, [nIn, nOut]);
      shapes.set(`${p}.${name}.bias`, [nOut]);
    }
  }
  shapes.set('transformer.ln_f.weight', [C]);
  shapes.set('transformer.ln_f.bias', [C]);
  return shapes;
}

const LENGTHS_KEPT = 4;

// Non-parameter buffers that older checkpoints carry: the causal mask and its fill value.
const IGNORED_KEY = /^(transformer\.)?h\.\d+\.attn\.(masked_)?bias$/;

/** GPT-2's Conv1D is a linear layer with the weight stored [in, out]: y = x W + b. */
class Conv1D implements LinearModule {
  readonly fanInFanOut = true;
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(
    readonly path: string,
    readonly weight: StoredWeight, // 16-bit checkpoints' stay 16-bit where the backend widens per use
    readonly bias: tf.Tensor1D,
  ) {
    [this.inFeatures, this.outFeatures] = weight.shape;
  }

  apply(x: tf.Tensor2D, adapters: AdapterHooks | null | undefined, training: boolean): tf.Tensor2D {
    const replaced = adapters?.parameter?.(`${this.path}.weight`) as tf.Tensor2D | null | undefined;
    const b = (adapters?.parameter?.(`${this.path}.bias`) as tf.Tensor1D | null | undefined) ?? this.bias;
    let y = hookedLinear(x, replaced ?? asFloat(this.weight), b, !replaced && this.weight instanceof HalfWeight);
    const delta = adapters?.delta(this.path, x, training);
    if (delta) y = tf.add(y, delta) as tf.Tensor2D;
    const after = adapters?.outputDelta?.(this.path, y, training);
    return after ? (tf.add(y, after) as tf.Tensor2D) : y;
  }
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * gelu_new(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), with its derivative written out so
 * backprop keeps two tensors instead of the tape of eight ops.
 */
export const geluNew = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  const t = tf.tanh(tf.mul(tf.mul(x, tf.add(tf.mul(tf.square(x), 0.044715), 1)), SQRT_2_OVER_PI));
  save([x, t]);
  return {
    value: tf.mul(tf.mul(x, tf.add(t, 1)), 0.5),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ts] = saved as [tf.Tensor, tf.Tensor];
      // d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
      const dInner = tf.mul(tf.add(tf.mul(tf.square(xs), 3 * 0.044715), 1), SQRT_2_OVER_PI);
      const grad = tf.mul(tf.add(tf.add(ts, 1), tf.mul(tf.mul(xs, tf.sub(1, tf.square(ts))), dInner)), 0.5);
      return tf.mul(dy, grad);
    },
  };
});

function activate(x: tf.Tensor2D, kind: GPT2Activation): tf.Tensor2D {
  switch (kind) {
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
    case 'gelu_fast':
      return geluNew(x) as tf.Tensor2D;
    case 'gelu': // exact: 0.5 x (1 + erf(x / sqrt 2))
      return tf.mul(tf.mul(x, tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)), 0.5);
    case 'relu':
      return tf.relu(x);
  }
}

class CausalSelfAttention {
  constructor(
    readonly layerIdx: number,
    readonly cAttn: Conv1D, // q, k, v projections for all heads, concatenated: C -> 3C
    readonly cProj: Conv1D, // output projection: C -> C
    readonly nHead: number,
    readonly scale: number, // 1 / sqrt(hs), and / (layer index + 1) when configured
  ) {}

  /**
   * x: (B*T, C) -> (B*T, C); mask: (T, S) additive, 0 where query t (position S - T + t) may see key s,
   * -1e9 elsewhere, or null for a single new token; S = T unless `cache` holds earlier positions.
   */
  apply(x: tf.Tensor2D, B: number, T: number, mask: tf.Tensor2D | null, opts: ForwardOptions, cache: KVCache | null = null): tf.Tensor2D {
    const C = x.shape[1];
    const hs = C / this.nHead;
    const training = opts.training ?? false;
    const qkv = this.cAttn.apply(x, opts.adapters, training);
    // (B*T, 3C) -> three (B, nh, T, hs): heads become a batch dimension.
    let [q, k, v] = tf.split(qkv, 3, 1).map((t) => tf.transpose(tf.reshape(t, [B, T, this.nHead, hs]), [0, 2, 1, 3])) as [
      tf.Tensor4D,
      tf.Tensor4D,
      tf.Tensor4D,
    ];
    if (cache) ({ k, v } = cache.append(this.layerIdx, k, v)); // (B, nh, S, hs)
    const scores = tf.mul(matMul(q, k, false, true), this.scale); // (B, nh, T, S)
    const att = tf.softmax(mask ? tf.add(scores, mask) : scores);
    const y = matMul(att, v); // (B, nh, T, hs)
    return this.cProj.apply(tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [B * T, C]), opts.adapters, training);
  }
}

class MLP {
  constructor(
    readonly cFc: Conv1D, // C -> 4C
    readonly cProj: Conv1D, // 4C -> C
    readonly activation: GPT2Activation,
  ) {}

  apply(x: tf.Tensor2D, opts: ForwardOptions): tf.Tensor2D {
    const training = opts.training ?? false;
    return this.cProj.apply(activate(this.cFc.apply(x, opts.adapters, training), this.activation), opts.adapters, training);
  }
}

/** Pre-LN transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)). */
class Block {
  constructor(
    readonly ln1: LayerNorm,
    readonly attn: CausalSelfAttention,
    readonly ln2: LayerNorm,
    readonly mlp: MLP,
  ) {}

  apply(x: tf.Tensor2D, B: number, T: number, mask: tf.Tensor2D | null, opts: ForwardOptions, cache: KVCache | null): tf.Tensor2D {
    x = tf.add(x, this.attn.apply(this.ln1.apply(x, opts.adapters), B, T, mask, opts, cache));
    return tf.add(x, this.mlp.apply(this.ln2.apply(x, opts.adapters), opts));
  }
}

export class GPT2 implements CausalLM {
  readonly config: ModelConfigSummary;
  private readonly blocks: Block[];
  private readonly lnF: LayerNorm;
  private readonly modules: Conv1D[];
  /** Per sequence length: the causal mask and the position embeddings, built once, kept across steps. */
  private readonly perLength = new Map<number, { mask: tf.Tensor2D; positions: tf.Tensor2D }>();
  /** The embedding and the head (tied to it unless the checkpoint has lm_head.weight). */
  readonly head: LMHead;

  constructor(
    readonly gpt2Config: GPT2Config,
    private readonly params: Map<string, tf.Tensor | HalfWeight>,
    untiedHead: tf.Tensor2D | null, // lm_head.weight [V, C] when it differs from transformer.wte.weight
  ) {
    const c = gpt2Config;
    this.head = new LMHead('transformer.wte.weight', params.get('transformer.wte.weight') as tf.Tensor2D, untiedHead);
    const p = <T extends tf.Tensor>(key: string) => params.get(key) as T;
    const linear = (path: string) => new Conv1D(path, params.get(`${path}.weight`) as StoredWeight, p(`${path}.bias`));
    const norm = (path: string) => new LayerNorm(p(`${path}.weight`), p(`${path}.bias`), c.layerNormEpsilon, path);
    this.blocks = [];
    for (let i = 0; i < c.nLayer; i++) {
      const h = `transformer.h.${i}`;
      const scale = 1 / Math.sqrt(c.nEmbd / c.nHead) / (c.scaleAttnByInverseLayerIdx ? i + 1 : 1);
      this.blocks.push(
        new Block(
          norm(`${h}.ln_1`),
          new CausalSelfAttention(i, linear(`${h}.attn.c_attn`), linear(`${h}.attn.c_proj`), c.nHead, scale),
          norm(`${h}.ln_2`),
          new MLP(linear(`${h}.mlp.c_fc`), linear(`${h}.mlp.c_proj`), c.activation),
        ),
      );
    }
    this.lnF = norm('transformer.ln_f');
    this.modules = this.blocks.flatMap((b) => [b.attn.cAttn, b.attn.cProj, b.mlp.cFc, b.mlp.cProj]);
    this.config = {
      family: 'gpt2',
      modelType: 'gpt2',
      vocabSize: c.vocabSize,
      hiddenSize: c.nEmbd,
      numLayers: c.nLayer,
      numHeads: c.nHead,
      maxPositions: c.nPositions,
    };
  }

  linearModules(): LinearModule[] {
    return this.modules.map(({ path, inFeatures, outFeatures, fanInFanOut }) => ({ path, inFeatures, outFeatures, fanInFanOut }));
  }

  private constantsFor(T: number): { mask: tf.Tensor2D; positions: tf.Tensor2D } {
    let entry = this.perLength.get(T);
    if (!entry) {
      const mask = new Float32Array(T * T);
      for (let i = 0; i < T; i++) mask.fill(-1e9, i * T + i + 1, (i + 1) * T);
      const wpe = this.params.get('transformer.wpe.weight') as tf.Tensor2D;
      // Training uses one length; decoding without a cache a new one per step, so only a few are kept.
      if (this.perLength.size >= LENGTHS_KEPT) {
        const [oldest, old] = this.perLength.entries().next().value as [number, { mask: tf.Tensor2D; positions: tf.Tensor2D }];
        tf.dispose([old.mask, old.positions]);
        this.perLength.delete(oldest);
      }
      // keep(): these outlive whatever tidy scope the first forward at this length ran in.
      entry = { mask: tf.keep(tf.tensor2d(mask, [T, T])), positions: tf.keep(tf.slice(wpe, [0, 0], [T, this.gpt2Config.nEmbd])) };
      this.perLength.set(T, entry);
    }
    return entry;
  }

  /** Mask and position embeddings for T new tokens after `past` cached ones (see CausalSelfAttention.apply). */
  private inputsAt(past: number, T: number): { mask: tf.Tensor2D | null; positions: tf.Tensor2D } {
    if (past === 0) return this.constantsFor(T);
    const S = past + T;
    const data = new Float32Array(T * S);
    for (let i = 0; i < T; i++) data.fill(-1e9, i * S + past + i + 1, (i + 1) * S);
    const wpe = this.params.get('transformer.wpe.weight') as tf.Tensor2D;
    return { mask: T === 1 ? null : tf.tensor2d(data, [T, S]), positions: tf.slice(wpe, [past, 0], [T, this.gpt2Config.nEmbd]) };
  }

  /** Final hidden states after ln_f as (B*T, C). */
  private trunk(inputIds: tf.Tensor2D, opts: ForwardOptions, cache: KVCache | null = null): tf.Tensor2D {
    const [B, T] = inputIds.shape;
    const C = this.gpt2Config.nEmbd;
    const past = cache ? cache.length : 0;
    if (past + T > this.gpt2Config.nPositions) {
      throw new WorkbenchError(
        'invalid_input',
        `Sequence length ${past + T} exceeds the model's ${this.gpt2Config.nPositions} positions; lower the maximum sequence length.`,
      );
    }
    cache?.assertFits(this.blocks.length);
    const hooks = opts.adapters;
    // Prompt tuning's virtual tokens take positions 0..n-1 and the real tokens follow, as in PEFT.
    const prefix = past === 0 ? (hooks?.inputEmbeddingPrefix?.() ?? null) : null;
    const n = prefix ? prefix.shape[0] : 0;
    const L = n + T;
    if (past + L > this.gpt2Config.nPositions) {
      throw new WorkbenchError(
        'invalid_input',
        `Sequence length ${past + L} (with ${n} virtual tokens) exceeds the model's ${this.gpt2Config.nPositions} positions; lower the maximum sequence length.`,
      );
    }
    const { mask, positions: storedPositions } = this.inputsAt(past, L);
    const wpe = hooks?.parameter?.('transformer.wpe.weight');
    const positions = wpe ? tf.slice(wpe, [past, 0], [L, C]) : storedPositions;
    const ids = tf.reshape(inputIds.dtype === 'int32' ? inputIds : tf.cast(inputIds, 'int32'), [B * T]) as tf.Tensor1D;
    let e = this.head.lookup(ids, hooks);
    if (opts.inputEmbeddingOffset) e = tf.add(e, opts.inputEmbeddingOffset);
    let e3 = tf.reshape(e, [B, T, C]) as tf.Tensor3D;
    if (prefix) e3 = tf.concat([tf.tile(tf.expandDims(prefix, 0), [B, 1, 1]) as tf.Tensor3D, e3], 1);
    let x = tf.reshape(tf.add(e3, positions), [B * L, C]) as tf.Tensor2D;
    const variables = cache ? null : opts.recompute;
    for (const block of this.blocks)
      x = variables
        ? recomputed((h, [m]) => block.apply(h, B, L, (m as tf.Tensor2D | undefined) ?? null, opts, null), x, variables, mask ? [mask] : [])
        : block.apply(x, B, L, mask, opts, cache);
    cache?.advance(L);
    x = this.lnF.apply(x, hooks);
    return n ? (tf.reshape(tf.slice(tf.reshape(x, [B, L, C]), [0, n, 0], [B, T, C]), [B * T, C]) as tf.Tensor2D) : x;
  }

  private logits(h: tf.Tensor2D, B: number, T: number, hooks?: AdapterHooks | null): tf.Tensor3D {
    return tf.reshape(this.head.logits(h, hooks), [B, T, this.gpt2Config.vocabSize]) as tf.Tensor3D;
  }

  headWeight(adapters?: AdapterHooks | null): HeadWeight {
    return this.head.weight(adapters);
  }

  forward(inputIds: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor3D {
    return tf.tidy(() => this.logits(this.trunk(inputIds, options), ...inputIds.shape, options.adapters));
  }

  forwardWithCache(inputIds: tf.Tensor2D, cache: KVCache, options: ForwardOptions = {}): tf.Tensor3D {
    return tf.tidy(() => this.logits(this.trunk(inputIds, options, cache), ...inputIds.shape, options.adapters));
  }

  hiddenStates(inputIds: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor3D {
    return tf.tidy(() => {
      const [B, T] = inputIds.shape;
      return tf.reshape(this.trunk(inputIds, options), [B, T, this.gpt2Config.nEmbd]) as tf.Tensor3D;
    });
  }

  parameterCount(): number {
    let n = 0;
    for (const t of this.params.values()) n += t.size;
    return n + this.head.extraParameterCount();
  }

  namedParameters(): NamedParameter[] {
    return [...[...this.params].map(([key, t]) => namedParameter(key, t, false)), ...this.head.namedParameters()];
  }

  dispose(): void {
    for (const t of this.params.values()) t.dispose();
    this.head.dispose();
    for (const { mask, positions } of this.perLength.values()) tf.dispose([mask, positions]);
    this.perLength.clear();
  }
}

/**
 * Builds GPT-2 from weights keyed as in Hugging Face checkpoints, with or without the `transformer.`
 * prefix (GPT2LMHeadModel vs GPT2Model saves). Every key and shape is checked; the first bad one is named.
 */
export function createGPT2(config: GPT2Config, weights: Map<string, WeightData>, source = 'weights'): GPT2 {
  const bad = (message: string, details: Record<string, unknown>): never => {
    throw new WorkbenchError('model_invalid', `${source}: ${message}`, { file: source, ...details });
  };
  const byKey = new Map<string, WeightData>();
  const unexpected: string[] = [];
  let lmHead: WeightData | undefined;
  for (const [key, value] of weights) {
    if (IGNORED_KEY.test(key)) continue;
    if (key === 'lm_head.weight') lmHead = value;
    else if (key.startsWith('transformer.')) byKey.set(key, value);
    else byKey.set(`transformer.${key}`, value);
  }
  const expected = gpt2ParameterShapes(config);
  for (const key of byKey.keys()) if (!expected.has(key)) unexpected.push(key);
  if (unexpected.length) {
    bad(
      `unexpected tensors for GPT-2 with ${config.nLayer} layers: ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ` and ${unexpected.length - 5} more` : ''}; config.json may not match the weights`,
      {
        unexpected,
      },
    );
  }
  for (const [key, shape] of expected) {
    const w = byKey.get(key);
    if (!w) bad(`missing tensor ${key} (expected shape [${shape}])`, { tensor: key });
    if (w!.shape.length !== shape.length || w!.shape.some((d, i) => d !== shape[i])) {
      bad(`tensor ${key} has shape [${w!.shape}], expected [${shape}] from config.json`, { tensor: key, shape: w!.shape, expected: shape });
    }
  }
  const V = config.vocabSize;
  const C = config.nEmbd;
  if (lmHead && (lmHead.shape.length !== 2 || lmHead.shape[0] !== V || lmHead.shape[1] !== C)) {
    bad(`tensor lm_head.weight has shape [${lmHead.shape}], expected [${V},${C}]`, { tensor: 'lm_head.weight' });
  }
  const params = new Map<string, tf.Tensor | HalfWeight>();
  const keepHalf = halfStorageAvailable();
  for (const key of expected.keys()) {
    const w = byKey.get(key)!;
    params.set(
      key,
      w.half && keepHalf && halfStorable(key, w.shape)
        ? new HalfWeight(w.shape as [number, number], w.half.format, w.half.bits)
        : tf.tensor(w.data, w.shape, 'float32'),
    );
  }
  const tied = !lmHead || sameData(lmHead.data, byKey.get('transformer.wte.weight')!.data);
  return new GPT2(config, params, tied ? null : tf.tensor2d(lmHead!.data, [V, C]));
}

/** Seeded random weights in GPT-2's layout (for tests and benchmarks): N(0, std) matrices, LayerNorm near identity. */
export function randomGPT2Weights(config: GPT2Config, seed: number, std = 0.02, format: HalfFormat | null = null): Map<string, WeightData> {
  return randomWeights(gpt2ParameterShapes(config), seed, std, (key) => /\.ln_(1|2|f)\.weight$/.test(key), format);
}
