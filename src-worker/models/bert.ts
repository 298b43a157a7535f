/*
BERT-style encoders as Hugging Face's BertModel / BertForMaskedLM compute them, in TensorFlow.js: the
semantic encoder of SeLoRA / SG-LoRA (meanPooled) and the masked LM that CrowS-Pairs-style bias
metrics score (pseudoLogLikelihood).
References:
1) Devlin et al. 2019, "BERT" (arXiv:1810.04805); post-LN blocks, exact (erf) GELU.
2) huggingface/transformers src/transformers/models/bert/modeling_bert.py (key names, extended attention
   mask, BertLMPredictionHead with the decoder tied to the word embeddings).
3) Reimers & Gurevych 2019, Sentence-BERT: masked mean pooling of the last hidden states.
4) Salazar et al. 2020, "Masked Language Model Scoring" (arXiv:1910.14659): pseudo-log-likelihood.
Layout follows llama.ts: config on top, modules in reading order, parameter names = safetensors keys,
linear weights transposed once at load to [in, out] (products with a transposed operand are slow on wasm).
*/
import { WorkbenchError } from '../../src-shared/errors.ts';
import { tf } from '../tf.ts';
import { geluNew } from './gpt2.ts';
import { frozenLinear, matMul } from './ops.ts';
import type { ArchitectureSummary, ForwardOptions, LinearModule } from './types.ts';
import { Linear } from './linear.ts';
import { LayerNorm } from './layer-norm.ts';
import { positiveIntField, sameData } from './loading.ts';
import { randomWeights } from './random-weights.ts';

const activations = ['gelu', 'gelu_new', 'relu'] as const;
export type BertActivation = (typeof activations)[number];

export interface BertConfig {
  vocabSize: number; // 30522 for bert-base-uncased's WordPiece
  hiddenSize: number; // 768: residual stream width C
  numHiddenLayers: number; // 12
  numAttentionHeads: number; // 12: C must divide by it
  intermediateSize: number; // 3072: feed-forward hidden width
  maxPositionEmbeddings: number; // 512: size of the learned position table
  typeVocabSize: number; // 2: segment A / B embeddings; single texts use type 0
  layerNormEps: number; // 1e-12
  hiddenAct: BertActivation; // gelu: exact, 0.5 x (1 + erf(x / sqrt 2))
}

/** Reads Hugging Face's BertConfig (config.json); names the field that is missing or unsupported. */
export function bertConfigFromHF(json: Record<string, unknown>, source = 'config.json'): BertConfig {
  const bad = (field: string, message: string): never => {
    throw new WorkbenchError('model_invalid', `${source}: ${message}`, { file: source, field });
  };
  const int = positiveIntField(json, source);
  if (json.model_type !== 'bert') bad('model_type', `model_type "${String(json.model_type)}" is not a BERT encoder (bert)`);
  const hiddenSize = int('hidden_size');
  const numAttentionHeads = int('num_attention_heads');
  if (hiddenSize % numAttentionHeads !== 0)
    bad('num_attention_heads', `hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numAttentionHeads}`);
  const hiddenAct = (json.hidden_act ?? 'gelu') as BertActivation;
  if (!activations.includes(hiddenAct)) bad('hidden_act', `hidden_act "${String(hiddenAct)}" is not supported; supported: ${activations.join(', ')}`);
  const positionType = json.position_embedding_type ?? 'absolute';
  if (positionType !== 'absolute') bad('position_embedding_type', `position_embedding_type "${String(positionType)}" is not supported; supported: absolute`);
  if (json.is_decoder === true || json.add_cross_attention === true) bad('is_decoder', 'BERT as a decoder (is_decoder / add_cross_attention) is not supported');
  const eps = json.layer_norm_eps ?? 1e-12;
  if (typeof eps !== 'number' || !(eps > 0)) bad('layer_norm_eps', `"layer_norm_eps" is ${JSON.stringify(eps)}, expected a positive number`);
  return {
    vocabSize: int('vocab_size'),
    hiddenSize,
    numHiddenLayers: int('num_hidden_layers'),
    numAttentionHeads,
    intermediateSize: int('intermediate_size'),
    maxPositionEmbeddings: int('max_position_embeddings', 512),
    typeVocabSize: int('type_vocab_size', 2),
    layerNormEps: eps as number,
    hiddenAct,
  };
}

