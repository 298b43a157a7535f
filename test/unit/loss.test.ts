import { describe, expect, it } from 'vitest';
import { initBackend } from '../../src-worker/backend.ts';
import { tf } from '../../src-worker/tf.ts';
import { causalLMLoss, causalLMLossSum } from '../../src-worker/train/loss.ts';

/** Plain loops, no tensors: -log softmax(logits[b, t])[ids[b, t+1]], averaged over mask[b, t+1] = 1. */
function referenceLoss(logits: number[][][], ids: number[][], mask: number[][]): number {
  let total = 0;
  let count = 0;
  logits.forEach((rows, b) => {
    for (let t = 0; t + 1 < rows.length; t++) {
      if (!mask[b]![t + 1]) continue;
      const row = rows[t]!;
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((s, z) => s + Math.exp(z - max), 0));
      total += lse - row[ids[b]![t + 1]!]!;
      count += 1;
    }
  });
  return total / count;
}

describe('causalLMLoss', () => {
  it('is ln V for uniform logits', () => {
    const loss = causalLMLoss(tf.zeros([1, 4, 5]) as tf.Tensor3D, tf.tensor2d([[0, 1, 2, 3]], undefined, 'int32'), tf.tensor2d([[0, 1, 1, 1]]));
    expect(loss.dataSync()[0]).toBeCloseTo(Math.log(5), 6);
  });

  it('matches a hand computation with the shift and the mask', () => {
    // One example, T = 3, V = 2; targets are ids[1] = 1 (masked out) and ids[2] = 0.
    // Only logits[0, 1] = [2, 0] count: -log(e^2 / (e^2 + e^0)) = log(1 + e^-2).
    const logits = tf.tensor3d([
      [
        [0, 5],
        [2, 0],
        [9, -9],
      ],
    ]);
    const loss = causalLMLoss(logits, tf.tensor2d([[1, 1, 0]], undefined, 'int32'), tf.tensor2d([[0, 0, 1]]));
    expect(loss.dataSync()[0]).toBeCloseTo(Math.log(1 + Math.exp(-2)), 6);
  });

  it('averages over target tokens, not examples, matching a loop reference', () => {
    const B = 3,
      T = 6,
      V = 7;
    const logits = Array.from({ length: B }, (_, b) =>
      Array.from({ length: T }, (_, t) => Array.from({ length: V }, (_, v) => Math.sin(b * 31 + t * 7 + v * 3) * 4)),
    );
    const ids = [
      [1, 2, 3, 4, 5, 6],
      [0, 0, 6, 6, 2, 0],
      [5, 4, 3, 0, 0, 0],
    ];
    const mask = [
      [0, 0, 1, 1, 1, 1],
      [0, 1, 1, 0, 0, 0],
      [0, 0, 1, 0, 0, 0],
    ];
    const expected = referenceLoss(logits, ids, mask);
    const loss = causalLMLoss(tf.tensor3d(logits), tf.tensor2d(ids, undefined, 'int32'), tf.tensor2d(mask));
    expect(loss.dataSync()[0]).toBeCloseTo(expected, 5);
    const { sum, count } = causalLMLossSum(tf.tensor3d(logits), tf.tensor2d(ids, undefined, 'int32'), tf.tensor2d(mask));
    expect(count.dataSync()[0]).toBe(7);
    expect(sum.dataSync()[0]).toBeCloseTo(expected * 7, 4);
  });

  it('stays finite for huge logits and is 0 without targets', () => {
    const logits = tf.tensor3d([
      [
        [1e4, -1e4, 0],
        [3e4, 0, -3e4],
      ],
    ]);
    const loss = causalLMLoss(logits, tf.tensor2d([[0, 1]], undefined, 'int32'), tf.tensor2d([[0, 1]]));
    expect(loss.dataSync()[0]).toBeCloseTo(2e4, 0);
    const none = causalLMLoss(logits, tf.tensor2d([[0, 1]], undefined, 'int32'), tf.tensor2d([[0, 0]]));
    expect(Math.abs(none.dataSync()[0]!)).toBe(0);
  });

  it('has the softmax-minus-one-hot gradient on target positions only', () => {
    const logits = tf.tensor3d([
      [
        [0.5, -1, 2],
        [0, 0, 0],
        [1, 1, 1],
      ],
    ]);
    const grad = tf.grad((x: tf.Tensor) => causalLMLoss(x as tf.Tensor3D, tf.tensor2d([[0, 2, 1]], undefined, 'int32'), tf.tensor2d([[0, 1, 0]])))(logits);
    const g = grad.arraySync() as number[][][];
    const z = [0.5, -1, 2];
    const p = z.map((v) => Math.exp(v) / z.reduce((s, w) => s + Math.exp(w), 0));
    g[0]![0]!.forEach((v, i) => expect(v).toBeCloseTo(p[i]! - (i === 2 ? 1 : 0), 6));
    expect(g[0]![1]!.map(Math.abs)).toEqual([0, 0, 0]);
    expect(g[0]![2]!.map(Math.abs)).toEqual([0, 0, 0]);
  });
});

describe('causalLMLoss on the wasm backend', () => {
  it('matches the loop reference (wasm once zeroed a float32 one-hot)', async () => {
    await initBackend('wasm');
    try {
      const logits = [
        [
          [0.5, -1, 2, 0],
          [1, 1, -3, 0.25],
          [0, 2, 1, -1],
        ],
      ];
      const ids = [[3, 2, 1]];
      const mask = [[0, 1, 1]];
      const loss = causalLMLoss(tf.tensor3d(logits), tf.tensor2d(ids, undefined, 'int32'), tf.tensor2d(mask));
      expect(tf.getBackend()).toBe('wasm');
      expect(loss.dataSync()[0]).toBeCloseTo(referenceLoss(logits, ids, mask), 5);
    } finally {
      await initBackend('cpu');
    }
  });
});
