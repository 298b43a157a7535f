import { describe, expect, it } from 'vitest';
import { tf } from '../../src-worker/tf.ts';
import { AdamW, clipByGlobalNorm } from '../../src-worker/train/adamw.ts';

function setup() {
  const a = tf.variable(
    tf.tensor2d([
      [1, -2],
      [0.5, 3],
    ]),
  );
  const b = tf.variable(tf.tensor1d([0.25, -1, 2]));
  const optimizer = new AdamW([
    { name: 'lora_A', lr: 0.1, weightDecay: 0.01, params: [{ name: 'a', variable: a }] },
    { name: 'lora_B', lr: 0.01, weightDecay: 0, params: [{ name: 'b', variable: b }] },
  ]);
  const gradsA = [
    tf.tensor2d([
      [0.5, -1],
      [2, 0],
    ]),
    tf.tensor2d([
      [-0.25, 0.5],
      [1, -3],
    ]),
  ];
  const gradsB = [tf.tensor1d([1, -0.5, 0.1]), tf.tensor1d([0.3, 0.3, -2])];
  const step = (i: number) =>
    optimizer.step(
      new Map<string, tf.Tensor>([
        ['a', gradsA[i]!],
        ['b', gradsB[i]!],
      ]),
    );
  return { a, b, optimizer, step, dispose: () => [a, b, ...gradsA, ...gradsB].forEach((t) => t.dispose()) };
}

const values = (t: tf.Tensor) => Array.from(t.dataSync());

describe('AdamW', () => {
  it('matches torch.optim.AdamW on two steps with two parameter groups', () => {
    const { a, b, optimizer, step, dispose } = setup();
    // Step 1 by hand, for a[0,0] (p=1, g=0.5, lr=0.1, wd=0.01): m = 0.05, v = 0.00025, bias-corrected
    // m/sqrt(v) = 0.5/0.5 = 1, so p = 1 * (1 - 0.1*0.01) - 0.1 * 1 = 0.899.
    // a[1,1] has g = 0: only the decay moves it, 3 * 0.999 = 2.997. Group B has no decay: b - 0.01 * sign(g).
    step(0);
    expect(values(a).map((x) => +x.toFixed(5))).toEqual([0.899, -1.898, 0.3995, 2.997]);
    expect(values(b).map((x) => +x.toFixed(5))).toEqual([0.24, -0.99, 1.99]);
    // Step 2 reference values from torch 1.13 (float64):
    // torch.optim.AdamW([{a, lr 0.1, wd 0.01}, {b, lr 0.01, wd 0}], betas (0.9, 0.999), eps 1e-8).
    step(1);
    const torchA = [0.8714673, -1.8694683, 0.30588254, 3.06841668];
    const torchB = [0.23144303, -0.98808502, 1.99709765];
    values(a).forEach((x, i) => expect(x).toBeCloseTo(torchA[i]!, 5));
    values(b).forEach((x, i) => expect(x).toBeCloseTo(torchB[i]!, 5));
    const state = optimizer.stateDict();
    values(state.get('a.exp_avg')!).forEach((x, i) => expect(x).toBeCloseTo([0.02, -0.04, 0.28, -0.3][i]!, 6));
    values(state.get('a.exp_avg_sq')!).forEach((x, i) => expect(x).toBeCloseTo([0.00031225, 0.001249, 0.004996, 0.009][i]!, 8));
    expect(optimizer.stepCount).toBe(2);
    optimizer.dispose();
    dispose();
  });

  it('continues identically after its state is saved and loaded', () => {
    const ref = setup();
    ref.step(0);
    ref.step(1);
    const run = setup();
    run.step(0);
    const saved = new Map([...run.optimizer.stateDict()].map(([k, t]) => [k, { shape: t.shape, data: t.dataSync() as Float32Array }]));
    const fresh = new AdamW([
      { name: 'lora_A', lr: 0.1, weightDecay: 0.01, params: [{ name: 'a', variable: run.a }] },
      { name: 'lora_B', lr: 0.01, weightDecay: 0, params: [{ name: 'b', variable: run.b }] },
    ]);
    fresh.loadStateDict(saved, run.optimizer.stepCount);
    run.optimizer.dispose();
    // Without the saved state this step would use bias correction for t = 1 and zero moments.
    fresh.step(
      new Map<string, tf.Tensor>([
        [
          'a',
          tf.tensor2d([
            [-0.25, 0.5],
            [1, -3],
          ]),
        ],
        ['b', tf.tensor1d([0.3, 0.3, -2])],
      ]),
    );
    expect(values(run.a)).toEqual(values(ref.a));
    expect(values(run.b)).toEqual(values(ref.b));
    expect(() => fresh.loadStateDict(new Map([...saved].slice(1)), 1)).toThrow(/missing a.exp_avg/);
    fresh.dispose();
    ref.optimizer.dispose();
    ref.dispose();
    run.dispose();
  });

  it('changes learning rates per group', () => {
    const { optimizer, dispose } = setup();
    optimizer.setLearningRate('lora_B', 0.5);
    expect(optimizer.learningRate('lora_B')).toBe(0.5);
    expect(optimizer.learningRate('lora_A')).toBe(0.1);
    expect(() => optimizer.setLearningRate('bias', 1)).toThrow(/no parameter group bias/);
    optimizer.dispose();
    dispose();
  });

  it('does not leak tensors across steps', () => {
    const { step, optimizer, dispose } = setup();
    step(0);
    const before = tf.memory().numTensors;
    step(1);
    step(0);
    expect(tf.memory().numTensors).toBe(before);
    optimizer.dispose();
    dispose();
  });
});

describe('clipByGlobalNorm', () => {
  it('scales all gradients by maxNorm / norm when the norm is larger', () => {
    const grads = new Map([
      ['x', tf.tensor1d([3, 0])],
      ['y', tf.tensor1d([0, 4])],
    ]);
    const { grads: clipped, norm } = clipByGlobalNorm(grads, 1);
    expect(norm.dataSync()[0]).toBeCloseTo(5, 6);
    expect(values(clipped.get('x')!)[0]).toBeCloseTo(0.6, 5);
    expect(values(clipped.get('y')!)[1]).toBeCloseTo(0.8, 5);
    const { grads: kept } = clipByGlobalNorm(grads, 10);
    expect(values(kept.get('y')!)).toEqual([0, 4]);
  });
});