export interface WeightData {
  shape: number[];
  data: Float32Array;
}

/** [in, out] of each linear layer of one encoder layer, by its path under encoder.layer.{i}. */
function layerLinears(c: BertConfig): [string, number, number][] {
  const C = c.hiddenSize;
  return [
    ['attention.self.query', C, C],
    ['attention.self.key', C, C],
    ['attention.self.value', C, C],
    ['attention.output.dense', C, C],
    ['intermediate.dense', C, c.intermediateSize],
    ['output.dense', c.intermediateSize, C],
  ];
}

/**
 * BertModel's parameters with their checkpoint shapes (linear weights [out, in]), keyed without the
 * `bert.` prefix BertForMaskedLM adds. The pooler and the MLM head are optional and listed apart.
 */
export function bertParameterShapes(c: BertConfig): { encoder: Map<string, number[]>; pooler: Map<string, number[]>; mlmHead: Map<string, number[]> } {
  const { vocabSize: V, hiddenSize: C } = c;
  const encoder = new Map<string, number[]>([
    ['embeddings.word_embeddings.weight', [V, C]],
    ['embeddings.position_embeddings.weight', [c.maxPositionEmbeddings, C]],
    ['embeddings.token_type_embeddings.weight', [c.typeVocabSize, C]],
    ['embeddings.LayerNorm.weight', [C]],
    ['embeddings.LayerNorm.bias', [C]],
  ]);
  for (let i = 0; i < c.numHiddenLayers; i++) {
    for (const [name, nIn, nOut] of layerLinears(c)) {
      encoder.set(`encoder.layer.${i}.${name}.weight`, [nOut, nIn]);
      encoder.set(`encoder.layer.${i}.${name}.bias`, [nOut]);
      if (name.endsWith('dense') && name !== 'intermediate.dense') {
        const ln = name.replace('dense', 'LayerNorm');
        encoder.set(`encoder.layer.${i}.${ln}.weight`, [C]);
        encoder.set(`encoder.layer.${i}.${ln}.bias`, [C]);
      }
    }
  }
  const pooler = new Map<string, number[]>([
    ['pooler.dense.weight', [C, C]],
    ['pooler.dense.bias', [C]],
  ]);
  const mlmHead = new Map<string, number[]>([
    ['cls.predictions.transform.dense.weight', [C, C]],
    ['cls.predictions.transform.dense.bias', [C]],
    ['cls.predictions.transform.LayerNorm.weight', [C]],
    ['cls.predictions.transform.LayerNorm.bias', [C]],
    ['cls.predictions.bias', [V]],
  ]);
  return { encoder, pooler, mlmHead };
}

// Buffers and duplicates checkpoints carry: position_ids (recomputed), the NSP head of BertForPreTraining
// (unused here), decoder.bias (the same tensor as cls.predictions.bias).
const IGNORED_KEY = /(^|\.)embeddings\.position_ids$|^cls\.seq_relationship\.|^cls\.predictions\.decoder\.bias$/;

function activate(x: tf.Tensor2D, kind: BertActivation): tf.Tensor2D {
  switch (kind) {
    case 'gelu': // tfjs's Erf kernel: Abramowitz-Stegun 7.1.26, |error| < 1.5e-7
      return tf.mul(tf.mul(x, tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)), 0.5);
    case 'gelu_new':
      return geluNew(x) as tf.Tensor2D;
    case 'relu':
      return tf.relu(x);
  }
}

interface EncoderContext {
  B: number;
  T: number;
  /** Additive (B, 1, 1, T) mask: 0 for real keys, -1e9 for padding (HF's get_extended_attention_mask). */
  mask: tf.Tensor4D | null;
  opts: ForwardOptions;
}

