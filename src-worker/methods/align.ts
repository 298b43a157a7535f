// Bias-aware LoRA's L_align (METHODS.md section 4): with one adapter per jointly trained task,
//   L_align = sum_{i<j} || B_i A_i - B_j A_j ||_F^2   (per adapted module, summed over modules),
// computed without forming any [out, in] matrix. Expanding the square,
//   sum_{i<j} ||X_i - X_j||^2 = (T - 1) sum_i <X_i, X_i> - 2 sum_{i<j} <X_i, X_j>,
// and every inner product goes through r x r Grams:
//   <B_i A_i, B_j A_j>_F = trace((B_i^T B_j)(A_j A_i^T)) = sum((B_i^T B_j) (.) (A_i A_j^T)),
// O(T^2 r^2 (in + out)) per module instead of O(T out in r).
import type * as tfc from '@tensorflow/tfjs-core';
import { tf } from '../tf.ts';

export interface TaskFactors {
  a: tfc.Tensor2D; // [r_i, in]
  b: tfc.Tensor2D; // [out, r_i]
}

/** <B_i A_i, B_j A_j>_F through the r_i x r_j Grams. */
export function loraInnerProduct(x: TaskFactors, y: TaskFactors): tfc.Scalar {
  return tf.tidy(() => tf.sum(tf.mul(tf.matMul(x.b, y.b, true, false), tf.matMul(x.a, y.a, false, true))) as tfc.Scalar);
}

/** L_align of one module's task adapters (0 for a single task). */
export function alignLoss(tasks: readonly TaskFactors[]): tfc.Scalar {
  return tf.tidy(() => {
    const T = tasks.length;
    let total: tfc.Scalar = tf.scalar(0);
    for (let i = 0; i < T; i++) {
      total = tf.add(total, tf.mul(T - 1, loraInnerProduct(tasks[i]!, tasks[i]!)));
      for (let j = i + 1; j < T; j++) total = tf.sub(total, tf.mul(2, loraInnerProduct(tasks[i]!, tasks[j]!)));
    }
    // The expansion can round a true zero (identical adapters) slightly below it.
    return tf.relu(total) as tfc.Scalar;
  });
}

/** L_align summed over modules: `modules[m]` holds module m's factors, one entry per task. */
export function alignLossOverModules(modules: readonly (readonly TaskFactors[])[]): tfc.Scalar {
  return tf.tidy(() => modules.reduce<tfc.Scalar>((sum, tasks) => tf.add(sum, alignLoss(tasks)), tf.scalar(0)));
}
