// Slice, SplitV and Unpack for tfjs-backend-wasm that copy only what they return.
//
// The package's Slice kernel starts with backend.readSync(x), which copies the WHOLE input out of the
// wasm heap (HEAPU8.slice) before taking its part; SplitV and Unpack call it once per output. So
// taking one head of attention's (12, 256, 64) or one chunk of tokens' hidden states cost a copy of
// the entire tensor, and splitting into n parts n copies: in a profile of a GPT-2 (n_embd 768) LoRA
// step, Slice and Unpack took more time than every matrix product together. These kernels read the
// input through a view of the heap instead, taken after the output is allocated (an allocation may
// grow the heap and detach older views), and copy row by row along the last axis.
import { tf } from '../tf.ts';

type Backend = tf.KernelBackend & {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): tf.TypedArray;
};

interface SliceArgs {
  inputs: { x: tf.TensorInfo };
  attrs: { begin: number[]; size: number[] };
  backend: Backend;
}

/** Copies x[begin : begin + size] (any rank) into a new output; the innermost axis is copied as runs. */
function sliceOut(x: tf.TensorInfo, begin: number[], size: number[], backend: Backend): tf.TensorInfo {
  const out = backend.makeOutput(size, x.dtype);
  const count = size.reduce((p, d) => p * d, 1);
  if (count === 0) return out;
  const xVals = backend.typedArrayFromHeap(x);
  const outVals = backend.typedArrayFromHeap(out);
  const rank = x.shape.length;
  const strides = new Array<number>(rank);
  strides[rank - 1] = 1;
  for (let d = rank - 2; d >= 0; d--) strides[d] = strides[d + 1]! * x.shape[d + 1]!;
  const run = size[rank - 1]!;
  const outer = count / run;
  const index = new Array<number>(Math.max(rank - 1, 0)).fill(0);
  for (let r = 0; r < outer; r++) {
    let offset = begin[rank - 1]!;
    for (let d = 0; d < rank - 1; d++) offset += (begin[d]! + index[d]!) * strides[d]!;
    outVals.set(xVals.subarray(offset, offset + run), r * run);
    // Odometer over the outer axes, last fastest.
    for (let d = rank - 2; d >= 0; d--) {
      if (++index[d]! < size[d]!) break;
      index[d] = 0;
    }
  }
  return out;
}

function slice({ inputs: { x }, attrs, backend }: SliceArgs): tf.TensorInfo {
  const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, attrs.begin, attrs.size);
  return sliceOut(x, begin, size, backend);
}

function splitV({
  inputs: { x },
  attrs,
  backend,
}: {
  inputs: { x: tf.TensorInfo };
  attrs: { numOrSizeSplits: number[] | number; axis: number };
  backend: Backend;
}): tf.TensorInfo[] {
  const axis = tf.util.parseAxisParam(attrs.axis, x.shape)[0]!;
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, attrs.numOrSizeSplits, axis);
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((s) => {
    const size = [...x.shape];
    size[axis] = s;
    const part = sliceOut(x, [...begin], size, backend);
    begin[axis] += s;
    return part;
  });
}

function unpack({ inputs: { value }, attrs, backend }: { inputs: { value: tf.TensorInfo }; attrs: { axis: number }; backend: Backend }): tf.TensorInfo[] {
  const rank = value.shape.length;
  const axis = attrs.axis < 0 ? attrs.axis + rank : attrs.axis;
  const outShape = value.shape.filter((_, d) => d !== axis);
  const size = [...value.shape];
  size[axis] = 1;
  const begin = new Array<number>(rank).fill(0);
  return Array.from({ length: value.shape[axis]! }, (_, i) => {
    begin[axis] = i;
    const { dataId, dtype } = sliceOut(value, begin, size, backend);
    return { dataId, dtype, shape: outShape };
  });
}

let registered = false;

/** Replaces the wasm backend's Slice, SplitV and Unpack (see the header); strings keep the originals. */
export function registerWasmSliceKernels(): void {
  if (registered) return;
  registered = true;
  const kernels: [string, (args: never) => tf.TensorInfo | tf.TensorInfo[]][] = [
    ['Slice', slice],
    ['SplitV', splitV],
    ['Unpack', unpack],
  ];
  for (const [name, kernelFunc] of kernels) {
    const original = tf.getKernel(name, 'wasm');
    if (!original) continue;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({
      kernelName: name,
      backendName: 'wasm',
      kernelFunc: ((args: { inputs: Record<string, tf.TensorInfo> }) => {
        const input = Object.values(args.inputs)[0]!;
        return input.dtype === 'string' ? original.kernelFunc(args as never) : kernelFunc(args as never);
      }) as tf.KernelFunc,
    });
  }
}
