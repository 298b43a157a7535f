/*
The Llama family as Hugging Face's LlamaForCausalLM computes it, in TensorFlow.js: Llama 2/3, TinyLlama,
SmolLM/SmolLM2, Qwen2/2.5 (Qwen2ForCausalLM: q/k/v biases) and Mistral (full attention up to its window).
References:
1) Touvron et al. 2023, "Llama 2" (arXiv:2307.09288); Meta's llama/model.py.
2) huggingface/transformers src/transformers/models/llama/modeling_llama.py (rotate_half RoPE, repeat_kv),
   models/qwen2/modeling_qwen2.py, modeling_rope_utils.py (linear and llama3 rope_scaling).
3) Zhang & Sennrich 2019, RMSNorm; Shazeer 2020, SwiGLU; Ainslie et al. 2023, grouped-query attention;
   Su et al. 2021, RoPE.
Layout follows gpt2.ts: config on top, modules in reading order, parameter names = safetensors keys.
Linear weights are stored [out, in] in the checkpoint (nn.Linear); they are transposed once at load to
[in, out] so that neither pass multiplies by a transposed operand (slow on wasm, see ops.ts).
*/
import { WorkbenchError } from '../../src-shared/errors.ts';
import { tf } from '../tf.ts';
import type { KVCache } from './kv-cache.ts';
import { matMul } from './ops.ts';
import { HalfWeight, halfStorageAvailable, namedParameter, type StoredWeight } from '../kernels/half-weights.ts';
import { halfStorable, transposeBits, type HalfFormat } from '../formats/half-bits.ts';
import type { HeadWeight } from '../kernels/head-product.ts';
import { LMHead } from './lm-head.ts';
import { Linear } from './linear.ts';
import { recomputed } from '../kernels/recompute.ts';
import type { AdapterHooks, CausalLM, ForwardOptions, LinearModule, ModelConfigSummary, NamedParameter } from './types.ts';
import { randomWeights, type WeightData } from './random-weights.ts';
import { positiveIntField } from './loading.ts';
export type { WeightData };

export const llamaModelTypes = ['llama', 'qwen2', 'mistral'] as const;
export type LlamaModelType = (typeof llamaModelTypes)[number];

