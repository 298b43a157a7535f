// QLoRA (Dettmers et al. 2023, arXiv:2305.14314; METHODS.md section 6): the LoRA layer unchanged, over a
// frozen base whose adapted linear weights are held quantized (4-bit NF4 or int8, one absmax per block,
// quantize.ts) and dequantized per layer in every forward through the model's `parameter` hook, so the
// adapter learns against the weights the quantized model really has. The paper's paged optimizers and
// double quantization are not implemented. Training frees the float32 copies of the quantized weights
// (releaseFloatWeights), so the base really shrinks in the training worker; evaluation and generation,
// which also run the base model alone, keep them. The tensors are plain LoRA: the export is a plain PEFT LoRA (load
// the base quantized the same way in PEFT, e.g. BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")).
import { LoraSettingsSchema, QloraSettingsSchema, type LoraSettings, type QloraSettings } from '../../src-shared/methods.ts';
import { validate, WorkbenchError } from '../../src-shared/errors.ts';
import type { CausalLM } from '../models/types.ts';
import { tf } from '../tf.ts';
import { LoraModel } from './lora.ts';
import { dequantize, quantize, quantizedBytes, type QuantizedTensor } from './quantize.ts';
import type { MethodImplementation } from './types.ts';

export interface QloraConfig {
  lora: LoraSettings;
  qlora: QloraSettings;
}

/**
 * The frozen base's quantized weights, made once per model and format and shared by every QLoRA adapter
 * created on that model (export verification creates several). Quantizing reads the weights synchronously,
 * which webgpu can do only before their first upload; the first adapter is created right after the model
 * is loaded, before any forward, so later ones must not read again.
 */
const quantizedWeights = new WeakMap<CausalLM, Map<string, QuantizedTensor>>();

function quantizedOnce(model: CausalLM, key: string, weight: tf.Tensor, settings: QloraSettings): QuantizedTensor {
  let byKey = quantizedWeights.get(model);
  if (!byKey) quantizedWeights.set(model, (byKey = new Map()));
  const cacheKey = `${settings.format}/${settings.blockSize}/${key}`;
  let q = byKey.get(cacheKey);
  if (!q) {
    if (weight.isDisposed) throw new WorkbenchError('internal', `QLoRA: the float32 weight ${key} was released before it was quantized.`);
    byKey.set(cacheKey, (q = quantize(weight.dataSync() as Float32Array, [...weight.shape], settings.format, settings.blockSize)));
  }
  return q;
}

export class QloraModel extends LoraModel {
  override readonly method: string = 'qlora';
  /** The quantized weight of each adapted module, by parameter key (`<module path>.weight`, the forward's layout). */
  readonly quantized = new Map<string, QuantizedTensor>();

  constructor(
    private readonly model: CausalLM,
    readonly qlora: QloraSettings,
    lora: LoraSettings,
    seed: number,
  ) {
    super(model, lora, seed);
    const parameters = model.namedParameters?.();
    if (!parameters) throw new WorkbenchError('invalid_input', 'QLoRA needs a model family that exposes its weights (GPT-2 or Llama).');
    const byKey = new Map(parameters.map((p) => [p.key, p]));
    for (const module of this.targets) {
      const key = `${module.path}.weight`;
      const p = byKey.get(key);
      if (!p) throw new WorkbenchError('internal', `QLoRA: the model has no weight ${key} for the adapted module ${module.path}.`);
      this.quantized.set(key, quantizedOnce(model, key, p.tensor, qlora));
    }
  }

  /** The dequantized weight of an adapted module: a plain tensor, so it stays frozen; the forward's tidy frees it. */
  parameter(key: string): tf.Tensor | null {
    const q = this.quantized.get(key);
    return q ? tf.tensor(dequantize(q), q.shape, 'float32') : null;
  }

  /**
   * Frees the model's float32 copies of the quantized weights: from then on the model runs only through
   * this adapter's `parameter` hook, so only the caller that never runs the base model alone (training) calls it.
   */
  releaseFloatWeights(): void {
    for (const p of this.model.namedParameters?.() ?? []) if (this.quantized.has(p.key)) p.tensor.dispose();
  }

  /** Bytes of the quantized weights (codes + scales) against the same weights in float32. */
  memory(): { quantizedBytes: number; float32Bytes: number; factor: number } {
    let quantizedTotal = 0;
    let float32Total = 0;
    for (const q of this.quantized.values()) {
      quantizedTotal += quantizedBytes(q);
      float32Total += 4 * q.size;
    }
    return { quantizedBytes: quantizedTotal, float32Bytes: float32Total, factor: float32Total / quantizedTotal };
  }

  startupNotes(): string[] {
    const m = this.memory();
    const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(2);
    return [
      `QLoRA: ${this.quantized.size} adapted weights held in ${this.qlora.format} (block size ${this.qlora.blockSize}): ${mb(m.quantizedBytes)} MB with their scales instead of ${mb(m.float32Bytes)} MB in float32, ${m.factor.toFixed(2)}x smaller.`,
    ];
  }
}

export const qlora: MethodImplementation<QloraConfig> = {
  id: 'qlora',
  parseSettings: (raw) => {
    const sections = (raw ?? {}) as { lora?: unknown; qlora?: unknown };
    return {
      lora: validate(LoraSettingsSchema, sections.lora ?? {}, 'LoRA settings'),
      qlora: validate(QloraSettingsSchema, sections.qlora ?? {}, 'QLoRA settings'),
    };
  },
  create: (model, settings, seed) => new QloraModel(model, settings.qlora, settings.lora, seed),
  capabilities: { peftForm: () => 'native', mergeable: true, batcher: () => ({ kind: 'shuffled' }), hooks: ['startupNotes', 'releaseFloatWeights'] },
};
