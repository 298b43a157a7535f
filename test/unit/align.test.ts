// L_align (METHODS.md section 4): the Gram form against the brute force from full Delta W, its
// gradient against finite differences, and the task-mixture batches it trains on.
import { describe, expect, it } from 'vitest';
import { TaskMixtureBatcher, mixtureProbabilities } from '../../src-worker/data/task-mixture.ts';
import { alignLoss, alignLossOverModules, loraInnerProduct } from '../../src-worker/methods/align.ts';
import { mulberry32 } from '../../src-worker/rng.ts';
import { tf } from '../../src-worker/tf.ts';
import { checkGradients } from '../helpers/finite-differences.ts';

const random = (rows: number, cols: number, seed: number) => {
  const r = mulberry32(seed);
  return Array.from({ length: rows * cols }, () => 2 * r.next() - 1);
};

/** sum_{i<j} ||B_i A_i - B_j A_j||_F^2 from the dense [out, in] products, in float64. */
function bruteForce(tasks: { a: number[]; b: number[]; r: number }[], out: number, inF: number): number {
  const dense = tasks.map(({ a, b, r }) =>
    Array.from({ length: out * inF }, (_, k) => {
      const o = Math.floor(k / inF);
      const i = k % inF;
      let s = 0;
      for (let p = 0; p < r; p++) s += b[o * r + p]! * a[p * inF + i]!;
      return s;
    }),
  );
  let total = 0;
  for (let i = 0; i < dense.length; i++) for (let j = i + 1; j < dense.length; j++) total += dense[i]!.reduce((acc, v, k) => acc + (v - dense[j]![k]!) ** 2, 0);
  return total;
}

describe('L_align', () => {
  const out = 7;
  const inF = 5;
  const spec = [
    { r: 2, seed: 1 },
    { r: 3, seed: 2 },
    { r: 2, seed: 3 },
  ];
  const raw = spec.map(({ r, seed }) => ({ r, a: random(r, inF, seed), b: random(out, r, seed + 10) }));

  it('the Gram form equals the brute force from full Delta W', () => {
    const got = tf.tidy(() => alignLoss(raw.map(({ r, a, b }) => ({ a: tf.tensor2d(a, [r, inF]), b: tf.tensor2d(b, [out, r]) }))).dataSync()[0]!);
    const expected = bruteForce(raw, out, inF);
    expect(Math.abs(got - expected) / expected).toBeLessThan(1e-5);
    // Two modules add up; one task, or identical tasks, align perfectly.
    const twice = tf.tidy(() => {
      const factors = raw.map(({ r, a, b }) => ({ a: tf.tensor2d(a, [r, inF]), b: tf.tensor2d(b, [out, r]) }));
      return alignLossOverModules([factors, factors]).dataSync()[0]!;
    });
    expect(Math.abs(twice - 2 * expected) / expected).toBeLessThan(1e-5);
    const single = tf.tidy(() => alignLoss([{ a: tf.tensor2d(raw[0]!.a, [2, inF]), b: tf.tensor2d(raw[0]!.b, [out, 2]) }]).dataSync()[0]!);
    expect(single).toBe(0);
    const same = tf.tidy(() => {
      const f = { a: tf.tensor2d(raw[1]!.a, [3, inF]), b: tf.tensor2d(raw[1]!.b, [out, 3]) };
      return alignLoss([f, f]).dataSync()[0]!;
    });
    expect(same).toBeLessThan(1e-5 * bruteForce([raw[1]!, { ...raw[1]!, b: raw[1]!.b.map(() => 0) }], out, inF));
  });

  it('<B_i A_i, B_j A_j> is trace((B_i^T B_j)(A_j A_i^T))', () => {
    const [x, y] = [raw[0]!, raw[1]!];
    const got = tf.tidy(
      () =>
        loraInnerProduct(
          { a: tf.tensor2d(x.a, [2, inF]), b: tf.tensor2d(x.b, [out, 2]) },
          { a: tf.tensor2d(y.a, [3, inF]), b: tf.tensor2d(y.b, [out, 3]) },
        ).dataSync()[0]!,
    );
    const half =
      bruteForce([x, { ...y, b: y.b.map(() => 0) }], out, inF) + bruteForce([{ ...x, b: x.b.map(() => 0) }, y], out, inF) - bruteForce([x, y], out, inF);
    expect(got).toBeCloseTo(half / 2, 4);
  });

  it('its gradient matches finite differences for every factor', () => {
    const variables = raw.flatMap(({ r, a, b }, t) => [
      { name: `A${t}`, variable: tf.variable(tf.tensor2d(a, [r, inF])) },
      { name: `B${t}`, variable: tf.variable(tf.tensor2d(b, [out, r])) },
    ]);
    const loss = () =>
      alignLoss(
        raw.map((_, t) => ({ a: variables[2 * t]!.variable as tf.Variable<tf.Rank.R2>, b: variables[2 * t + 1]!.variable as tf.Variable<tf.Rank.R2> })),
      );
    expect(checkGradients(loss, variables, { entriesPerTensor: 3 })).toBe(18);
    tf.dispose(variables.map((v) => v.variable));
  });
});