export type RopeScaling =
  | { ropeType: 'linear'; factor: number } // positions / factor (Chen et al. 2023, position interpolation)
  | { ropeType: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

export interface LlamaConfig {
  modelType: LlamaModelType;
  vocabSize: number; // 32000 Llama 2, 128256 Llama 3, 151936 Qwen2
  hiddenSize: number; // residual stream width C
  intermediateSize: number; // SwiGLU hidden width
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number; // fewer than the query heads: grouped-query attention
  headDim: number; // hidden_size / heads unless config.json says head_dim
  maxPositionEmbeddings: number; // longest usable sequence (capped by a sliding window, see below)
  rmsNormEps: number; // 1e-6 (HF default), 1e-5 for Llama 2 and llama2.c
  ropeTheta: number; // 10000 Llama 2, 500000 Llama 3, 1e6 Qwen2.5
  ropeScaling: RopeScaling | null;
  qkvBias: boolean; // Qwen2 always; Llama with attention_bias
  oBias: boolean; // Llama with attention_bias
  mlpBias: boolean; // Llama with mlp_bias
  tieWordEmbeddings: boolean; // lm_head = embed_tokens (SmolLM, Qwen2.5-0.5B, llama2.c models)
}

/** Reads LlamaConfig / Qwen2Config / MistralConfig (config.json); names the field that is missing or unsupported. */
export function llamaConfigFromHF(json: Record<string, unknown>, source = 'config.json'): LlamaConfig {
  const bad = (field: string, message: string): never => {
    throw new WorkbenchError('model_invalid', `${source}: ${message}`, { file: source, field });
  };
  const int = positiveIntField(json, source);
  const positive = (key: string, fallback?: number, from: Record<string, unknown> = json, prefix = ''): number => {
    const value = from[key] ?? fallback;
    if (typeof value !== 'number' || !(value > 0)) bad(prefix + key, `"${prefix}${key}" is ${JSON.stringify(value)}, expected a positive number`);
    return value as number;
  };
  const modelType = json.model_type as LlamaModelType;
  if (!llamaModelTypes.includes(modelType)) bad('model_type', `model_type "${String(modelType)}" is not a Llama-family type (${llamaModelTypes.join(', ')})`);
  const hiddenSize = int('hidden_size');
  const numAttentionHeads = int('num_attention_heads');
  const numKeyValueHeads = int('num_key_value_heads', numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    bad('num_key_value_heads', `num_attention_heads ${numAttentionHeads} is not a multiple of num_key_value_heads ${numKeyValueHeads}`);
  }
  if (json.head_dim == null && hiddenSize % numAttentionHeads !== 0)
    bad('num_attention_heads', `hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numAttentionHeads}`);
  const headDim = int('head_dim', hiddenSize / numAttentionHeads);
  if (headDim % 2 !== 0) bad('head_dim', `head dimension ${headDim} is odd; RoPE rotates pairs of dimensions`);
  const act = json.hidden_act ?? 'silu';
  if (act !== 'silu' && act !== 'swish') bad('hidden_act', `hidden_act "${String(act)}" is not supported; supported: silu`);

  let ropeScaling: RopeScaling | null = null;
  const scaling = json.rope_scaling;
  if (scaling != null) {
    if (typeof scaling !== 'object' || Array.isArray(scaling)) bad('rope_scaling', `"rope_scaling" is ${JSON.stringify(scaling)}, expected an object or null`);
    const s = scaling as Record<string, unknown>;
    const type = s.rope_type ?? s.type;
    const field = (key: string) => positive(key, undefined, s, 'rope_scaling.');
    if (type === 'linear') ropeScaling = { ropeType: 'linear', factor: field('factor') };
    else if (type === 'llama3') {
      ropeScaling = {
        ropeType: 'llama3',
        factor: field('factor'),
        lowFreqFactor: field('low_freq_factor'),
        highFreqFactor: field('high_freq_factor'),
        originalMaxPositionEmbeddings: field('original_max_position_embeddings'),
      };
      if (ropeScaling.highFreqFactor <= ropeScaling.lowFreqFactor) bad('rope_scaling', 'rope_scaling high_freq_factor must exceed low_freq_factor');
    } else if (type !== 'default') bad('rope_scaling', `rope_scaling type "${String(type)}" is not supported; supported: default, linear, llama3`);
  }

  // Attention limited to a sliding window equals full causal attention on sequences no longer than
  // the window, so such models load with their usable length capped at the window.
  let maxPositionEmbeddings = int('max_position_embeddings', 2048);
  const window = json.sliding_window;
  const windowed = modelType === 'mistral' ? window != null : modelType === 'qwen2' && json.use_sliding_window === true;
  if (windowed) maxPositionEmbeddings = Math.min(maxPositionEmbeddings, int('sliding_window'));

  const attentionBias = json.attention_bias === true;
  return {
    modelType,
    vocabSize: int('vocab_size'),
    hiddenSize,
    intermediateSize: int('intermediate_size'),
    numHiddenLayers: int('num_hidden_layers'),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    maxPositionEmbeddings,
    rmsNormEps: positive('rms_norm_eps', 1e-6),
    ropeTheta: positive('rope_theta', 10000),
    ropeScaling,
    qkvBias: modelType === 'qwen2' || attentionBias,
    oBias: modelType === 'llama' && attentionBias,
    mlpBias: modelType === 'llama' && json.mlp_bias === true,
    // LlamaConfig, Qwen2Config and MistralConfig all default to untied.
    tieWordEmbeddings: json.tie_word_embeddings === true,
  };
}

const LINEARS = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'] as const;

/** [in, out] of each linear layer and whether it has a bias. */
function linearShapes(c: LlamaConfig): Record<(typeof LINEARS)[number], [number, number, boolean]> {
  const C = c.hiddenSize;
  const q = c.numAttentionHeads * c.headDim;
  const kv = c.numKeyValueHeads * c.headDim;
  const I = c.intermediateSize;
  return {
    'self_attn.q_proj': [C, q, c.qkvBias],
    'self_attn.k_proj': [C, kv, c.qkvBias],
    'self_attn.v_proj': [C, kv, c.qkvBias],
    'self_attn.o_proj': [q, C, c.oBias],
    'mlp.gate_proj': [C, I, c.mlpBias],
    'mlp.up_proj': [C, I, c.mlpBias],
    'mlp.down_proj': [I, C, c.mlpBias],
  };
}

/** Every parameter LlamaForCausalLM has, with its checkpoint shape (linear weights [out, in]). */
export function llamaParameterShapes(config: LlamaConfig): Map<string, number[]> {
  const { vocabSize: V, hiddenSize: C } = config;
  const shapes = new Map<string, number[]>([['model.embed_tokens.weight', [V, C]]]);
  const linears = linearShapes(config);
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    shapes.set(`${p}.input_layernorm.weight`, [C]);
    for (const name of LINEARS) {
      const [nIn, nOut, bias] = linears[name];
      shapes.set(`${p}.${name}.weight`, [nOut, nIn]);
      if (bias) shapes.set(`${p}.${name}.bias`, [nOut]);
      if (name === 'self_attn.o_proj') shapes.set(`${p}.post_attention_layernorm.weight`, [C]);
    }
  }
  shapes.set('model.norm.weight', [C]);
  if (!config.tieWordEmbeddings) shapes.set('lm_head.weight', [V, C]);
  return shapes;
}

