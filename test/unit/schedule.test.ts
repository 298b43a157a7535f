import { describe, expect, it } from 'vitest';
import { learningRateAt } from '../../src-worker/train/schedule.ts';

const s = { peak: 1e-3, warmupSteps: 10, maxSteps: 110 };

describe('learningRateAt', () => {
  it('warms up linearly to the peak', () => {
    expect(learningRateAt(1, s)).toBeCloseTo(1e-4, 12);
    expect(learningRateAt(5, s)).toBeCloseTo(5e-4, 12);
    expect(learningRateAt(10, s)).toBeCloseTo(1e-3, 12);
  });

  it('decays along a cosine to 10% of the peak at the last step', () => {
    // Halfway through the decay (step 60) the cosine term is 0: 0.1 + 0.9 * 0.5 = 0.55 of the peak.
    expect(learningRateAt(60, s)).toBeCloseTo(0.55e-3, 12);
    // A quarter of the way: (1 + cos(pi/4)) / 2 = 0.853553…
    expect(learningRateAt(35, s)).toBeCloseTo(1e-3 * (0.1 + 0.9 * 0.8535533905932737), 12);
    expect(learningRateAt(110, s)).toBeCloseTo(1e-4, 12);
    expect(learningRateAt(200, s)).toBeCloseTo(1e-4, 12);
  });

  it('decreases monotonically after the warmup', () => {
    const rates = Array.from({ length: 100 }, (_, i) => learningRateAt(11 + i, s));
    rates.slice(1).forEach((r, i) => expect(r).toBeLessThan(rates[i]!));
  });

  it('handles no warmup and a warmup as long as the run', () => {
    expect(learningRateAt(0, { ...s, warmupSteps: 0 })).toBeCloseTo(1e-3, 12);
    expect(learningRateAt(1, { ...s, warmupSteps: 0 })).toBeLessThan(1e-3);
    expect(learningRateAt(20, { peak: 1, warmupSteps: 20, maxSteps: 20 })).toBe(1);
  });
});