describe('task-mixture batches', () => {
  const rowsByTask = [
    [0, 1, 2, 3, 4, 5],
    [6, 7, 8],
    [9, 10, 11, 12, 13, 14, 15, 16, 17],
  ];

  it('mixes by the ratios, or by the row counts when none are given', () => {
    expect(mixtureProbabilities(['a', 'b', 'c'], [6, 3, 9], [])).toEqual([6 / 18, 3 / 18, 9 / 18]);
    expect(mixtureProbabilities(['a', 'b', 'c'], [6, 3, 9], [1, 1, 2])).toEqual([0.25, 0.25, 0.5]);
    expect(() => mixtureProbabilities(['a', 'b'], [6, 3], [1])).toThrow(/1 ratios for 2 tasks/);
    expect(() => mixtureProbabilities(['a', 'b'], [6, 0], [])).toThrow(/no training row has task "b"/);
    expect(() => mixtureProbabilities(['a', 'b'], [6, 3], [0, 0])).toThrow(/at least one ratio/);
    const batcher = new TaskMixtureBatcher(rowsByTask, [0.2, 0.3, 0.5], 2, 9);
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) {
      const batch = batcher.next();
      counts[batcher.lastTask]!++;
      // One task per batch.
      expect(batch.every((row) => rowsByTask[batcher.lastTask]!.includes(row))).toBe(true);
    }
    expect(counts[0]! / 3000).toBeCloseTo(0.2, 1);
    expect(counts[1]! / 3000).toBeCloseTo(0.3, 1);
    expect(counts[2]! / 3000).toBeCloseTo(0.5, 1);
  });

  it('walks each task through whole epochs and resumes from its state to the same batches', () => {
    const batcher = new TaskMixtureBatcher(rowsByTask, [1 / 3, 1 / 3, 1 / 3], 3, 4);
    const seen: number[][] = [[], [], []];
    const batches: number[][] = [];
    for (let i = 0; i < 12; i++) {
      batches.push(batcher.next());
      seen[batcher.lastTask]!.push(...batches.at(-1)!);
    }
    // The first len(rows) rows drawn for a task are one permutation of its rows.
    const complete = seen.filter((rows, t) => rows.length >= rowsByTask[t]!.length);
    expect(complete.length).toBeGreaterThan(0);
    seen.forEach((rows, t) => {
      if (rows.length >= rowsByTask[t]!.length) expect([...rows.slice(0, rowsByTask[t]!.length)].sort((a, b) => a - b)).toEqual(rowsByTask[t]);
    });
    const resumed = new TaskMixtureBatcher(rowsByTask, [1 / 3, 1 / 3, 1 / 3], 3, 4);
    const replay = new TaskMixtureBatcher(rowsByTask, [1 / 3, 1 / 3, 1 / 3], 3, 4);
    for (let i = 0; i < 5; i++) replay.next();
    resumed.setState(replay.getState());
    expect(Array.from({ length: 7 }, () => resumed.next())).toEqual(batches.slice(5));
  });
});
