// Train / validation / test splits that depend only on (rows, fractions, seed, groups), so an
// evaluation and a rerun with the same seed hold out the same rows. With test = 0 and no groups
// the validation rows are exactly those of ../split.ts's splitTrainValidation.
import { WorkbenchError } from '../../../src-shared/errors.ts';
import { deriveSeed, shuffled } from '../../rng.ts';
import { validationSize } from '../split.ts';

/** The stream ../split.ts draws from, so both split functions agree on the validation rows. */
const SPLIT_STREAM = 0x5911_7000;

export interface ThreeWaySplit {
  /** Row indices, ascending. */
  train: number[];
  validation: number[];
  test: number[];
}

export interface SplitFractions {
  validation: number;
  test?: number;
}

/**
 * Splits n rows. With `groups` (one key per row, e.g. an OASST1 message tree), whole groups move
 * together so no conversation prefix is in two splits; held-out sizes then reach at least the
 * requested number of rows, in whole groups.
 */
export function splitRows(n: number, fractions: SplitFractions, seed: number, groups?: readonly string[]): ThreeWaySplit {
  const test = fractions.test ?? 0;
  const validation = fractions.validation;
  if (!(validation >= 0 && test >= 0 && validation + test < 1)) {
    throw new WorkbenchError('invalid_input', `Split fractions must be >= 0 and leave rows to train on; got validation ${validation}, test ${test}.`, {
      fractions,
    });
  }
  if (groups && groups.length !== n) throw new WorkbenchError('invalid_input', `Split needs one group key per row: ${groups.length} keys for ${n} rows.`);

  // Units are rows, or groups in first-seen order; the shuffle is over units.
  const members = new Map<string, number[]>();
  if (groups) groups.forEach((g, i) => (members.get(g) ?? members.set(g, []).get(g)!).push(i));
  const units: number[][] = groups ? [...members.values()] : Array.from({ length: n }, (_, i) => [i]);
  const order = shuffled(units, deriveSeed(seed, SPLIT_STREAM));

  const nValidation = validationSize(n, validation);
  const nTest = Math.min(validationSize(n, test), n - nValidation - 1);
  const out: ThreeWaySplit = { train: [], validation: [], test: [] };
  for (const unit of order) {
    const target = out.validation.length < nValidation ? out.validation : out.test.length < Math.max(0, nTest) ? out.test : out.train;
    target.push(...unit);
  }
  if (out.train.length === 0 && n > 0) {
    throw new WorkbenchError('invalid_input', `The held-out splits took every group (${units.length} groups for ${n} rows); lower the fractions.`, {
      fractions,
    });
  }
  const byIndex = (a: number, b: number) => a - b;
  out.train.sort(byIndex);
  out.validation.sort(byIndex);
  out.test.sort(byIndex);
  return out;
}
