import { describe, expect, it } from 'vitest';
import { Batcher, collate } from '../../src-worker/data/batcher.ts';
import type { TokenizedExample } from '../../src-worker/data/tokenize.ts';
import { mulberry32, shuffled } from '../../src-worker/rng.ts';

const indices = Array.from({ length: 10 }, (_, i) => 100 + i);

function draw(batcher: Batcher, n: number): number[][] {
  return Array.from({ length: n }, () => batcher.next());
}

describe('mulberry32', () => {
  it('is deterministic, seed-dependent and in [0, 1)', () => {
    const a = mulberry32(1);
    const b = mulberry32(1);
    const xs = Array.from({ length: 1000 }, () => a.next());
    expect(Array.from({ length: 1000 }, () => b.next())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(mulberry32(2).next()).not.toBe(xs[0]);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05);
  });

  it('shuffles into a permutation', () => {
    const p = shuffled(indices, 3);
    expect([...p].sort()).toEqual(indices);
    expect(p).not.toEqual(indices);
  });
});

describe('Batcher', () => {
  it('gives the same batches for the same seed and different ones for another', () => {
    expect(draw(new Batcher(indices, 3, 5), 8)).toEqual(draw(new Batcher(indices, 3, 5), 8));
    expect(draw(new Batcher(indices, 3, 6), 8)).not.toEqual(draw(new Batcher(indices, 3, 5), 8));
  });

  it('visits every row once per epoch, reshuffling between epochs', () => {
    const b = new Batcher(indices, 5, 1);
    const epoch1 = [...b.next(), ...b.next()];
    const epoch2 = [...b.next(), ...b.next()];
    expect([...epoch1].sort()).toEqual(indices);
    expect([...epoch2].sort()).toEqual(indices);
    expect(epoch2).not.toEqual(epoch1);
    expect(b.getState()).toEqual({ epoch: 1, position: 10 });
  });

  it('fills a batch across the epoch boundary', () => {
    const b = new Batcher(indices, 4, 2);
    const batches = draw(b, 3);
    expect(batches.every((x) => x.length === 4)).toBe(true);
    expect(new Set(batches.flat().slice(0, 10)).size).toBe(10);
    expect(b.getState()).toEqual({ epoch: 1, position: 2 });
  });

  it('resumes from a saved state with exactly the batches an uninterrupted run sees', () => {
    const uninterrupted = draw(new Batcher(indices, 3, 9), 12);
    const first = new Batcher(indices, 3, 9);
    const before = draw(first, 5);
    const state = JSON.parse(JSON.stringify(first.getState()));
    const resumed = new Batcher(indices, 3, 9);
    resumed.setState(state);
    expect([...before, ...draw(resumed, 7)]).toEqual(uninterrupted);
  });

  it('rejects a state that does not fit the data', () => {
    expect(() => new Batcher(indices, 3, 9).setState({ epoch: 0, position: 11 })).toThrow(/Invalid batcher state/);
  });
});

describe('collate', () => {
  const ex = (ids: number[], mask: number[]): TokenizedExample => ({ inputIds: ids, lossMask: mask, promptLength: 0, truncated: false });

  it('right-pads with the pad id, masks padding and counts real tokens', () => {
    const batch = collate([ex([5, 6, 7], [0, 1, 1]), ex([8], [1])], 0, 96);
    expect(batch.seqLen).toBe(8);
    expect(batch.batchSize).toBe(2);
    expect(Array.from(batch.inputIds)).toEqual([5, 6, 7, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0]);
    expect(Array.from(batch.lossMask)).toEqual([0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    expect(batch.tokenCount).toBe(4);
  });

  it('never pads past maxSeqLen', () => {
    const batch = collate([ex([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], Array(10).fill(1))], 0, 12);
    expect(batch.seqLen).toBe(12);
  });
});