const MASKS_KEPT = 4;

// Buffers some checkpoints carry: RoPE's inverse frequencies, recomputed from the config.
const IGNORED_KEY = /\.rotary_emb\.inv_freq$/;

/** Inverse frequencies theta^(-2i/d), i < d/2, with the configured rope_scaling (modeling_rope_utils.py). */
export function ropeInverseFrequencies(config: LlamaConfig): Float64Array {
  const d = config.headDim;
  const invFreq = new Float64Array(d / 2);
  for (let i = 0; i < d / 2; i++) invFreq[i] = 1 / config.ropeTheta ** ((2 * i) / d);
  const s = config.ropeScaling;
  if (s?.ropeType === 'linear') for (let i = 0; i < invFreq.length; i++) invFreq[i]! /= s.factor;
  if (s?.ropeType === 'llama3') {
    // Long wavelengths are interpolated by `factor`, short ones kept, the band between blended.
    const lowFreqWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highFreqWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    for (let i = 0; i < invFreq.length; i++) {
      const f = invFreq[i]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowFreqWavelen) invFreq[i] = f / s.factor;
      else if (wavelen >= highFreqWavelen) {
        const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        invFreq[i] = ((1 - smooth) * f) / s.factor + smooth * f;
      }
    }
  }
  return invFreq;
}

/** RMSNorm: x / sqrt(mean(x^2) + eps) * weight (no mean subtraction, no bias). */
class RMSNorm {
  constructor(
    readonly weight: tf.Tensor1D,
    readonly eps: number,
    readonly path: string,
  ) {}

  apply(x: tf.Tensor2D, hooks?: AdapterHooks | null): tf.Tensor2D {
    const weight = (hooks?.parameter?.(`${this.path}.weight`) as tf.Tensor1D | null | undefined) ?? this.weight;
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), this.eps))), weight);
  }
}

