// Houlsby adapters (Houlsby et al. 2019, "Parameter-Efficient Transfer Learning for NLP", arXiv:1902.00751;
// METHODS.md section 6): after the attention block's output projection and after the MLP's second layer
// of every transformer layer, before the residual addition, the sublayer output h becomes
//   h + up(g(down(h))),   down: d -> m, up: m -> d, g the nonlinearity (GELU, tanh approximation),
// with `up` initialised to zero so the adapted model starts exactly as the base model (the paper's
// near-identity initialisation, made exact). The paper also trains the LayerNorms; here only the
// adapters train, so the parameter count is the adapters' alone: 2 m d + m + d each.
// PEFT has no Houlsby type: the export holds the native tensors (torch nn.Linear layout) and the sidecar,
// and no adapter_config.json.
import { HoulsbySettingsSchema, type HoulsbySettings } from '../../src-shared/methods.ts';
import { validate, WorkbenchError } from '../../src-shared/errors.ts';
import { geluNew } from '../models/gpt2.ts';
import { matMul } from '../models/ops.ts';
import type { CausalLM, LinearModule } from '../models/types.ts';
import { deriveSeed, mulberry32 } from '../rng.ts';
import { tf } from '../tf.ts';
import { keyPrefix } from './lora.ts';
import type { AdapterModel, MethodImplementation } from './types.ts';

/** The sublayer outputs an adapter follows: attention output projection and MLP output, GPT-2 and Llama. */
const SITES = /(^|\.)(attn\.c_proj|mlp\.c_proj|self_attn\.o_proj|mlp\.down_proj)$/;

interface HoulsbyAdapter {
  module: LinearModule;
  down: tf.Variable<tf.Rank.R2>; // [m, d]
  downBias: tf.Variable<tf.Rank.R1>; // [m]
  up: tf.Variable<tf.Rank.R2>; // [d, m]
  upBias: tf.Variable<tf.Rank.R1>; // [d]
}

export class HoulsbyModel implements AdapterModel {
  readonly method = 'houlsby';
  readonly targets: LinearModule[];
  readonly extraStateKeys: ReadonlySet<string>;
  private readonly adapters = new Map<string, HoulsbyAdapter>();

  constructor(
    model: CausalLM,
    readonly settings: HoulsbySettings,
    seed: number,
  ) {
    const modules = model.linearModules();
    this.targets = modules.filter((m) => SITES.test(m.path));
    if (this.targets.length === 0) {
      throw new WorkbenchError(
        'invalid_input',
        `Houlsby adapters follow the attention output and MLP output projections, and this model has none by their usual names (${modules[0]?.path ?? 'no linear layers'}).`,
      );
    }
    const m = settings.bottleneckSize;
    for (const module of this.targets) {
      const d = module.outFeatures;
      // down as nn.Linear's default (kaiming-uniform a = sqrt 5: bound 1 / sqrt(d)); up zero.
      const random = mulberry32(deriveSeed(seed, 0x4015b, modules.indexOf(module)));
      const bound = 1 / Math.sqrt(d);
      const down = Float32Array.from({ length: m * d }, () => (2 * random.next() - 1) * bound);
      this.adapters.set(module.path, {
        module,
        down: tf.tidy(() => tf.variable(tf.tensor2d(down, [m, d]), true)),
        downBias: tf.variable(tf.zeros<tf.Rank.R1>([m]), true),
        up: tf.variable(tf.zeros<tf.Rank.R2>([d, m]), true),
        upBias: tf.variable(tf.zeros<tf.Rank.R1>([d]), true),
      });
    }
    this.extraStateKeys = new Set(this.stateVariables().keys());
  }

  delta(): null {
    return null;
  }

  outputDelta(path: string, y: tf.Tensor2D): tf.Tensor2D | null {
    const a = this.adapters.get(path);
    if (!a) return null;
    const h = geluNew(tf.add(matMul(y, a.down as tf.Tensor2D, false, true), a.downBias)) as tf.Tensor2D;
    return tf.add(matMul(h, a.up as tf.Tensor2D, false, true), a.upBias) as tf.Tensor2D;
  }

  private stateVariables(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [path, a] of this.adapters) {
      const p = `${keyPrefix(path)}.houlsby`;
      out.set(`${p}.down_proj.weight`, a.down as tf.Variable);
      out.set(`${p}.down_proj.bias`, a.downBias as tf.Variable);
      out.set(`${p}.up_proj.weight`, a.up as tf.Variable);
      out.set(`${p}.up_proj.bias`, a.upBias as tf.Variable);
    }
    return out;
  }

  trainable(): { name: string; group: string; variable: tf.Variable }[] {
    return [...this.stateVariables()].map(([name, variable]) => ({ name, group: 'houlsby', variable }));
  }

  trainableParamCount(): number {
    let n = 0;
    for (const v of this.stateVariables().values()) n += v.size;
    return n;
  }

  stateDict(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    for (const [key, v] of this.stateVariables()) out.set(key, tf.clone(v));
    return out;
  }

  loadStateDict(tensors: Map<string, { shape: number[]; data: Float32Array }>): void {
    const expected = this.stateVariables();
    const missing = [...expected.keys()].filter((k) => !tensors.has(k));
    const unexpected = [...tensors.keys()].filter((k) => !expected.has(k));
    if (missing.length || unexpected.length) {
      throw new WorkbenchError(
        'format_invalid',
        `The adapter does not match this Houlsby configuration (bottleneck size, model): ${[missing.length ? `missing ${missing.slice(0, 4).join(', ')}` : '', unexpected.length ? `unexpected ${unexpected.slice(0, 4).join(', ')}` : ''].filter(Boolean).join('; ')}.`,
        { missing, unexpected },
      );
    }
    for (const [key, v] of expected) {
      const t = tensors.get(key)!;
      if (t.shape.length !== v.rank || t.shape.some((d, i) => d !== v.shape[i])) {
        throw new WorkbenchError('format_invalid', `Adapter tensor ${key} has shape [${t.shape}], expected [${v.shape}].`, { tensor: key });
      }
    }
    for (const [key, v] of expected) {
      const t = tensors.get(key)!;
      tf.tidy(() => v.assign(tf.tensor(t.data, t.shape, 'float32')));
    }
  }

  /** PEFT has no adapter type for this method (its peftForm is 'none'): never called. */
  peftConfig(): Record<string, unknown> {
    return {};
  }

  dispose(): void {
    for (const v of this.stateVariables().values()) v.dispose();
    this.adapters.clear();
  }
}

export const houlsby: MethodImplementation<HoulsbySettings> = {
  id: 'houlsby',
  parseSettings: (raw) => validate(HoulsbySettingsSchema, raw ?? {}, 'Houlsby settings'),
  create: (model, settings, seed) => new HoulsbyModel(model, settings, seed),
  capabilities: { peftForm: () => 'none', mergeable: false, batcher: () => ({ kind: 'shuffled' }), hooks: [] },
};