/** BertSelfAttention + BertSelfOutput: LayerNorm(x + dense(softmax(q k^T / sqrt(hd) + mask) v)). */
class BertAttention {
  constructor(
    readonly query: Linear,
    readonly key: Linear,
    readonly value: Linear,
    readonly outputDense: Linear,
    readonly outputLayerNorm: LayerNorm,
    readonly nHead: number,
  ) {}

  /** x: (B*T, C) -> (B*T, C). */
  apply(x: tf.Tensor2D, ctx: EncoderContext): tf.Tensor2D {
    const { B, T, opts } = ctx;
    const C = x.shape[1];
    const hs = C / this.nHead;
    const training = opts.training ?? false;
    const heads = (t: tf.Tensor2D) => tf.transpose(tf.reshape(t, [B, T, this.nHead, hs]), [0, 2, 1, 3]) as tf.Tensor4D;
    // Scaling q before the product is the same as scaling the (larger) scores after it.
    const q = tf.mul(heads(this.query.apply(x, opts.adapters, training)), 1 / Math.sqrt(hs)) as tf.Tensor4D; // (B, nh, T, hs)
    const k = heads(this.key.apply(x, opts.adapters, training));
    const v = heads(this.value.apply(x, opts.adapters, training));
    let scores = matMul(q, k, false, true); // (B, nh, T, T)
    if (ctx.mask) scores = tf.add(scores, ctx.mask);
    const y = matMul(tf.softmax(scores), v); // (B, nh, T, hs)
    const merged = tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [B * T, C]) as tf.Tensor2D;
    return this.outputLayerNorm.apply(tf.add(this.outputDense.apply(merged, opts.adapters, training), x));
  }
}

/** Post-LN layer: attention, then LayerNorm(h + output.dense(act(intermediate.dense(h)))). */
class BertLayer {
  constructor(
    readonly attention: BertAttention,
    readonly intermediateDense: Linear,
    readonly outputDense: Linear,
    readonly outputLayerNorm: LayerNorm,
    readonly activation: BertActivation,
  ) {}

  apply(x: tf.Tensor2D, ctx: EncoderContext): tf.Tensor2D {
    const training = ctx.opts.training ?? false;
    const h = this.attention.apply(x, ctx);
    const inner = activate(this.intermediateDense.apply(h, ctx.opts.adapters, training), this.activation);
    return this.outputLayerNorm.apply(tf.add(this.outputDense.apply(inner, ctx.opts.adapters, training), h));
  }
}

export interface EncoderConfigSummary extends ArchitectureSummary {
  family: 'bert';
  hasMlmHead: boolean;
  hasPooler: boolean;
}

export class BertEncoder {
  readonly config: EncoderConfigSummary;
  private readonly layers: BertLayer[];
  private readonly embeddingsLayerNorm: LayerNorm;
  private readonly modules: Linear[];
  /** The tied decoder as [C, V], made on first use on wasm, where products with a transposed operand are slow. */
  private decoderT: tf.Tensor2D | null = null;

  /**
   * @param params keyed without `bert.`; linear weights already transposed to [in, out]
   * @param modulePrefix `bert.` when the checkpoint is BertForMaskedLM, '' for BertModel / sentence-transformers:
   *   module paths (and so PEFT adapter keys) follow the checkpoint's own names
   */
  constructor(
    readonly bertConfig: BertConfig,
    private readonly params: Map<string, tf.Tensor>,
    readonly modulePrefix: string,
  ) {
    const c = bertConfig;
    const p = <T extends tf.Tensor>(key: string) => params.get(key) as T;
    const linear = (key: string) => new Linear(modulePrefix + key, p<tf.Tensor2D>(`${key}.weight`), p<tf.Tensor1D>(`${key}.bias`));
    const norm = (key: string) => new LayerNorm(p(`${key}.weight`), p(`${key}.bias`), c.layerNormEps);
    this.layers = [];
    for (let i = 0; i < c.numHiddenLayers; i++) {
      const l = `encoder.layer.${i}`;
      this.layers.push(
        new BertLayer(
          new BertAttention(
            linear(`${l}.attention.self.query`),
            linear(`${l}.attention.self.key`),
            linear(`${l}.attention.self.value`),
            linear(`${l}.attention.output.dense`),
            norm(`${l}.attention.output.LayerNorm`),
            c.numAttentionHeads,
          ),
          linear(`${l}.intermediate.dense`),
          linear(`${l}.output.dense`),
          norm(`${l}.output.LayerNorm`),
          c.hiddenAct,
        ),
      );
    }
    this.embeddingsLayerNorm = norm('embeddings.LayerNorm');
    this.modules = this.layers.flatMap(({ attention: a, intermediateDense, outputDense }) => [
      a.query,
      a.key,
      a.value,
      a.outputDense,
      intermediateDense,
      outputDense,
    ]);
    this.config = {
      family: 'bert',
      modelType: 'bert',
      vocabSize: c.vocabSize,
      hiddenSize: c.hiddenSize,
      numLayers: c.numHiddenLayers,
      numHeads: c.numAttentionHeads,
      maxPositions: c.maxPositionEmbeddings,
      hasMlmHead: params.has('cls.predictions.bias'),
      hasPooler: params.has('pooler.dense.weight'),
    };
  }