/** cos and sin of position * inv_freq, (positions, d/2), grown on demand up to the model's length. */
class RotaryEmbedding {
  private cos: tf.Tensor2D | null = null;
  private sin: tf.Tensor2D | null = null;
  private readonly invFreq: Float64Array;

  constructor(
    config: LlamaConfig,
    private readonly maxPositions: number,
  ) {
    this.invFreq = ropeInverseFrequencies(config);
  }

  /** (T, d/2) tables for positions start .. start + T - 1. */
  slice(start: number, T: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
    const have = this.cos ? this.cos.shape[0] : 0;
    if (start + T > have) {
      const n = Math.min(this.maxPositions, Math.max(start + T, 2 * have, 64));
      const half = this.invFreq.length;
      const cos = new Float32Array(n * half);
      const sin = new Float32Array(n * half);
      // Angles in float64: HF rounds inv_freq * position to float32 first, which at position p moves
      // the angle by up to p * 6e-8 rad; the float64 angle is the one both approximate.
      for (let p = 0; p < n; p++) {
        for (let i = 0; i < half; i++) {
          const angle = p * this.invFreq[i]!;
          cos[p * half + i] = Math.cos(angle);
          sin[p * half + i] = Math.sin(angle);
        }
      }
      this.dispose();
      this.cos = tf.keep(tf.tensor2d(cos, [n, half]));
      this.sin = tf.keep(tf.tensor2d(sin, [n, half]));
    }
    return { cos: tf.slice(this.cos!, [start, 0], [T, -1]), sin: tf.slice(this.sin!, [start, 0], [T, -1]) };
  }

  dispose(): void {
    this.cos?.dispose();
    this.sin?.dispose();
    this.cos = this.sin = null;
  }
}

/**
 * HF's apply_rotary_pos_emb: x * cos + rotate_half(x) * sin, where rotate_half(x) = cat(-x2, x1) pairs
 * dimension i with i + d/2 (Meta's checkpoints pair 2i with 2i+1; HF permutes q/k rows to match).
 * x: (B, H, T, d); cos, sin: (T, d/2), the same for both halves.
 */
export function applyRotary(x: tf.Tensor4D, cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor4D {
  const [x1, x2] = tf.split(x, 2, 3);
  return tf.concat([tf.sub(tf.mul(x1!, cos), tf.mul(x2!, sin)), tf.add(tf.mul(x2!, cos), tf.mul(x1!, sin))], 3) as tf.Tensor4D;
}

/**
 * SwiGLU: silu(gate) * up, with silu(g) = g sigmoid(g). The derivative is written out so backprop
 * keeps three tensors instead of the tape of the composite:
 *   d/dgate = up * s (1 + g (1 - s)),  d/dup = g s,  with s = sigmoid(g).
 */
export const swiglu = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [gate, up, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  const s = tf.sigmoid(gate);
  save([gate, up, s]);
  return {
    value: tf.mul(tf.mul(gate, s), up),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [g, u, sg] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      const dSilu = tf.mul(sg, tf.add(tf.mul(g, tf.sub(1, sg)), 1));
      return [tf.mul(tf.mul(dy, u), dSilu), tf.mul(dy, tf.mul(g, sg))];
    },
  };
});

interface AttentionContext {
  B: number;
  T: number;
  cos: tf.Tensor2D;
  sin: tf.Tensor2D;
  /** Additive (nRep * T, S) mask, or null when nothing needs masking (one new token). */
  mask: tf.Tensor2D | null;
  cache: KVCache | null;
  opts: ForwardOptions;
}

class LlamaAttention {
  readonly nRep: number;
  constructor(
    readonly layerIdx: number,
    readonly qProj: Linear, // C -> nh * hd
    readonly kProj: Linear, // C -> nkv * hd
    readonly vProj: Linear, // C -> nkv * hd
    readonly oProj: Linear, // nh * hd -> C
    readonly nHead: number,
    readonly nKVHead: number,
    readonly headDim: number,
  ) {
    this.nRep = nHead / nKVHead;
  }

