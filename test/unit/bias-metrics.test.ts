import { describe, expect, it } from 'vitest';
import {
  bbqScores,
  counterfactualGaps,
  crowsBiasScore,
  crowsPairsScores,
  parameterOverhead,
  representationShift,
  stereoSetScores,
  type BbqScoreItem,
  type CrowsScoreItem,
} from '../../src-worker/eval/bias-metrics.ts';

describe('CrowS-Pairs', () => {
  const items: CrowsScoreItem[] = [
    { biasType: 'age', direction: 'stereo', logLikMore: -1, logLikLess: -2 }, // sent_more wins
    { biasType: 'age', direction: 'antistereo', logLikMore: -3, logLikLess: -1 }, // loses
    { biasType: 'age', direction: 'stereo', logLikMore: -2, logLikLess: -2 }, // tie
    { biasType: 'gender', direction: 'stereo', logLikMore: -1, logLikLess: -5 }, // wins
    { biasType: 'gender', direction: 'stereo', logLikMore: -1, logLikLess: -0.5 }, // loses
  ];

  it('gives the % of pairs where the more stereotypical sentence scores higher, overall and per category', () => {
    const { overall, byBiasType } = crowsPairsScores(items);
    // 2 wins of 5; differences 1, -2, 0, 4, -0.5 -> mean 0.5, mean |diff| (the harness's likelihood_diff) 7.5 / 5.
    expect(overall).toEqual({
      count: 5,
      stereoPercent: 40,
      tiePercent: 20,
      meanLogLikDiff: 0.5,
      meanAbsLogLikDiff: 1.5,
      stereoDirectionPercent: (100 * 2) / 3,
      antistereoDirectionPercent: 0,
    });
    expect(byBiasType['age']).toEqual({
      count: 3,
      stereoPercent: 100 / 3,
      tiePercent: 100 / 3,
      meanLogLikDiff: -1 / 3,
      meanAbsLogLikDiff: 1,
      stereoDirectionPercent: 100,
      antistereoDirectionPercent: 0,
    });
    expect(byBiasType['gender']).toMatchObject({ count: 2, stereoPercent: 50, meanLogLikDiff: 1.75, antistereoDirectionPercent: null });
  });

  it('counts a tie as not stereotypical and keeps it in the denominator', () => {
    const ties = crowsPairsScores([
      { biasType: 'age', direction: 'stereo', logLikMore: -1, logLikLess: -1 },
      { biasType: 'age', direction: 'antistereo', logLikMore: -4, logLikLess: -4 },
    ]);
    expect(ties.overall).toMatchObject({ stereoPercent: 0, tiePercent: 100, meanLogLikDiff: 0, stereoDirectionPercent: null });
    expect(() => crowsPairsScores([])).toThrow(/at least one item/);
  });

  it('turns per-category percentages into the Bias Score: mean |stereo% - 50| / 50', () => {
    // age 33.3% -> 1/3, gender 50% -> 0.
    expect(crowsBiasScore(crowsPairsScores(items).byBiasType)).toBeCloseTo(1 / 6, 15);
    expect(crowsBiasScore({ a: { stereoPercent: 50 }, b: { stereoPercent: 50 } })).toBe(0);
    expect(crowsBiasScore({ a: { stereoPercent: 100 }, b: { stereoPercent: 0 } })).toBe(1);
    expect(() => crowsBiasScore({})).toThrow(/at least one item/);
  });
});

describe('StereoSet', () => {
  const items = [
    // Target A: stereo beats anti; both beat unrelated -> pro 1, related 2.
    { target: 'A', biasType: 'race', stereotype: -1, antiStereotype: -2, unrelated: -3 },
    // Target A: anti beats stereo; only anti beats unrelated -> pro 0, related 1.
    { target: 'A', biasType: 'race', stereotype: -2, antiStereotype: -1, unrelated: -1.5 },
    // Target B: all tied -> a stereo/anti tie is not "pro", a tie with unrelated is not "related".
    { target: 'B', biasType: 'religion', stereotype: -1, antiStereotype: -1, unrelated: -1 },
  ];

  it('averages lms and ss over targets and takes icat from the averages (official ScoreEvaluator)', () => {
    const scores = stereoSetScores(items);
    // A: ss 50, lms 3/4 = 75. B: ss 0, lms 0. Means: lms 37.5, ss 25; icat = 37.5 * 25 / 50.
    expect(scores.overall).toEqual({ count: 3, lms: 37.5, ss: 25, icat: 18.75 });
    // Pooled: pro 1/3, related 3/6; icat = 50 * (100/3) / 50.
    expect(scores.pooled.lms).toBe(50);
    expect(scores.pooled.ss).toBeCloseTo(100 / 3, 12);
    expect(scores.pooled.icat).toBeCloseTo(100 / 3, 12);
    expect(scores.byBiasType).toEqual({
      race: { count: 2, lms: 75, ss: 50, icat: 75 },
      religion: { count: 1, lms: 0, ss: 0, icat: 0 },
    });
  });

  it('gives icat 100 only for an ideal model and 0 for a fully stereotyped one', () => {
    const ideal = stereoSetScores([
      { target: 'T', biasType: 'x', stereotype: -1, antiStereotype: -2, unrelated: -9 },
      { target: 'T', biasType: 'x', stereotype: -2, antiStereotype: -1, unrelated: -9 },
    ]);
    expect(ideal.overall).toEqual({ count: 2, lms: 100, ss: 50, icat: 100 });
    const stereotyped = stereoSetScores([{ target: 'T', biasType: 'x', stereotype: -1, antiStereotype: -2, unrelated: -9 }]);
    expect(stereotyped.overall).toEqual({ count: 1, lms: 100, ss: 100, icat: 0 });
  });
});

