// Prompt tuning (Lester, Al-Rfou, Constant 2021, arXiv:2104.08691; METHODS.md section 6) as PEFT's
// PROMPT_TUNING: n trainable vectors P [n, d] are prepended to the input embeddings of every sequence
// (the model's `inputEmbeddingPrefix` hook), so the virtual tokens take positions 0..n-1 and the real
// tokens follow; the model returns outputs for the real tokens only, so the task loss never counts the
// virtual ones (PEFT pads the labels with -100 for the same effect). The base model stays frozen.
// Initialisation: `text` as PEFT's TEXT (the init text's token ids repeated and cut to n, their rows of
// the embedding table); `random` draws N(0, s^2) with s the embedding table's own standard deviation,
// where PEFT's RANDOM keeps nn.Embedding's N(0, 1), far off the scale of a trained model's embeddings.
// Export: adapter_model.safetensors holds `prompt_embeddings` [n, d], adapter_config.json PEFT's
// PromptTuningConfig fields only.
import { PromptTuningSettingsSchema, type PromptTuningSettings } from '../../src-shared/methods.ts';
import { validate, WorkbenchError } from '../../src-shared/errors.ts';
import type { TextTokenizer } from '../formats/tokenizer.ts';
import type { CausalLM, LinearModule } from '../models/types.ts';
import { deriveSeed, mulberry32 } from '../rng.ts';
import { tf } from '../tf.ts';
import type { AdapterModel, MethodImplementation } from './types.ts';

export const PROMPT_EMBEDDINGS_KEY = 'prompt_embeddings';
const EMBEDDING_KEYS = ['transformer.wte.weight', 'model.embed_tokens.weight'];