  /** x: (B*T, C) -> (B*T, C). */
  apply(x: tf.Tensor2D, ctx: AttentionContext): tf.Tensor2D {
    const { B, T, opts } = ctx;
    const hd = this.headDim;
    const training = opts.training ?? false;
    const heads = (t: tf.Tensor2D, n: number) => tf.transpose(tf.reshape(t, [B, T, n, hd]), [0, 2, 1, 3]) as tf.Tensor4D;
    // Scaling q before the product is the same as scaling the (larger) scores after it.
    let q = tf.mul(applyRotary(heads(this.qProj.apply(x, opts.adapters, training), this.nHead), ctx.cos, ctx.sin), 1 / Math.sqrt(hd)) as tf.Tensor4D; // (B, nh, T, hd)
    let k = applyRotary(heads(this.kProj.apply(x, opts.adapters, training), this.nKVHead), ctx.cos, ctx.sin); // (B, nkv, T, hd)
    let v = heads(this.vProj.apply(x, opts.adapters, training), this.nKVHead);
    if (ctx.cache) ({ k, v } = ctx.cache.append(this.layerIdx, k, v)); // (B, nkv, S, hd)
    // Grouped-query attention without repeat_kv: query head h uses kv head floor(h / nRep), and the
    // heads of one group are adjacent, so (B, nh, T, hd) is (B, nkv, nRep * T, hd) as it lies in memory.
    if (this.nRep > 1) q = tf.reshape(q, [B, this.nKVHead, this.nRep * T, hd]);
    let scores = matMul(q, k, false, true); // (B, nkv, nRep * T, S)
    if (ctx.mask) scores = tf.add(scores, ctx.mask);
    const y = matMul(tf.softmax(scores), v); // (B, nkv, nRep * T, hd)
    const merged = tf.reshape(tf.transpose(tf.reshape(y, [B, this.nHead, T, hd]), [0, 2, 1, 3]), [B * T, this.nHead * hd]) as tf.Tensor2D;
    return this.oProj.apply(merged, opts.adapters, training);
  }
}

class LlamaMLP {
  constructor(
    readonly gateProj: Linear, // C -> I
    readonly upProj: Linear, // C -> I
    readonly downProj: Linear, // I -> C
  ) {}

  apply(x: tf.Tensor2D, opts: ForwardOptions): tf.Tensor2D {
    const training = opts.training ?? false;
    const h = swiglu(this.gateProj.apply(x, opts.adapters, training), this.upProj.apply(x, opts.adapters, training)) as tf.Tensor2D;
    return this.downProj.apply(h, opts.adapters, training);
  }
}

/** Pre-norm block: x + attn(input_layernorm(x)), then x + mlp(post_attention_layernorm(x)). */
class LlamaDecoderLayer {
  constructor(
    readonly inputLayernorm: RMSNorm,
    readonly selfAttn: LlamaAttention,
    readonly postAttentionLayernorm: RMSNorm,
    readonly mlp: LlamaMLP,
  ) {}

  apply(x: tf.Tensor2D, ctx: AttentionContext): tf.Tensor2D {
    x = tf.add(x, this.selfAttn.apply(this.inputLayernorm.apply(x, ctx.opts.adapters), ctx));
    return tf.add(x, this.mlp.apply(this.postAttentionLayernorm.apply(x, ctx.opts.adapters), ctx.opts));
  }
}

export class Llama implements CausalLM {
  readonly config: ModelConfigSummary;
  private readonly layers: LlamaDecoderLayer[];
  private readonly norm: RMSNorm;
  private readonly modules: Linear[];
  private readonly rotary: RotaryEmbedding;
  /** Causal masks for sequences starting at position 0, per length (what training uses), kept across steps. */
  private readonly masks = new Map<number, tf.Tensor2D>();
  /** The embedding and the head (tied to it with tie_word_embeddings). */
  readonly head: LMHead;

