// Seeded random weights for tests and benchmarks, the same on every backend (tf.random* is not).
export interface WeightData {
  shape: number[];
  data: Float32Array;
}

/** N(0, std) for every tensor, plus 1 for the normalisation gains `isNormGain` picks (so norms start near identity). */
export function randomWeights(shapes: Map<string, number[]>, seed: number, std: number, isNormGain: (key: string) => boolean): Map<string, WeightData> {
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
    weights.set(key, { shape, data });
  }
  return weights;
}