  /** The encoder layers' linear layers in a stable order (layer by layer); the heads are not adapted. */
  linearModules(): LinearModule[] {
    return this.modules.map(({ path, inFeatures, outFeatures, fanInFanOut }) => ({ path, inFeatures, outFeatures, fanInFanOut }));
  }

  /** Last hidden states as (B*T, C). attentionMask: (B, T), 1 for real tokens, 0 for padding; null = all real. */
  private trunk(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D | null, opts: ForwardOptions): tf.Tensor2D {
    const [B, T] = inputIds.shape;
    const C = this.bertConfig.hiddenSize;
    if (T > this.bertConfig.maxPositionEmbeddings) {
      throw new WorkbenchError(
        'invalid_input',
        `Sequence length ${T} exceeds the encoder's ${this.bertConfig.maxPositionEmbeddings} positions; truncate the texts.`,
      );
    }
    if (attentionMask && (attentionMask.shape[0] !== B || attentionMask.shape[1] !== T)) {
      throw new WorkbenchError('invalid_input', `attention mask has shape [${attentionMask.shape}], expected [${B},${T}] like the token ids`);
    }
    const ids = inputIds.dtype === 'int32' ? inputIds : tf.cast(inputIds, 'int32');
    const word = tf.gather(this.params.get('embeddings.word_embeddings.weight')!, tf.reshape(ids, [B * T]));
    const position = tf.slice(this.params.get('embeddings.position_embeddings.weight') as tf.Tensor2D, [0, 0], [T, C]);
    const tokenType = tf.slice(this.params.get('embeddings.token_type_embeddings.weight') as tf.Tensor2D, [0, 0], [1, C]);
    let x = tf.reshape(tf.add(tf.add(tf.reshape(word, [B, T, C]), position), tokenType), [B * T, C]) as tf.Tensor2D;
    x = this.embeddingsLayerNorm.apply(x);
    const mask = attentionMask ? (tf.reshape(tf.mul(tf.sub(1, tf.cast(attentionMask, 'float32')), -1e9), [B, 1, 1, T]) as tf.Tensor4D) : null;
    const ctx: EncoderContext = { B, T, mask, opts };
    for (const layer of this.layers) x = layer.apply(x, ctx);
    return x;
  }

  /** Last hidden states (B, T, C) (BertModel's last_hidden_state). */
  hiddenStates(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D | null = null, options: ForwardOptions = {}): tf.Tensor3D {
    return tf.tidy(() => {
      const [B, T] = inputIds.shape;
      return tf.reshape(this.trunk(inputIds, attentionMask, options), [B, T, this.bertConfig.hiddenSize]) as tf.Tensor3D;
    });
  }

