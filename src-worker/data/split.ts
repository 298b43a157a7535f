// Train/validation split that depends only on (number of rows, fraction, seed), so a resumed run,
// an evaluation and a rerun with the same seed all hold out the same rows.
import { deriveSeed, shuffled } from '../rng.ts';

/** Salt so the split and the batch order draw different streams from one run seed. */
const SPLIT_STREAM = 0x5911_7000;

export interface Split {
  /** Row indices, ascending. */
  train: number[];
  validation: number[];
}

/** How many rows to hold out: round(n * fraction), at least one from 10 rows up (when fraction > 0), never all. */
export function validationSize(n: number, fraction: number): number {
  if (fraction <= 0 || n < 2) return 0;
  let size = Math.round(n * fraction);
  if (n >= 10) size = Math.max(1, size);
  return Math.min(size, n - 1);
}

export function splitTrainValidation(n: number, fraction: number, seed: number): Split {
  const order = shuffled(
    Array.from({ length: n }, (_, i) => i),
    deriveSeed(seed, SPLIT_STREAM),
  );
  const size = validationSize(n, fraction);
  const byIndex = (a: number, b: number) => a - b;
  return { validation: order.slice(0, size).sort(byIndex), train: order.slice(size).sort(byIndex) };
}
