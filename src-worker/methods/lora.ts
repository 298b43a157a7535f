// LoRA (Hu et al. 2021, arXiv:2106.09685) as PEFT implements it (peft/tuners/lora/layer.py):
// for a frozen linear y = x W0^T + b, add  s * dropout(x) A^T B^T  with A [r, in] kaiming-uniform,
// B [out, r] zero (so training starts at the base model), s = alpha / r, or alpha / sqrt(r) with
// rsLoRA (Kalajdzievski 2023). Tensors are stored under PEFT's names so exports load in PEFT.
import { LoraSettingsSchema, type LoraSettings } from '../../src-shared/methods.ts';
import { validate, WorkbenchError } from '../../src-shared/errors.ts';
import type { CausalLM, LinearModule } from '../models/types.ts';
import { matMul } from '../models/ops.ts';
import { deriveSeed, mulberry32 } from '../rng.ts';
import { tf } from '../tf.ts';
import type { AdapterModel, MethodImplementation } from './types.ts';

export interface TargetSelection {
  targets: LinearModule[];
  /** target_modules for adapter_config.json: names when they select exactly `targets` in PEFT, else a regex. */
  peftTargetModules: string[] | string;
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * Picks the modules `patterns` name. A pattern is a module name matched as PEFT does (the full path
 * or a dot-separated suffix of it: 'c_attn', 'attn.c_proj'), or /a regex/ searched in the full path.
 */
export function selectTargets(modules: LinearModule[], patterns: string[]): TargetSelection {
  const matchers = patterns.map((pattern) => {
    const regex = /^\/(.+)\/$/.exec(pattern);
    if (!regex) return { pattern, isRegex: false, test: (p: string) => p === pattern || p.endsWith(`.${pattern}`) };
    let re: RegExp;
    try {
      re = new RegExp(regex[1]!);
    } catch (error) {
      throw new WorkbenchError('invalid_input', `lora.targetModules: ${pattern} is not a valid regular expression (${(error as Error).message}).`, {
        issues: [{ path: 'lora.targetModules', message: 'invalid regular expression' }],
      });
    }
    return { pattern, isRegex: true, test: (p: string) => re.test(p) };
  });
  const targets = modules.filter((m) => matchers.some((matcher) => matcher.test(m.path)));
  if (!targets.length) {
    const names = [...new Set(modules.map((m) => m.path.split('.').pop()!))];
    throw new WorkbenchError(
      'invalid_input',
      `lora.targetModules ${JSON.stringify(patterns)} match no linear layer of this model. Available module names: ${names.join(', ')} (or /regex/ over full paths such as ${modules[0]?.path ?? 'none'}).`,
      { issues: [{ path: 'lora.targetModules', message: 'no module matched' }], available: modules.map((m) => m.path) },
    );
  }
  // PEFT matches a list of names by suffix and re.fullmatch-es a string. Prefer the plainest list
  // that selects exactly these modules in PEFT: their own names (c_attn), else the name patterns
  // as given (attn.c_proj); otherwise an exact regex.
  const chosen = new Set(targets.map((m) => m.path));
  const selectsExactly = (names: string[]) => {
    const hit = modules.filter((m) => names.some((n) => m.path === n || m.path.endsWith(`.${n}`)));
    return hit.length === chosen.size && hit.every((m) => chosen.has(m.path));
  };
  const ownNames = [...new Set(targets.map((m) => m.path.split('.').pop()!))].sort();
  const used = matchers.filter((matcher) => modules.some((m) => matcher.test(m.path)));
  const givenNames = used.every((m) => !m.isRegex) ? [...new Set(used.map((m) => m.pattern))].sort() : [];
  const peftTargetModules = selectsExactly(ownNames)
    ? ownNames
    : givenNames.length && selectsExactly(givenNames)
      ? givenNames
      : targets.map((m) => escapeRegex(m.path)).join('|');
  return { targets, peftTargetModules };
}

export interface LoraLayer {
  module: LinearModule;
  index: number;
  loraA: tf.Variable<tf.Rank.R2>; // [r, in]
  loraB: tf.Variable<tf.Rank.R2>; // [out, r]
  keyA: string;
  keyB: string;
}

export const keyPrefix = (path: string) => `base_model.model.${path}`;

export class LoraModel implements AdapterModel {
  readonly method: string = 'lora';
  readonly targets: LinearModule[];
  readonly scaling: number;
  protected readonly layers = new Map<string, LoraLayer>();
  private readonly peftTargetModules: string[] | string;
  protected readonly scale: tf.Scalar;
  private dropoutCalls = 0;