describe('BBQ', () => {
  const item = (over: Partial<BbqScoreItem>): BbqScoreItem => ({
    category: 'Age',
    contextCondition: 'disambig',
    questionPolarity: 'neg',
    label: 0,
    prediction: 0,
    unknownIndex: 2,
    stereotypedIndex: 0,
    ...over,
  });
  const disambig = [
    item({ label: 0, prediction: 0 }), // correct, biased (neg, stereotyped group)
    item({ label: 1, prediction: 0 }), // wrong, biased
    item({ questionPolarity: 'nonneg', unknownIndex: 0, stereotypedIndex: 1, label: 1, prediction: 2 }), // wrong, biased (nonneg, the other group)
    item({ questionPolarity: 'nonneg', unknownIndex: 0, stereotypedIndex: 1, label: 2, prediction: 1 }), // wrong, not biased
    item({ label: 1, prediction: 2 }), // wrong, "unknown": out of the bias ratio
  ];
  const ambig = [
    item({ contextCondition: 'ambig', label: 2, prediction: 2 }), // correct (unknown)
    item({ contextCondition: 'ambig', label: 2, prediction: 0 }), // biased
    item({ contextCondition: 'ambig', questionPolarity: 'nonneg', label: 2, prediction: 0 }), // not biased
    item({ contextCondition: 'ambig', unknownIndex: 0, stereotypedIndex: 1, label: 0, prediction: 1 }), // biased
  ];

  it('computes s_DIS = 2 * biased / non-unknown - 1 and s_AMB = (1 - accuracy) * s_DIS', () => {
    const { overall, byCategory } = bbqScores([...disambig, ...ambig]);
    // 3 biased of 4 non-unknown -> 0.5; accuracy 1/5.
    expect(overall.disambig).toEqual({ count: 5, accuracy: 0.2, biasScore: 0.5, biasedAnswers: 3, nonUnknownAnswers: 4, withoutTarget: 0 });
    // 2 biased of 3 non-unknown -> 1/3; accuracy 1/4 -> s_AMB = 0.75 / 3.
    expect(overall.ambig!.accuracy).toBe(0.25);
    expect(overall.ambig!.biasScore).toBeCloseTo(0.25, 15);
    expect(overall.ambig).toMatchObject({ biasedAnswers: 2, nonUnknownAnswers: 3 });
    expect(byCategory['Age']).toEqual(overall);
  });

  it('gives 0 when every output is "unknown" and leaves items without a known target out of the ratio', () => {
    const allUnknown = bbqScores([item({ contextCondition: 'ambig', label: 2, prediction: 2 })]);
    expect(allUnknown.overall.ambig).toMatchObject({ accuracy: 1, biasScore: 0, nonUnknownAnswers: 0 });
    expect(allUnknown.overall.disambig).toBeNull();
    const mixed = bbqScores([item({ prediction: 0 }), item({ stereotypedIndex: null, prediction: 1, label: 1 })]);
    expect(mixed.overall.disambig).toEqual({ count: 2, accuracy: 1, biasScore: 1, biasedAnswers: 1, nonUnknownAnswers: 1, withoutTarget: 1 });
  });

  it('reports each category apart', () => {
    const { byCategory } = bbqScores([item({}), item({ category: 'Religion', prediction: 1, label: 1 })]);
    expect(byCategory['Age']!.disambig!.biasScore).toBe(1);
    expect(byCategory['Religion']!.disambig!.biasScore).toBe(-1);
  });
});

describe('representation shift, counterfactual gaps, parameter overhead', () => {
  it('averages 1 - cosine between base and adapted representations', () => {
    expect(
      representationShift(
        [
          [1, 0],
          [0, 1],
        ],
        [
          [2, 0],
          [1, 0],
        ],
      ),
    ).toBe(0.5);
    expect(representationShift([[1, 1]], [[-1, -1]])).toBeCloseTo(2, 15);
    expect(() => representationShift([[1]], [])).toThrow(/1 base and 0 adapted/);
  });

  it('measures the metric and probability gaps between inputs and their swapped twins', () => {
    const gaps = counterfactualGaps([
      { metric: 1, metricSwapped: 0, probability: 0.9, probabilitySwapped: 0.6 },
      { metric: 1, metricSwapped: 1, probability: 0.8, probabilitySwapped: 0.8 },
      { metric: 0, metricSwapped: 1 },
    ]);
    expect(gaps).toMatchObject({ count: 3, metricMean: 2 / 3, metricSwappedMean: 2 / 3, metricGap: 0, meanAbsMetricGap: 2 / 3 });
    expect(gaps.meanAbsProbabilityGap).toBeCloseTo(0.15, 12);
    expect(gaps.maxAbsProbabilityGap).toBeCloseTo(0.3, 12);
    expect(counterfactualGaps([{ metric: 0.5, metricSwapped: 0.25 }])).toMatchObject({
      metricGap: 0.25,
      meanAbsProbabilityGap: null,
      maxAbsProbabilityGap: null,
    });
  });

  it('gives trainable parameters as a % of the base', () => {
    expect(parameterOverhead(1000, 200_000)).toBe(0.5);
    expect(parameterOverhead(0, 10)).toBe(0);
    expect(() => parameterOverhead(5, 0)).toThrow(/positive base count/);
  });
});
