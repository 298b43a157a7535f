// Frozen base weights held 16-bit (f16 or bf16, as the checkpoint stores them) and widened to f32 per
// use. tfjs's cpu and wasm backends have no 16-bit dtype, so the bits are packed two per element of an
// int32 tensor (half the bytes of the f32 weight), and the WidenHalf kernel registered here turns them
// into an f32 tensor just before the product that needs it: a temporary, freed with the forward's tidy
// or, when the tape saved it for the backward pass, once that pass is done (with blocks recomputed,
// kernels/recompute.ts, one block's weights at a time). Only frozen weights are held so: trained
// tensors (LoRA, BitFit's biases, full fine-tuning's variables) stay f32, and so do the embedding and
// the LM head, which every chunk of the chunked head reads whole (kernels/head-cross-entropy.ts).
// Backends without the kernel (webgpu, tensorflow) get the weights widened at load, as before.
import { tf } from '../tf.ts';

import { widenBits, type HalfFormat } from '../formats/half-bits.ts';
import type { NamedParameter } from '../models/types.ts';

const KERNEL = 'WidenHalf';

interface WidenAttrs {
  format: HalfFormat;
  shape: number[];
}

type CpuBackend = tf.KernelBackend & {
  data: { get(id: tf.DataId): { values: tf.TypedArray } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: tf.TypedArray): tf.TensorInfo;
};
type WasmBackend = tf.KernelBackend & {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): tf.TypedArray;
};

const count = (shape: number[]) => shape.reduce((p, d) => p * d, 1);
const bitsOf = (packed: tf.TypedArray, n: number) => new Uint16Array(packed.buffer, packed.byteOffset, n);

function widenCpu({ inputs: { x }, attrs, backend }: { inputs: { x: tf.TensorInfo }; attrs: WidenAttrs; backend: CpuBackend }): tf.TensorInfo {
  const out = new Float32Array(count(attrs.shape));
  widenBits(bitsOf(backend.data.get(x.dataId).values, out.length), attrs.format, out);
  return backend.makeTensorInfo(attrs.shape, 'float32', out);
}

function widenWasm({ inputs: { x }, attrs, backend }: { inputs: { x: tf.TensorInfo }; attrs: WidenAttrs; backend: WasmBackend }): tf.TensorInfo {
  const out = backend.makeOutput(attrs.shape, 'float32');
  // Views taken after the output's allocation, which may grow the heap and detach older ones.
  const outValues = backend.typedArrayFromHeap(out) as Float32Array;
  widenBits(bitsOf(backend.typedArrayFromHeap(x), outValues.length), attrs.format, outValues);
  return out;
}

for (const [backendName, kernelFunc] of [
  ['cpu', widenCpu],
  ['wasm', widenWasm],
] as const) {
  if (!tf.getKernel(KERNEL, backendName)) tf.registerKernel({ kernelName: KERNEL, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc });
}

/** Whether the active backend widens 16-bit weights per use (otherwise they are widened at load). */
export function halfStorageAvailable(): boolean {
  return tf.getKernel(KERNEL, tf.getBackend()) !== undefined;
}

/** A frozen [rows, cols] weight held as 16-bit bits (two per int32 element), widened per use. */
export class HalfWeight {
  readonly rank = 2;
  readonly size: number;
  private readonly packed: tf.Tensor1D;
  /** namedParameters' widened copy for the methods that read base weights (see widenedKept). */
  private kept: tf.Tensor2D | null = null;

  constructor(
    readonly shape: [number, number],
    readonly format: HalfFormat,
    bits: Uint16Array,
  ) {
    this.size = shape[0] * shape[1];
    if (bits.length !== this.size) throw new Error(`HalfWeight: ${bits.length} values for shape [${shape}]`);
    // A copy (never a view of the file's buffer, which the cpu backend would keep alive), padded by
    // one value when the count is odd: the int32 view needs whole pairs.
    const even = new Uint16Array(bits.length + (bits.length % 2));
    even.set(bits);
    this.packed = tf.keep(tf.tensor1d(new Int32Array(even.buffer), 'int32'));
  }

  get isDisposed(): boolean {
    return this.packed.isDisposed;
  }

  /** The weight as f32: a new tensor, owned by the caller's tidy. */
  widen(): tf.Tensor2D {
    return tf.engine().runKernel(KERNEL, { x: this.packed }, { format: this.format, shape: this.shape } as unknown as tf.NamedAttrMap) as tf.Tensor2D;
  }

  /**
   * The weight as f32, kept with this weight until it is disposed: for the methods that read base
   * weights as tensors (full fine-tuning copies them into variables, QLoRA quantizes them). Those
   * runs hold the f32 copy as well; adapter methods never ask for it.
   */
  widenedKept(): tf.Tensor2D {
    if (!this.kept || this.kept.isDisposed) this.kept = tf.keep(this.widen());
    return this.kept;
  }

  dispose(): void {
    this.packed.dispose();
    if (this.kept && !this.kept.isDisposed) this.kept.dispose();
  }
}

/** A base weight as a model holds it: f32, or 16-bit widened per use. */
export type StoredWeight = tf.Tensor2D | HalfWeight;

/** The f32 weight a product uses: the stored tensor itself, or a fresh widened temporary. */
export function asFloat(weight: StoredWeight): tf.Tensor2D {
  return weight instanceof HalfWeight ? weight.widen() : weight;
}

/** A base parameter for namedParameters(): a 16-bit weight is handed widened (widenedKept), and only when a method reads it. */
export function namedParameter(key: string, stored: tf.Tensor | HalfWeight, transposed: boolean): NamedParameter {
  if (!(stored instanceof HalfWeight)) return { key, tensor: stored, transposed };
  return {
    key,
    transposed,
    get tensor() {
      return stored.widenedKept();
    },
  };
}