  constructor(
    model: CausalLM,
    readonly settings: LoraSettings,
    private readonly seed: number,
  ) {
    const modules = model.linearModules();
    const selection = selectTargets(modules, settings.targetModules);
    this.targets = selection.targets;
    this.peftTargetModules = selection.peftTargetModules;
    const { r, alpha, useRslora } = settings;
    this.scaling = useRslora ? alpha / Math.sqrt(r) : alpha / r;
    this.scale = tf.keep(tf.scalar(this.scaling));
    for (const module of this.targets) {
      const index = modules.findIndex((m) => m.path === module.path);
      // kaiming_uniform_(A, a=sqrt(5)): bound = sqrt(6 / ((1 + a^2) fan_in)) = 1 / sqrt(in).
      const bound = 1 / Math.sqrt(module.inFeatures);
      const random = mulberry32(deriveSeed(seed, index));
      const a = new Float32Array(r * module.inFeatures);
      for (let i = 0; i < a.length; i++) a[i] = (2 * random.next() - 1) * bound;
      this.layers.set(module.path, {
        module,
        index,
        // tidy frees the initial values; variables are never tidied.
        loraA: tf.tidy(() => tf.variable(tf.tensor2d(a, [r, module.inFeatures]), true)),
        loraB: tf.tidy(() => tf.variable(tf.zeros<tf.Rank.R2>([module.outFeatures, r]), true)),
        keyA: `${keyPrefix(module.path)}.lora_A.weight`,
        keyB: `${keyPrefix(module.path)}.lora_B.weight`,
      });
    }
  }

  randomState(): Record<string, number> {
    return { dropoutCalls: this.dropoutCalls };
  }

  restoreRandomState(state: Record<string, number>): void {
    this.dropoutCalls = state.dropoutCalls ?? 0;
  }

  /** Inverted dropout with a mask drawn from the run seed, so a run's sequence of masks is reproducible. */
  protected dropout(x: tf.Tensor2D, layer: LoraLayer): tf.Tensor2D {
    const p = this.settings.dropout;
    const random = mulberry32(deriveSeed(this.seed, 0x5bd1e995, layer.index, this.dropoutCalls++));
    const keep = 1 / (1 - p);
    const mask = new Float32Array(x.size);
    for (let i = 0; i < mask.length; i++) mask[i] = random.next() < p ? 0 : keep;
    return tf.mul(x, tf.tensor2d(mask, x.shape));
  }

  delta(path: string, x: tf.Tensor, training: boolean): tf.Tensor | null {
    const layer = this.layers.get(path);
    if (!layer) return null;
    return tf.tidy(() => {
      const inFeatures = layer.module.inFeatures;
      let x2 = (x.rank === 2 ? x : tf.reshape(x, [-1, inFeatures])) as tf.Tensor2D;
      if (training && this.settings.dropout > 0) x2 = this.dropout(x2, layer);
      // (x A^T) is [N, r]: scaling it is cheaper than scaling the [N, out] result.
      const h = tf.mul(matMul(x2, layer.loraA as tf.Tensor2D, false, true), this.scale);
      const y = matMul(h, layer.loraB as tf.Tensor2D, false, true);
      return x.rank === 2 ? y : tf.reshape(y, [...x.shape.slice(0, -1), layer.module.outFeatures]);
    });
  }

