// The baselines that train the base model's own parameters (METHODS.md section 6):
// - full fine-tuning: every weight (optionally all but the embeddings);
// - BitFit (Ben Zaken, Ravfogel, Goldberg 2022, arXiv:2106.10199): only the bias terms, those of the
//   linear layers and of the LayerNorms.
// Each trained parameter is a tf.Variable copy of the base tensor that the model uses in its place
// (the `parameter` hook); the loaded base model itself is never changed, so evaluation and generation
// without the adapter still see the original weights. PEFT has no adapter type for either: the export
// holds the trained tensors under the checkpoint's own keys and layout, with no adapter_config.json.
import { BitFitSettingsSchema, FullSettingsSchema, type BitFitSettings, type FullSettings, type MethodId } from '../../src-shared/methods.ts';
import { validate, WorkbenchError } from '../../src-shared/errors.ts';
import type { CausalLM, LinearModule, NamedParameter } from '../models/types.ts';
import { tf } from '../tf.ts';
import type { AdapterModel, MethodImplementation } from './types.ts';

/** Full fine-tuning is refused above this many base parameters: weights, trained copy, gradients and two AdamW moments take ~5x the model. */
export const FULL_FINE_TUNING_MAX_PARAMS = 130_000_000;

interface Trained {
  key: string;
  variable: tf.Variable;
  /** The forward keeps the transpose of the checkpoint's tensor (Llama's linear weights). */
  transposed: boolean;
}

export class BaseParameterModel implements AdapterModel {
  readonly trainsBaseParameters = true;
  readonly targets: LinearModule[] = [];
  readonly extraStateKeys: ReadonlySet<string>;
  private readonly trained = new Map<string, Trained>();

  constructor(
    readonly method: MethodId,
    /** Optimizer parameter group of every trained tensor. */
    private readonly group: string,
    parameters: readonly NamedParameter[],
  ) {
    for (const p of parameters) {
      this.trained.set(p.key, { key: p.key, transposed: p.transposed, variable: tf.variable(p.tensor, true) });
    }
    this.extraStateKeys = new Set(this.trained.keys());
  }

  delta(): null {
    return null;
  }

  parameter(key: string): tf.Tensor | null {
    return this.trained.get(key)?.variable ?? null;
  }

  trainable(): { name: string; group: string; variable: tf.Variable }[] {
    return [...this.trained.values()].map((t) => ({ name: t.key, group: this.group, variable: t.variable }));
  }

  trainableParamCount(): number {
    let n = 0;
    for (const t of this.trained.values()) n += t.variable.size;
    return n;
  }

  /** The trained tensors under the checkpoint's keys, in the checkpoint's layout (Llama's linear weights transposed back to [out, in]). */
  stateDict(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const t of this.trained.values()) out.set(t.key, t.transposed ? tf.transpose(t.variable) : tf.clone(t.variable));
    return out;
  }

  loadStateDict(tensors: Map<string, { shape: number[]; data: Float32Array }>): void {
    const missing = [...this.trained.keys()].filter((k) => !tensors.has(k));
    const unexpected = [...tensors.keys()].filter((k) => !this.trained.has(k));
    if (missing.length || unexpected.length) {
      throw new WorkbenchError(
        'format_invalid',
        `The saved tensors do not match this ${this.method} configuration: ${[missing.length ? `missing ${missing.slice(0, 4).join(', ')}` : '', unexpected.length ? `unexpected ${unexpected.slice(0, 4).join(', ')}` : ''].filter(Boolean).join('; ')}.`,
        { missing, unexpected },
      );
    }
    for (const t of this.trained.values()) {
      const saved = tensors.get(t.key)!;
      const expected = t.transposed ? [...t.variable.shape].reverse() : t.variable.shape;
      if (saved.shape.length !== expected.length || saved.shape.some((d, i) => d !== expected[i])) {
        throw new WorkbenchError('format_invalid', `Tensor ${t.key} has shape [${saved.shape}], expected [${expected}].`, { tensor: t.key });
      }
    }
    for (const t of this.trained.values()) {
      const saved = tensors.get(t.key)!;
      tf.tidy(() => {
        const value = tf.tensor(saved.data, saved.shape, 'float32');
        t.variable.assign(t.transposed ? tf.transpose(value) : value);
      });
    }
  }

  /** PEFT has no adapter type for this method (its peftForm is 'none'): never called. */
  peftConfig(): Record<string, unknown> {
    return {};
  }

  dispose(): void {
    for (const t of this.trained.values()) t.variable.dispose();
    this.trained.clear();
  }
}

function parametersOf(model: CausalLM, method: string): NamedParameter[] {
  const parameters = model.namedParameters?.();
  if (!parameters) throw new WorkbenchError('invalid_input', `${method} needs a model family that exposes its weights (GPT-2 or Llama).`);
  return parameters;
}

const EMBEDDING_KEYS = new Set(['transformer.wte.weight', 'transformer.wpe.weight', 'model.embed_tokens.weight']);

export function createFullFineTuning(model: CausalLM, settings: FullSettings): BaseParameterModel {
  const total = model.parameterCount();
  if (total > FULL_FINE_TUNING_MAX_PARAMS) {
    throw new WorkbenchError(
      'invalid_input',
      `Full fine-tuning is offered for models up to ${FULL_FINE_TUNING_MAX_PARAMS / 1e6}M parameters; this one has ${(total / 1e6).toFixed(0)}M. It would need about five times the model's memory (weights, their trained copy, gradients and two AdamW moments). Use LoRA or QLoRA for a model this size.`,
      { parameters: total, limit: FULL_FINE_TUNING_MAX_PARAMS },
    );
  }
  const parameters = parametersOf(model, 'Full fine-tuning').filter((p) => settings.trainEmbeddings || !EMBEDDING_KEYS.has(p.key));
  return new BaseParameterModel('full', 'weights', parameters);
}

export function createBitFit(model: CausalLM, settings: BitFitSettings): BaseParameterModel {
  const linear = new Set(model.linearModules().map((m) => m.path));
  const biases = parametersOf(model, 'BitFit').filter(
    (p) => p.key.endsWith('.bias') && (settings.includeNormBiases || linear.has(p.key.slice(0, -'.bias'.length))),
  );
  if (biases.length === 0) {
    throw new WorkbenchError(
      'invalid_input',
      `BitFit trains bias terms, and this ${model.config.modelType} model has none${settings.includeNormBiases ? '' : ' in its linear layers'} (Llama-family models use RMSNorm and bias-free linear layers). Choose LoRA for it, or a model with biases such as GPT-2 or Qwen2.`,
      { family: model.config.family, modelType: model.config.modelType },
    );
  }
  return new BaseParameterModel('bitfit', 'bias', biases);
}

export const full: MethodImplementation<FullSettings> = {
  id: 'full',
  parseSettings: (raw) => validate(FullSettingsSchema, raw ?? {}, 'Full fine-tuning settings'),
  create: (model, settings) => createFullFineTuning(model, settings),
  capabilities: { peftForm: () => 'none', mergeable: false, batcher: () => ({ kind: 'shuffled' }), hooks: [] },
};

export const bitfit: MethodImplementation<BitFitSettings> = {
  id: 'bitfit',
  parseSettings: (raw) => validate(BitFitSettingsSchema, raw ?? {}, 'BitFit settings'),
  create: (model, settings) => createBitFit(model, settings),
  capabilities: { peftForm: () => 'none', mergeable: false, batcher: () => ({ kind: 'shuffled' }), hooks: [] },
};
