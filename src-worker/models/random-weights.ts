// Seeded random weights for tests and benchmarks, the same on every backend (tf.random* is not).
import { floatToBf16, floatToHalf, halfStorable, widenBits, type HalfBits, type HalfFormat } from '../formats/half-bits.ts';

export interface WeightData {
  shape: number[];
  /** The values as f32 (for a 16-bit tensor, widened on each read). */
  data: Float32Array;
  /** F16 and BF16 checkpoints: the values as stored, which a model may hold as they are (kernels/half-weights.ts). */
  half?: HalfBits;
}

/** f32 values rounded to 16 bits (nearest even), as a checkpoint saved in that dtype holds them. */
export function roundedToHalf(shape: number[], data: Float32Array, format: HalfFormat): WeightData {
  const convert = format === 'F16' ? floatToHalf : floatToBf16;
  const bits = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) bits[i] = convert(data[i]!);
  const half: HalfBits = { format, bits };
  return {
    shape,
    half,
    get data() {
      const out = new Float32Array(bits.length);
      widenBits(bits, format, out);
      return out;
    },
  };
}

/**
 * N(0, std) for every tensor, plus 1 for the normalisation gains `isNormGain` picks (so norms start near
 * identity). With `format`, the block matrices a model may hold 16-bit (half-bits.ts halfStorable) come
 * rounded to it, one tensor at a time (a 0.5B model's f32 copy never exists whole), like a bf16 checkpoint.
 */
export function randomWeights(
  shapes: Map<string, number[]>,
  seed: number,
  std: number,
  isNormGain: (key: string) => boolean,
  format: HalfFormat | null = null,
): Map<string, WeightData> {
  let state = seed >>> 0 || 1;
  const uniform = () => {
    // xorshift32: fast and seedable; +0.5 keeps log(uniform()) finite.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return ((state >>> 0) + 0.5) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
  const weights = new Map<string, WeightData>();
  for (const [key, shape] of shapes) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const offset = isNormGain(key) ? 1 : 0;
    for (let i = 0; i < data.length; i++) data[i] = offset + std * normal();
    weights.set(key, format && halfStorable(key, shape) ? roundedToHalf(shape, data, format) : { shape, data });
  }
  return weights;
}