  trainable(): { name: string; group: string; variable: tf.Variable }[] {
    return [...this.layers.values()].flatMap((l) => [
      { name: l.keyA, group: 'lora_A', variable: l.loraA as tf.Variable },
      { name: l.keyB, group: 'lora_B', variable: l.loraB as tf.Variable },
    ]);
  }

  trainableParamCount(): number {
    return this.trainable().reduce((n, p) => n + p.variable.size, 0);
  }

  /** Every tensor the adapter saves, by its key: subclasses add their own to LoRA's A and B. */
  protected stateVariables(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const l of this.layers.values()) {
      out.set(l.keyA, l.loraA as tf.Variable);
      out.set(l.keyB, l.loraB as tf.Variable);
    }
    return out;
  }

  /** Fresh tensors (clones share storage until the variables change): the caller disposes them. */
  stateDict(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [key, variable] of this.stateVariables()) out.set(key, tf.clone(variable));
    return out;
  }

  loadStateDict(tensors: Map<string, { shape: number[]; data: Float32Array }>): void {
    const expected = this.stateVariables();
    const unexpected = [...tensors.keys()].filter((k) => !expected.has(k));
    const missing = [...expected.keys()].filter((k) => !tensors.has(k));
    if (unexpected.length || missing.length) {
      const parts = [];
      if (missing.length) parts.push(`missing ${missing.slice(0, 4).join(', ')}${missing.length > 4 ? ` and ${missing.length - 4} more` : ''}`);
      if (unexpected.length) parts.push(`unexpected ${unexpected.slice(0, 4).join(', ')}${unexpected.length > 4 ? ` and ${unexpected.length - 4} more` : ''}`);
      throw new WorkbenchError(
        'format_invalid',
        `The adapter does not match this ${this.method} configuration (r, target modules, method settings): ${parts.join('; ')}.`,
        { missing, unexpected },
      );
    }
    for (const [key, variable] of expected) {
      const t = tensors.get(key)!;
      if (t.shape.length !== variable.rank || t.shape.some((d, i) => d !== variable.shape[i])) {
        throw new WorkbenchError('format_invalid', `Adapter tensor ${key} has shape [${t.shape}], expected [${variable.shape}].`, { tensor: key });
      }
    }
    for (const [key, variable] of expected) {
      const t = tensors.get(key)!;
      tf.tidy(() => variable.assign(tf.tensor(t.data, t.shape, 'float32')));
    }
  }

  peftConfig(baseModelNameOrPath: string): Record<string, unknown> {
    return {
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: this.settings.r,
      lora_alpha: this.settings.alpha,
      lora_dropout: this.settings.dropout,
      target_modules: this.peftTargetModules,
      // True only when every target stores its weight [in, out] (GPT-2's Conv1D); Llama and BERT store nn.Linear's [out, in].
      fan_in_fan_out: this.targets.every((t) => t.fanInFanOut),
      bias: 'none',
      use_rslora: this.settings.useRslora,
      base_model_name_or_path: baseModelNameOrPath,
      inference_mode: true,
      modules_to_save: null,
      init_lora_weights: true,
      layers_to_transform: null,
      layers_pattern: null,
      rank_pattern: {},
      alpha_pattern: {},
      revision: null,
    };
  }

  dispose(): void {
    for (const l of this.layers.values()) tf.dispose([l.loraA, l.loraB]);
    this.layers.clear();
    this.scale.dispose();
  }
}

export const lora: MethodImplementation<LoraSettings> = {
  id: 'lora',
  parseSettings: (raw) => validate(LoraSettingsSchema, raw ?? {}, 'LoRA settings'),
  create: (model, settings, seed) => new LoraModel(model, settings, seed),
  capabilities: { peftForm: () => 'native', mergeable: true, batcher: () => ({ kind: 'shuffled' }), hooks: [] },
};