  /** Sentence embeddings (B, C): the mean of the last hidden states over real tokens (Sentence-BERT's pooling). */
  meanPooled(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D | null = null, options: ForwardOptions = {}): tf.Tensor2D {
    return tf.tidy(() => {
      const [B, T] = inputIds.shape;
      const h = tf.reshape(this.trunk(inputIds, attentionMask, options), [B, T, this.bertConfig.hiddenSize]);
      if (!attentionMask) return tf.mean(h, 1) as tf.Tensor2D;
      const m = tf.reshape(tf.cast(attentionMask, 'float32'), [B, T, 1]);
      // Clamped like sentence-transformers, so an all-padding row gives zeros instead of NaN.
      return tf.div(tf.sum(tf.mul(h, m), 1), tf.maximum(tf.sum(m, 1), 1e-9)) as tf.Tensor2D;
    });
  }

  /** BertPooler: tanh(dense(hidden state of [CLS])), (B, C). */
  poolerOutput(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D | null = null, options: ForwardOptions = {}): tf.Tensor2D {
    if (!this.config.hasPooler) throw new WorkbenchError('model_invalid', 'This encoder was saved without a pooler (pooler.dense); use meanPooled instead.');
    return tf.tidy(() => {
      const [B, T] = inputIds.shape;
      const C = this.bertConfig.hiddenSize;
      const cls = tf.reshape(tf.slice(tf.reshape(this.trunk(inputIds, attentionMask, options), [B, T, C]), [0, 0, 0], [B, 1, C]), [B, C]) as tf.Tensor2D;
      return tf.tanh(frozenLinear(cls, { w: this.params.get('pooler.dense.weight') as tf.Tensor2D }, this.params.get('pooler.dense.bias') as tf.Tensor1D));
    });
  }

  /** BertForMaskedLM logits (B, T, V): LayerNorm(act(dense(h))) E^T + bias, with E the word embeddings. */
  mlmLogits(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D | null = null, options: ForwardOptions = {}): tf.Tensor3D {
    this.assertMlmHead();
    return tf.tidy(() => {
      const [B, T] = inputIds.shape;
      return tf.reshape(this.mlmHead(this.trunk(inputIds, attentionMask, options)), [B, T, this.bertConfig.vocabSize]) as tf.Tensor3D;
    });
  }

  /**
   * MLM logits (N, V) at N chosen positions only, `positions[n] = [row, t]`: the head (the largest
   * product for a big vocabulary) runs on those rows alone, which is what masked scoring reads.
   */
  mlmLogitsAt(
    inputIds: tf.Tensor2D,
    positions: readonly (readonly [number, number])[],
    attentionMask: tf.Tensor2D | null = null,
    options: ForwardOptions = {},
  ): tf.Tensor2D {
    this.assertMlmHead();
    const [B, T] = inputIds.shape;
    const bad = positions.find(([b, t]) => !(Number.isInteger(b) && Number.isInteger(t) && b >= 0 && b < B && t >= 0 && t < T));
    if (bad) throw new WorkbenchError('invalid_input', `position [${bad}] is outside the [${B},${T}] batch`);
    return tf.tidy(() => {
      const rows = tf.gather(
        this.trunk(inputIds, attentionMask, options),
        tf.tensor1d(
          positions.map(([b, t]) => b * T + t),
          'int32',
        ),
      ) as tf.Tensor2D;
      return this.mlmHead(rows);
    });
  }

  private assertMlmHead(): void {
    if (!this.config.hasMlmHead) {
      throw new WorkbenchError(
        'model_invalid',
        'This encoder has no masked-LM head (cls.predictions): it is a BertModel or sentence-transformers save. Load a BertForMaskedLM checkpoint to score texts.',
      );
    }
  }

  /** BertLMPredictionHead on hidden states (N, C) -> (N, V). */
  private mlmHead(h: tf.Tensor2D): tf.Tensor2D {
    const p = this.params;
    const transformNorm = new LayerNorm(
      p.get('cls.predictions.transform.LayerNorm.weight') as tf.Tensor1D,
      p.get('cls.predictions.transform.LayerNorm.bias') as tf.Tensor1D,
      this.bertConfig.layerNormEps,
    );
    const dense = frozenLinear(
      h,
      { w: p.get('cls.predictions.transform.dense.weight') as tf.Tensor2D },
      p.get('cls.predictions.transform.dense.bias') as tf.Tensor1D,
    );
    const t = transformNorm.apply(activate(dense, this.bertConfig.hiddenAct));
    const decoder = this.decoderWeight();
    return frozenLinear(
      t,
      tf.getBackend() === 'wasm' ? { w: this.decoderTransposed(decoder), wT: decoder } : { wT: decoder },
      p.get('cls.predictions.bias') as tf.Tensor1D,
    );
  }