  constructor(
    readonly llamaConfig: LlamaConfig,
    private readonly params: Map<string, tf.Tensor | HalfWeight>, // linear weights already transposed to [in, out]
    untiedHead: tf.Tensor2D | null, // lm_head.weight [V, C] without tie_word_embeddings
  ) {
    const c = llamaConfig;
    this.head = new LMHead('model.embed_tokens.weight', params.get('model.embed_tokens.weight') as tf.Tensor2D, untiedHead);
    const p = <T extends tf.Tensor>(key: string) => params.get(key) as T;
    const linear = (path: string) =>
      new Linear(path, params.get(`${path}.weight`) as StoredWeight, params.has(`${path}.bias`) ? p<tf.Tensor1D>(`${path}.bias`) : null);
    const norm = (path: string) => new RMSNorm(p(`${path}.weight`), c.rmsNormEps, path);
    this.layers = [];
    for (let i = 0; i < c.numHiddenLayers; i++) {
      const l = `model.layers.${i}`;
      this.layers.push(
        new LlamaDecoderLayer(
          norm(`${l}.input_layernorm`),
          new LlamaAttention(
            i,
            linear(`${l}.self_attn.q_proj`),
            linear(`${l}.self_attn.k_proj`),
            linear(`${l}.self_attn.v_proj`),
            linear(`${l}.self_attn.o_proj`),
            c.numAttentionHeads,
            c.numKeyValueHeads,
            c.headDim,
          ),
          norm(`${l}.post_attention_layernorm`),
          new LlamaMLP(linear(`${l}.mlp.gate_proj`), linear(`${l}.mlp.up_proj`), linear(`${l}.mlp.down_proj`)),
        ),
      );
    }
    this.norm = norm('model.norm');
    this.rotary = new RotaryEmbedding(c, c.maxPositionEmbeddings);
    this.modules = this.layers.flatMap(({ selfAttn: a, mlp: m }) => [a.qProj, a.kProj, a.vProj, a.oProj, m.gateProj, m.upProj, m.downProj]);
    this.config = {
      family: 'llama',
      modelType: c.modelType,
      vocabSize: c.vocabSize,
      hiddenSize: c.hiddenSize,
      numLayers: c.numHiddenLayers,
      numHeads: c.numAttentionHeads,
      maxPositions: c.maxPositionEmbeddings,
    };
  }

  linearModules(): LinearModule[] {
    return this.modules.map(({ path, inFeatures, outFeatures, fanInFanOut }) => ({ path, inFeatures, outFeatures, fanInFanOut }));
  }

  /** Additive mask (nRep * T, past + T): query t (at position past + t) sees keys up to past + t. */
  private maskFor(past: number, T: number): tf.Tensor2D | null {
    if (T === 1) return null;
    const cached = past === 0 ? this.masks.get(T) : undefined;
    if (cached) return cached;
    const S = past + T;
    const nRep = this.llamaConfig.numAttentionHeads / this.llamaConfig.numKeyValueHeads;
    const data = new Float32Array(nRep * T * S);
    for (let r = 0; r < nRep; r++) for (let t = 0; t < T; t++) data.fill(-1e9, (r * T + t) * S + past + t + 1, (r * T + t + 1) * S);
    const mask = tf.tensor2d(data, [nRep * T, S]);
    if (past === 0) {
      // Training uses one length; decoding without a cache a new one per step, so only a few are kept.
      if (this.masks.size >= MASKS_KEPT) {
        const [oldest, old] = this.masks.entries().next().value as [number, tf.Tensor2D];
        old.dispose();
        this.masks.delete(oldest);
      }
      // keep(): the mask outlives the tidy scope of the forward that made it.
      this.masks.set(T, tf.keep(mask));
    }
    return mask;
  }

