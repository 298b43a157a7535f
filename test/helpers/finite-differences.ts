// Central finite differences against autodiff, shared by every method's and family's gradient test.
import { expect } from 'vitest';
import { tf } from '../../src-worker/tf.ts';

export interface GradientCheckOptions {
  /** How many entries of each tensor to check: the largest gradients, where float32 noise is smallest relative to them. */
  entriesPerTensor?: number;
  eps?: number;
  rtol?: number;
  atol?: number;
}

/**
 * Checks d loss / d variable for the `entriesPerTensor` largest autodiff entries of each variable against
 * (loss(v + eps) - loss(v - eps)) / (2 eps), restoring every variable afterwards. Returns how many entries
 * were checked, so a test can also assert that none were skipped.
 */
export function checkGradients(
  loss: () => tf.Scalar,
  trainable: readonly { name: string; variable: tf.Variable }[],
  { entriesPerTensor = 1, eps = 1e-2, rtol = 2e-2, atol = 1e-4 }: GradientCheckOptions = {},
): number {
  const { value, grads } = tf.variableGrads(
    loss,
    trainable.map((t) => t.variable),
  );
  value.dispose();
  let checked = 0;
  for (const { name, variable } of trainable) {
    const grad = grads[variable.name]!.dataSync();
    const values = variable.dataSync() as Float32Array;
    const largest = [...grad.keys()].sort((i, j) => Math.abs(grad[j]!) - Math.abs(grad[i]!)).slice(0, entriesPerTensor);
    for (const i of largest) {
      const lossWith = (delta: number) => {
        const copy = Float32Array.from(values);
        copy[i] = values[i]! + delta;
        tf.tidy(() => variable.assign(tf.tensor(copy, variable.shape)));
        const l = loss();
        const v = l.dataSync()[0]!;
        l.dispose();
        return v;
      };
      const numeric = (lossWith(eps) - lossWith(-eps)) / (2 * eps);
      tf.tidy(() => variable.assign(tf.tensor(values, variable.shape)));
      expect(Math.abs(grad[i]!), `${name}: gradient too small to check`).toBeGreaterThan(1e-3);
      expect(Math.abs(numeric - grad[i]!), `${name}[${i}]: numeric ${numeric}, autodiff ${grad[i]}`).toBeLessThanOrEqual(rtol * Math.abs(grad[i]!) + atol);
      checked++;
    }
  }
  tf.dispose(Object.values(grads));
  return checked;
}
