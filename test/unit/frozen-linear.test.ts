// models/ops.ts frozenLinear: its gradient dx = dy W^T on wasm, where XNNPACK takes no transposed
// operand, equals the product computed by hand on both of its paths (fewer rows than input features:
// (W dy^T)^T; more: dy (W^T)), with and without a bias; and on cpu through tfjs's transposeB flag.
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../src-worker/backend.ts';
import { frozenLinear } from '../../src-worker/models/ops.ts';
import { tf } from '../../src-worker/tf.ts';

const [IN, OUT] = [16, 24];
const w = Float32Array.from({ length: IN * OUT }, (_, i) => Math.sin(0.37 * i));
const bias = Float32Array.from({ length: OUT }, (_, i) => 0.1 * i);

/** d/dx sum(r * (x W + b)) = r W^T, by hand. */
function expected(r: Float32Array, rows: number): Float32Array {
  const dx = new Float32Array(rows * IN);
  for (let i = 0; i < rows; i++) for (let k = 0; k < IN; k++) for (let j = 0; j < OUT; j++) dx[i * IN + k]! += r[i * OUT + j]! * w[k * OUT + j]!;
  return dx;
}

describe.each(['wasm', 'cpu'] as const)('frozenLinear on %s', (backend) => {
  it.each([3, 40])('gives dx = dy W^T for %i rows (with and without a bias)', async (rows) => {
    await initBackend(backend);
    const r = Float32Array.from({ length: rows * OUT }, (_, i) => Math.cos(0.11 * i));
    const W = tf.tensor2d(w, [IN, OUT]);
    const b = tf.tensor1d(bias);
    const x = tf.tensor2d(
      Float32Array.from({ length: rows * IN }, (_, i) => Math.cos(0.7 * i)),
      [rows, IN],
    );
    const R = tf.tensor2d(r, [rows, OUT]);
    const want = expected(r, rows);
    for (const withBias of [false, true]) {
      const dx = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(frozenLinear(input as tf.Tensor2D, { w: W }, withBias ? b : null), R)))(x);
      const got = dx.dataSync();
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-4);
      dx.dispose();
    }
    tf.dispose([W, b, x, R]);
  });
});
