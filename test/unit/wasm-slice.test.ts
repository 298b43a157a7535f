// The wasm backend's Slice, SplitV and Unpack kernels (kernels/wasm-slice.ts) against the cpu backend's,
// on ranks 1-5, offsets in every axis, strings included; and their gradients (which tfjs composes from them).
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../src-worker/backend.ts';
import { tf } from '../../src-worker/tf.ts';

const SHAPES: number[][] = [[7], [5, 6], [3, 4, 5], [2, 3, 4, 5], [2, 2, 3, 2, 3]];

async function onBoth<T>(f: () => T): Promise<[T, T]> {
  await initBackend('cpu');
  const cpu = f();
  await initBackend('wasm');
  return [cpu, f()];
}

function values(shape: number[]): tf.Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  return tf.tensor(
    Float32Array.from({ length: n }, (_, i) => i * 0.5 - 3),
    shape,
  );
}

describe('wasm Slice, SplitV and Unpack', () => {
  it('equal the cpu kernels on ranks 1 to 5', async () => {
    for (const shape of SHAPES) {
      const begin = shape.map((d) => Math.min(1, d - 1));
      const size = shape.map((d, i) => d - begin[i]! - (d > 2 ? 1 : 0));
      const [a, b] = await onBoth(() => Array.from(tf.slice(values(shape), begin, size).dataSync()));
      expect(b).toEqual(a);
      for (let axis = 0; axis < shape.length; axis++) {
        const [s1, s2] = await onBoth(() =>
          tf.split(values(shape), shape[axis]! > 2 ? [1, shape[axis]! - 1] : shape[axis]!, axis).map((t) => [t.shape, Array.from(t.dataSync())]),
        );
        expect(s2).toEqual(s1);
        const [u1, u2] = await onBoth(() => tf.unstack(values(shape), axis).map((t) => [t.shape, Array.from(t.dataSync())]));
        expect(u2).toEqual(u1);
      }
    }
  });

  it('keep strings working and give the gradients of a slice', async () => {
    await initBackend('wasm');
    expect(tf.slice(tf.tensor1d(['a', 'b', 'c'], 'string'), [1], [2]).arraySync()).toEqual(['b', 'c']);
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(tf.slice(x, [1, 1], [2, 3]), 2)))(values([4, 5]));
    const expected = Array.from({ length: 20 }, (_, i) => (Math.floor(i / 5) >= 1 && Math.floor(i / 5) <= 2 && i % 5 >= 1 && i % 5 <= 3 ? 2 : 0));
    expect(Array.from(g.dataSync())).toEqual(expected);
  });
});