  /** cls.predictions.decoder.weight when saved untied, else the word embeddings, [V, C]. */
  private decoderWeight(): tf.Tensor2D {
    return (this.params.get('cls.predictions.decoder.weight') ?? this.params.get('embeddings.word_embeddings.weight')) as tf.Tensor2D;
  }

  private decoderTransposed(decoder: tf.Tensor2D): tf.Tensor2D {
    this.decoderT ??= tf.keep(tf.transpose(decoder));
    return this.decoderT;
  }

  parameterCount(): number {
    let n = 0;
    for (const t of this.params.values()) n += t.size;
    return n;
  }

  dispose(): void {
    for (const t of this.params.values()) t.dispose();
    this.decoderT?.dispose();
    this.decoderT = null;
  }
}

/**
 * Builds a BERT encoder from weights keyed as BertForMaskedLM (`bert.` prefix, cls.predictions head),
 * BertModel or sentence-transformers (no prefix, no head) save them. The encoder's keys are all required;
 * the pooler and the MLM head are taken when complete and named when partial. Every shape is checked.
 */
export function createBert(config: BertConfig, weights: Map<string, WeightData>, source = 'weights'): BertEncoder {
  const bad = (message: string, details: Record<string, unknown>): never => {
    throw new WorkbenchError('model_invalid', `${source}: ${message}`, { file: source, ...details });
  };
  const byKey = new Map<string, WeightData>();
  let prefixed = 0;
  for (const [key, value] of weights) {
    if (IGNORED_KEY.test(key)) continue;
    if (key.startsWith('bert.')) prefixed++;
    byKey.set(key.startsWith('bert.') ? key.slice('bert.'.length) : key, value);
  }
  const { encoder, pooler, mlmHead } = bertParameterShapes(config);
  const wordEmbeddings = byKey.get('embeddings.word_embeddings.weight');
  const decoder = byKey.get('cls.predictions.decoder.weight');
  // A decoder saved next to the embedding it is tied to adds nothing; an untied one is kept as a head weight.
  if (decoder && wordEmbeddings && sameData(decoder.data, wordEmbeddings.data)) byKey.delete('cls.predictions.decoder.weight');
  else if (decoder) mlmHead.set('cls.predictions.decoder.weight', [config.vocabSize, config.hiddenSize]);
  const expected = new Map(encoder);
  for (const optional of [pooler, mlmHead]) {
    const present = [...optional.keys()].filter((k) => byKey.has(k));
    if (present.length === 0) continue;
    const absent = [...optional.keys()].filter((k) => !byKey.has(k));
    if (absent.length)
      bad(`incomplete ${optional === pooler ? 'pooler' : 'masked-LM head'}: missing tensor ${absent[0]} (expected shape [${optional.get(absent[0]!)}])`, {
        tensor: absent[0],
      });
    for (const [k, s] of optional) expected.set(k, s);
  }
  const unexpected = [...byKey.keys()].filter((key) => !expected.has(key));
  if (unexpected.length) {
    bad(
      `unexpected tensors for BERT with ${config.numHiddenLayers} layers: ${unexpected.slice(0, 5).join(', ')}${unexpected.length > 5 ? ` and ${unexpected.length - 5} more` : ''}; config.json may not match the weights`,
      { unexpected },
    );
  }
  for (const [key, shape] of expected) {
    const w = byKey.get(key);
    if (!w) bad(`missing tensor ${key} (expected shape [${shape}])`, { tensor: key });
    if (w!.shape.length !== shape.length || w!.shape.some((d, i) => d !== shape[i])) {
      bad(`tensor ${key} has shape [${w!.shape}], expected [${shape}] from config.json`, { tensor: key, shape: w!.shape, expected: shape });
    }
  }
  const params = new Map<string, tf.Tensor>();
  for (const [key, shape] of expected) {
    const data = byKey.get(key)!.data;
    // Embedding tables and the untied decoder are used as stored ([rows, C]); every other matrix is an nn.Linear.
    const isLinear = shape.length === 2 && !key.startsWith('embeddings.') && key !== 'cls.predictions.decoder.weight';
    params.set(key, isLinear ? tf.tidy(() => tf.transpose(tf.tensor2d(data, shape as [number, number]))) : tf.tensor(data, shape, 'float32'));
  }
  return new BertEncoder(config, params, prefixed > 0 ? 'bert.' : '');
}

