// 16-bit floats (IEEE f16 and bfloat16) as safetensors stores them: widening to f32, transposing
// the bits of a matrix, and which checkpoint tensors a model may keep 16-bit (kernels/half-weights.ts).
// No tfjs here: the safetensors reader and the model-folder inspection use it too.

export type HalfFormat = 'F16' | 'BF16';

/** A checkpoint tensor's 16-bit bits, little-endian order as safetensors stores them. */
export interface HalfBits {
  format: HalfFormat;
  bits: Uint16Array;
}

// f16 -> f32 through a 64K-entry table: one lookup per element.
let f16Table: Float32Array | null = null;
export function halfToFloatTable(): Float32Array {
  if (f16Table) return f16Table;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) table[h] = sign * frac * 2 ** -24;
    else if (exp === 31) table[h] = frac ? NaN : sign * Infinity;
    else table[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return (f16Table = table);
}

/** Writes bits[i] widened to f32 into out[i]: a table lookup for f16; for bf16 the bits are the top half of the f32. */
export function widenBits(bits: Uint16Array, format: HalfFormat, out: Float32Array): void {
  const n = Math.min(bits.length, out.length);
  if (format === 'F16') {
    const table = halfToFloatTable();
    for (let i = 0; i < n; i++) out[i] = table[bits[i]!]!;
  } else {
    const words = new Uint32Array(out.buffer, out.byteOffset, n);
    for (let i = 0; i < n; i++) words[i] = bits[i]! << 16;
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> float16 bits, rounding to nearest even like torch's .half(). */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const midpoint = 1 << (shift - 1);
    return sign | (half + (rest > midpoint || (rest === midpoint && half & 1) ? 1 : 0));
  }
  const rest = mant & 0x1fff;
  let bits = sign | (e << 10) | (mant >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && bits & 1)) bits++; // a carry into the exponent is still correct
  return bits;
}

/** float32 -> bfloat16 bits (the top half of the float32), rounding to nearest even. */
export function floatToBf16(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** bits of a row-major [rows, cols] matrix, transposed to [cols, rows] (Llama keeps nn.Linear's W as W^T). */
export function transposeBits(bits: Uint16Array, rows: number, cols: number): Uint16Array {
  const out = new Uint16Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = bits[r * cols + c]!;
  return out;
}

/**
 * Which checkpoint tensors may be held 16-bit: the matrices of the transformer blocks (attention and
 * MLP). Not the embeddings or the LM head (see the header), not the 1-D norms and biases (small, and
 * BitFit trains biases). The memory plan counts the same tensors from the safetensors headers.
 */
export function halfStorable(key: string, shape: readonly number[]): boolean {
  return shape.length === 2 && !/(^|\.)(wte|wpe|embed_tokens|lm_head)\.weight$|(^|\.)embeddings\./.test(key);
}