/** Standard normal draws from the seeded generator (Box-Muller), identical on every backend. */
function normals(n: number, seed: number): Float32Array {
  const random = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - random.next();
    const v = random.next();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

export class PromptTuningModel implements AdapterModel {
  readonly method = 'prompt-tuning';
  readonly targets: LinearModule[] = [];
  readonly extraStateKeys: ReadonlySet<string> = new Set([PROMPT_EMBEDDINGS_KEY]);
  /** P [n, d]. */
  readonly prompt: tf.Variable<tf.Rank.R2>;
  private readonly embedding: tf.Tensor2D;

  /** numVirtualTokens may be 0 here (a test's check that no prompt is the base model); the settings schema asks for at least 1. */
  constructor(
    private readonly model: CausalLM,
    readonly settings: PromptTuningSettings,
    seed: number,
  ) {
    const table = model.namedParameters?.().find((p) => EMBEDDING_KEYS.includes(p.key));
    if (!table) throw new WorkbenchError('invalid_input', 'Prompt tuning needs a model family whose token embeddings it can read (GPT-2 or Llama).');
    this.embedding = table.tensor as tf.Tensor2D;
    const n = settings.numVirtualTokens;
    const d = model.config.hiddenSize;
    const init = normals(n * d, deriveSeed(seed, 0x9707));
    // Scaled on the device: reading the table's std back would need a synchronous read, which webgpu lacks in Node.
    this.prompt = tf.tidy(() => tf.variable(tf.mul(tf.tensor2d(init, [n, d]), tf.sqrt(tf.moments(this.embedding).variance)), true));
  }

  /** TEXT init needs the tokenizer, which training hands over here (before the first step; a resume overwrites P). */
  fit(_model: CausalLM, _prompts: readonly (readonly number[])[], tokenizer?: TextTokenizer): void {
    if (this.settings.init !== 'text') return;
    if (!tokenizer) throw new WorkbenchError('internal', 'Prompt tuning with init "text" needs the tokenizer.');
    this.initFromTokens(tokenizer.encode(this.settings.initText));
  }

  /** P = the embeddings of `ids` repeated and cut to n rows, as PEFT's PromptEmbedding does for TEXT. */
  initFromTokens(ids: number[]): void {
    if (ids.length === 0) {
      throw new WorkbenchError(
        'invalid_input',
        'promptTuning.initText is empty or has no tokens: give a text (e.g. a description of the task) or choose init "random".',
        {
          issues: [{ path: 'promptTuning.initText', message: 'no tokens' }],
        },
      );
    }
    const n = this.settings.numVirtualTokens;
    const rows = Array.from({ length: n }, (_, i) => ids[i % ids.length]!);
    tf.tidy(() => this.prompt.assign(tf.gather(this.embedding, tf.tensor1d(rows, 'int32')) as tf.Tensor2D));
  }

  delta(): null {
    return null;
  }

  inputEmbeddingPrefix(): tf.Tensor2D {
    return this.prompt;
  }

  trainable(): { name: string; group: string; variable: tf.Variable }[] {
    return [{ name: PROMPT_EMBEDDINGS_KEY, group: PROMPT_EMBEDDINGS_KEY, variable: this.prompt as tf.Variable }];
  }

  trainableParamCount(): number {
    return this.prompt.size;
  }

  stateDict(): Map<string, tf.Tensor> {
    return new Map([[PROMPT_EMBEDDINGS_KEY, tf.clone(this.prompt)]]);
  }

  loadStateDict(tensors: Map<string, { shape: number[]; data: Float32Array }>): void {
    const t = tensors.get(PROMPT_EMBEDDINGS_KEY);
    const unexpected = [...tensors.keys()].filter((k) => k !== PROMPT_EMBEDDINGS_KEY);
    if (!t || unexpected.length) {
      throw new WorkbenchError(
        'format_invalid',
        `A prompt-tuning adapter holds exactly one tensor, ${PROMPT_EMBEDDINGS_KEY}; ${t ? `unexpected ${unexpected.slice(0, 4).join(', ')}` : 'it is missing'}.`,
        { unexpected },
      );
    }
    if (t.shape.length !== 2 || t.shape[0] !== this.prompt.shape[0] || t.shape[1] !== this.prompt.shape[1]) {
      throw new WorkbenchError(
        'format_invalid',
        `${PROMPT_EMBEDDINGS_KEY} has shape [${t.shape}], expected [${this.prompt.shape}] (numVirtualTokens, hidden size).`,
        { tensor: PROMPT_EMBEDDINGS_KEY },
      );
    }
    tf.tidy(() => this.prompt.assign(tf.tensor2d(t.data, t.shape as [number, number])));
  }

  /** PEFT's PromptTuningConfig (and PromptLearningConfig) fields only. */
  peftConfig(baseModelNameOrPath: string): Record<string, unknown> {
    const text = this.settings.init === 'text';
    const c = this.model.config;
    return {
      peft_type: 'PROMPT_TUNING',
      task_type: 'CAUSAL_LM',
      num_virtual_tokens: this.settings.numVirtualTokens,
      token_dim: c.hiddenSize,
      num_transformer_submodules: 1,
      num_attention_heads: c.numHeads,
      num_layers: c.numLayers,
      prompt_tuning_init: text ? 'TEXT' : 'RANDOM',
      prompt_tuning_init_text: text ? this.settings.initText : null,
      // PEFT requires a tokenizer for TEXT; the base model folder holds it.
      tokenizer_name_or_path: text ? baseModelNameOrPath : null,
      base_model_name_or_path: baseModelNameOrPath,
      revision: null,
      inference_mode: true,
    };
  }

  dispose(): void {
    this.prompt.dispose();
  }
}

export const promptTuning: MethodImplementation<PromptTuningSettings> = {
  id: 'prompt-tuning',
  parseSettings: (raw) => {
    const settings = validate(PromptTuningSettingsSchema, raw ?? {}, 'Prompt-tuning settings');
    if (settings.init === 'text' && settings.initText.trim() === '') {
      throw new WorkbenchError(
        'invalid_input',
        'promptTuning.initText is empty: init "text" starts the prompt from a text\'s token embeddings; give one, or choose init "random".',
        {
          issues: [{ path: 'promptTuning.initText', message: 'required when init is text' }],
        },
      );
    }
    return settings;
  },
  create: (model, settings, seed) => new PromptTuningModel(model, settings, seed),
  capabilities: { peftForm: () => 'native', mergeable: false, batcher: () => ({ kind: 'shuffled' }), hooks: ['fit'] },
};