  /** Final hidden states after model.norm, as (B*T, C). */
  private trunk(inputIds: tf.Tensor2D, opts: ForwardOptions, cache: KVCache | null): tf.Tensor2D {
    const [B, T] = inputIds.shape;
    const past = cache ? cache.length : 0;
    const hooks = opts.adapters;
    // Prompt tuning's virtual tokens take positions 0..n-1 and the real tokens follow, as in PEFT.
    const prefix = past === 0 ? (hooks?.inputEmbeddingPrefix?.() ?? null) : null;
    const n = prefix ? prefix.shape[0] : 0;
    const L = n + T;
    const C = this.llamaConfig.hiddenSize;
    const limit = this.llamaConfig.maxPositionEmbeddings;
    if (past + L > limit) {
      throw new WorkbenchError(
        'invalid_input',
        `Sequence length ${past + L}${n ? ` (with ${n} virtual tokens)` : ''} exceeds the model's ${limit} positions; lower the maximum sequence length.`,
      );
    }
    cache?.assertFits(this.layers.length);
    const ids = tf.reshape(inputIds.dtype === 'int32' ? inputIds : tf.cast(inputIds, 'int32'), [B * T]) as tf.Tensor1D;
    let x = this.head.lookup(ids, hooks);
    if (opts.inputEmbeddingOffset) x = tf.add(x, opts.inputEmbeddingOffset);
    if (prefix) x = tf.reshape(tf.concat([tf.tile(tf.expandDims(prefix, 0), [B, 1, 1]), tf.reshape(x, [B, T, C])], 1), [B * L, C]);
    const ctx: AttentionContext = { B, T: L, ...this.rotary.slice(past, L), mask: this.maskFor(past, L), cache, opts };
    const variables = cache ? null : opts.recompute;
    for (const layer of this.layers)
      x = variables
        ? recomputed(
            (h, [cos, sin, mask]) =>
              layer.apply(h, { ...ctx, cos: cos as tf.Tensor2D, sin: sin as tf.Tensor2D, mask: (mask as tf.Tensor2D | undefined) ?? null }),
            x,
            variables,
            ctx.mask ? [ctx.cos, ctx.sin, ctx.mask] : [ctx.cos, ctx.sin],
          )
        : layer.apply(x, ctx);
    cache?.advance(L);
    x = this.norm.apply(x, hooks);
    return n ? (tf.reshape(tf.slice(tf.reshape(x, [B, L, C]), [0, n, 0], [B, T, C]), [B * T, C]) as tf.Tensor2D) : x;
  }

  private logits(h: tf.Tensor2D, B: number, T: number, hooks?: AdapterHooks | null): tf.Tensor3D {
    return tf.reshape(this.head.logits(h, hooks), [B, T, this.llamaConfig.vocabSize]) as tf.Tensor3D;
  }

  headWeight(adapters?: AdapterHooks | null): HeadWeight {
    return this.head.weight(adapters);
  }