/** What pseudoLogLikelihood needs from a tokenizer (loadTokenizer's HFTokenizer in formats/tokenizer.ts has it). */
export interface MaskedLMTokenizer {
  encodeWithSpecialTokens(text: string): number[];
  specialTokenIds: ReadonlySet<number>;
  maskTokenId: number | null;
}

/**
 * Pseudo-log-likelihood of `text` (Salazar et al. 2020), as CrowS-Pairs scores masked LMs: each
 * non-special token is masked in turn and log p(token | rest) summed. The masked copies form one batch
 * (chunks of `batchSize` rows), so a text of n tokens costs n / batchSize forwards.
 */
export async function pseudoLogLikelihood(
  encoder: BertEncoder,
  tokenizer: MaskedLMTokenizer,
  text: string,
  options: ForwardOptions & { batchSize?: number } = {},
): Promise<{ score: number; tokenScores: { id: number; logProb: number }[] }> {
  const maskId = tokenizer.maskTokenId;
  if (maskId === null) throw new WorkbenchError('model_invalid', 'The tokenizer has no mask token: set "mask_token" (e.g. "[MASK]") in tokenizer_config.json.');
  const ids = tokenizer.encodeWithSpecialTokens(text);
  const positions = ids.map((id, i) => (tokenizer.specialTokenIds.has(id) ? -1 : i)).filter((i) => i >= 0);
  const batchSize = Math.max(1, options.batchSize ?? 32);
  const T = ids.length;
  const tokenScores: { id: number; logProb: number }[] = [];
  for (let start = 0; start < positions.length; start += batchSize) {
    const chunk = positions.slice(start, start + batchSize);
    const rows = new Int32Array(chunk.length * T);
    chunk.forEach((pos, r) => {
      rows.set(ids, r * T);
      rows[r * T + pos] = maskId;
    });
    const picked = tf.tidy(() => {
      const input = tf.tensor2d(rows, [chunk.length, T], 'int32');
      const logProbs = tf.logSoftmax(
        encoder.mlmLogitsAt(
          input,
          chunk.map((pos, r) => [r, pos] as const),
          null,
          options,
        ),
      ); // (rows, V)
      const V = logProbs.shape[1];
      return tf.gather(
        tf.reshape(logProbs, [-1]),
        tf.tensor1d(
          chunk.map((pos, r) => r * V + ids[pos]!),
          'int32',
        ),
      );
    });
    const values = await picked.data();
    picked.dispose();
    chunk.forEach((pos, r) => tokenScores.push({ id: ids[pos]!, logProb: values[r]! }));
  }
  return { score: tokenScores.reduce((s, t) => s + t.logProb, 0), tokenScores };
}

/** Seeded random weights in BertForMaskedLM's layout (for tests and benchmarks): N(0, std) matrices, LayerNorm near identity. */
export function randomBertWeights(config: BertConfig, seed: number, std = 0.02): Map<string, WeightData> {
  const { encoder, pooler, mlmHead } = bertParameterShapes(config);
  const weights = randomWeights(new Map([...encoder, ...pooler, ...mlmHead]), seed, std, (key) => key.endsWith('LayerNorm.weight'));
  return new Map([...weights].map(([key, w]) => [key.startsWith('cls.') ? key : `bert.${key}`, w]));
}
