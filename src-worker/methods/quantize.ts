// Blockwise absmax quantization of frozen base weights, as QLoRA (Dettmers et al. 2023, arXiv:2305.14314)
// and bitsandbytes store them: the flattened tensor is cut into blocks of `blockSize`; each block keeps
// its absmax as a float32 scale and every weight as a code of w / absmax.
// - int8: code = round(127 w / absmax) in [-127, 127]; |w - dequant(w)| <= absmax / 127 / 2.
// - nf4:  code = index of the nearest of the 16 NormalFloat levels (the paper's Appendix E, as
//         bitsandbytes' NF4 table), two codes per byte; |w - dequant(w)| <= absmax * (largest gap between
//         adjacent levels) / 2. The paper's double quantization of the scales is not done: the scales stay float32.
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { quantizationFormats } from '../../src-shared/methods.ts';

export type QuantizationFormat = (typeof quantizationFormats)[number];

/** NF4: quantiles of N(0, 1) normalised to [-1, 1], with an exact zero (bitsandbytes functional.py). */
export const NF4_LEVELS: readonly number[] = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];

const NF4_TABLE = Float32Array.from(NF4_LEVELS);
/** Midpoints between adjacent levels: a value's code is the number of midpoints below it. */
const NF4_MIDPOINTS = NF4_LEVELS.slice(1).map((level, i) => (level + NF4_LEVELS[i]!) / 2);

/** The largest |w - dequant(w)| per unit of the block's absmax. */
export function errorBoundPerAbsmax(format: QuantizationFormat): number {
  if (format === 'int8') return 1 / 127 / 2;
  let gap = 0;
  for (let i = 1; i < NF4_LEVELS.length; i++) gap = Math.max(gap, NF4_LEVELS[i]! - NF4_LEVELS[i - 1]!);
  return gap / 2;
}

export interface QuantizedTensor {
  format: QuantizationFormat;
  shape: number[];
  size: number;
  blockSize: number;
  /** int8: one signed code per weight; nf4: two 4-bit codes per byte (low nibble first). */
  codes: Int8Array | Uint8Array;
  /** One absmax per block. */
  scales: Float32Array;
}

/** Bytes the quantized tensor occupies: its codes plus its scales. */
export function quantizedBytes(q: QuantizedTensor): number {
  return q.codes.byteLength + q.scales.byteLength;
}

export function quantize(data: Float32Array, shape: number[], format: QuantizationFormat, blockSize: number): QuantizedTensor {
  if (!Number.isInteger(blockSize) || blockSize < 1)
    throw new WorkbenchError('invalid_input', `qlora.blockSize must be a positive whole number, not ${blockSize}.`);
  const size = data.length;
  const blocks = Math.ceil(size / blockSize);
  const scales = new Float32Array(blocks);
  const codes = format === 'int8' ? new Int8Array(size) : new Uint8Array(Math.ceil(size / 2));
  for (let b = 0; b < blocks; b++) {
    const start = b * blockSize;
    const end = Math.min(size, start + blockSize);
    let absmax = 0;
    for (let i = start; i < end; i++) absmax = Math.max(absmax, Math.abs(data[i]!));
    scales[b] = absmax;
    // An all-zero block keeps code 0 (int8) or the exact-zero level (nf4) and scale 0.
    const inv = absmax > 0 ? 1 / absmax : 0;
    for (let i = start; i < end; i++) {
      const x = data[i]! * inv;
      if (format === 'int8') {
        codes[i] = Math.max(-127, Math.min(127, Math.round(x * 127)));
      } else {
        let code = 0;
        while (code < NF4_MIDPOINTS.length && x > NF4_MIDPOINTS[code]!) code++;
        if (absmax === 0) code = 7;
        codes[i >> 1]! |= i & 1 ? code << 4 : code;
      }
    }
  }
  return { format, shape: [...shape], size, blockSize, codes, scales };
}

export function dequantize(q: QuantizedTensor): Float32Array {
  const out = new Float32Array(q.size);
  const { blockSize, scales } = q;
  if (q.format === 'int8') {
    const codes = q.codes as Int8Array;
    for (let i = 0; i < q.size; i++) out[i] = (codes[i]! * scales[Math.floor(i / blockSize)]!) / 127;
  } else {
    const codes = q.codes as Uint8Array;
    for (let i = 0; i < q.size; i++) {
      const byte = codes[i >> 1]!;
      out[i] = NF4_TABLE[i & 1 ? byte >> 4 : byte & 15]! * scales[Math.floor(i / blockSize)]!;
    }
  }
  return out;
}