  forward(inputIds: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor3D {
    return tf.tidy(() => this.logits(this.trunk(inputIds, options, null), ...inputIds.shape, options.adapters));
  }

  forwardWithCache(inputIds: tf.Tensor2D, cache: KVCache, options: ForwardOptions = {}): tf.Tensor3D {
    return tf.tidy(() => this.logits(this.trunk(inputIds, options, cache), ...inputIds.shape, options.adapters));
  }

  hiddenStates(inputIds: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor3D {
    return tf.tidy(() => {
      const [B, T] = inputIds.shape;
      return tf.reshape(this.trunk(inputIds, options, null), [B, T, this.llamaConfig.hiddenSize]) as tf.Tensor3D;
    });
  }

  parameterCount(): number {
    let n = 0;
    for (const t of this.params.values()) n += t.size;
    return n + this.head.extraParameterCount();
  }

  namedParameters(): NamedParameter[] {
    // Linear weights were transposed at load (header); embeddings and norms were not.
    const out = [...this.params].map(([key, t]) => namedParameter(key, t, t.rank === 2 && key !== 'model.embed_tokens.weight'));
    return [...out, ...this.head.namedParameters()];
  }

  dispose(): void {
    for (const t of this.params.values()) t.dispose();
    this.head.dispose();
    this.rotary.dispose();
    for (const mask of this.masks.values()) mask.dispose();
    this.masks.clear();
  }
}

/**
 * Builds a Llama-family model from weights keyed as in Hugging Face checkpoints (LlamaForCausalLM's
 * `model.` prefix optional, as LlamaModel saves). Every key and shape is checked; the first bad one is named.
 */
export function createLlama(config: LlamaConfig, weights: Map<string, WeightData>, source = 'weights'): Llama {
  const bad = (message: string, details: Record<string, unknown>): never => {
    throw new WorkbenchError('model_invalid', `${source}: ${message}`, { file: source, ...details });
  };
  const byKey = new Map<string, WeightData>();
  for (const [key, value] of weights) {
    if (IGNORED_KEY.test(key)) continue;
    // With tied embeddings HF ignores a saved lm_head.weight (it is the embedding again).
    if (key === 'lm_head.weight' && config.tieWordEmbeddings) continue;
    byKey.set(key === 'lm_head.weight' || key.startsWith('model.') ? key : `model.${key}`, value);
  }
  const expected = llamaParameterShapes(config);
  const unexpected = [...byKey.keys()].filter((key) => !expected.has(key));
  if (unexpected.length) {
    bad(
      `unexpected tensors for ${config.modelType} with ${config.numHiddenLayers} layers: ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ` and ${unexpected.length - 5} more` : ''}; config.json may not match the weights`,
      { unexpected },
    );
  }
  for (const [key, shape] of expected) {
    const w = byKey.get(key);
    if (!w) {
      const hint = key === 'lm_head.weight' ? ' (config.json says tie_word_embeddings is false; set it to true if the head shares the embedding)' : '';
      bad(`missing tensor ${key} (expected shape [${shape}])${hint}`, { tensor: key });
    }
    if (w!.shape.length !== shape.length || w!.shape.some((d, i) => d !== shape[i])) {
      bad(`tensor ${key} has shape [${w!.shape}], expected [${shape}] from config.json`, { tensor: key, shape: w!.shape, expected: shape });
    }
  }
  const params = new Map<string, tf.Tensor | HalfWeight>();
  let lmHead: tf.Tensor2D | null = null;
  const keepHalf = halfStorageAvailable();
  for (const [key, shape] of expected) {
    const { half } = byKey.get(key)!;
    if (half && keepHalf && halfStorable(key, shape)) {
      const [nOut, nIn] = shape as [number, number];
      params.set(key, new HalfWeight([nIn, nOut], half.format, transposeBits(half.bits, nOut, nIn)));
      continue;
    }
    const data = byKey.get(key)!.data;
    if (key === 'lm_head.weight') lmHead = tf.tensor2d(data, shape as [number, number]);
    else if (shape.length === 2 && key !== 'model.embed_tokens.weight')
      params.set(
        key,
        tf.tidy(() => tf.transpose(tf.tensor2d(data, shape as [number, number]))),
      );
    else params.set(key, tf.tensor(data, shape, 'float32'));
  }
  return new Llama(config, params, lmHead);
}

/**
 * Seeded random weights in LlamaForCausalLM's layout (for tests and benchmarks): N(0, std) matrices,
 * norms near 1; with `format`, the block matrices rounded to 16 bits as a bf16 or f16 checkpoint holds them.
 */
export function randomLlamaWeights(config: LlamaConfig, seed: number, std = 0.02, format: HalfFormat | null = null): Map<string, WeightData> {
  return randomWeights(llamaParameterShapes(config), seed, std, (key) => /(layernorm|norm)\.weight$/.test(key), format);
}
