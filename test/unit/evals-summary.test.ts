// The summary figures an evaluation row keeps, and the CLI's tables of them.
import { describe, expect, it } from 'vitest';
import type { EvalResult } from '../../src-shared/eval.ts';
import { summaryTables } from '../../src-main/cli/eval.ts';
import { summarize } from '../../src-main/evals.ts';

const base = {
  modelDir: '/m',
  adapter: null,
  backend: { name: 'cpu' as const, adapter: 'JavaScript' },
  seed: 0,
  slices: [],
  startedAt: '2025-01-01T00:00:00.000Z',
  finishedAt: '2025-01-01T00:00:01.000Z',
  durationMs: 1000,
  notes: [],
};
const scores = { tp: 3, fp: 1, tn: 4, fn: 2, count: 10, accuracy: 0.7, precision: 0.75, recall: 0.6, f1: 0.6667, mcc: 0.4 };

describe('summarize', () => {
  it("keeps a qqp result's aggregate scores and drops its items", () => {
    const result: EvalResult = { ...base, suite: 'qqp', qqp: { scores, items: [{ id: 'q1', label: 1, prediction: 0, logLikYes: -2, logLikNo: -1 }] } };
    const summary = summarize(result);
    expect(summary['qqp.scores.f1']).toBe(0.6667);
    expect(summary['qqp.scores.tp']).toBe(3);
    expect(Object.keys(summary).every((k) => k.startsWith('qqp.scores.'))).toBe(true);
  });

  it('keeps SemSim, counterfactual gaps and parameter overhead, but not their items', () => {
    const qa = { count: 2, em: 0.5, f1: 0.6, precision: 0.6, recall: 0.6, semsim: 0.8 };
    const hotpot: EvalResult = {
      ...base,
      suite: 'hotpotqa',
      hotpotqa: {
        report: { overall: qa, byType: { bridge: qa }, byLevel: {} },
        items: [{ id: 'h', type: 'bridge', level: null, gold: 'a', prediction: 'a', semsim: 1 }],
      },
    };
    expect(summarize(hotpot)).toMatchObject({ 'hotpotqa.report.overall.semsim': 0.8, 'hotpotqa.report.byType.bridge.semsim': 0.8 });
    const counterfactual = {
      total: 10,
      count: 2,
      probabilityOf: 'yes' as const,
      accuracy: 0.5,
      accuracySwapped: 0,
      accuracyGap: 0.5,
      meanAbsProbabilityGap: 0.25,
      maxAbsProbabilityGap: 0.4,
      flipRate: 0.5,
      items: [{ id: 'q1', swapped: 'x', prediction: 1, predictionSwapped: 0, correct: true, correctSwapped: false, probability: 0.7, probabilitySwapped: 0.3 }],
    };
    const qqp = summarize({ ...base, suite: 'qqp', qqp: { scores, items: [], counterfactual } });
    expect(qqp['qqp.counterfactual.meanAbsProbabilityGap']).toBe(0.25);
    expect(qqp['qqp.counterfactual.flipRate']).toBe(0.5);
    expect(qqp['qqp.counterfactual.count']).toBe(2);
    expect(Object.keys(qqp).some((k) => k.includes('items'))).toBe(false);
    const bias = summarize({
      ...base,
      suite: 'bias',
      bias: {
        crowsPairs: null,
        stereoSet: null,
        bbq: null,
        representationShift: null,
        counterfactual: { ...counterfactual, probabilityOf: 'gold' },
        parameterOverhead: { trainable: 10, base: 1000, percent: 1 },
      },
    });
    expect(bias).toMatchObject({ 'counterfactual.accuracyGap': 0.5, 'parameterOverhead.percent': 1, 'parameterOverhead.trainable': 10 });
  });

  it("keeps each corpus's perplexity figures under its name, without the per-document items", () => {
    const lm = {
      count: 2,
      tokens: 40,
      words: 10,
      bytes: 50,
      loss: 2,
      perplexity: Math.exp(2),
      wordPerplexity: Math.exp(8),
      bytePerplexity: Math.exp(1.6),
      bitsPerByte: 1.6 / Math.LN2,
    };
    const summary = summarize({
      ...base,
      suite: 'perplexity',
      perplexity: { text: { ...lm, items: [{ id: 'line-1', tokens: 20, logLikelihood: -40, loss: 2 }] }, oasst1: null },
    });
    expect(summary['perplexity.text.perplexity']).toBe(Math.exp(2));
    expect(summary['perplexity.text.bitsPerByte']).toBe(1.6 / Math.LN2);
    expect(Object.keys(summary)).toHaveLength(9);
    expect(Object.keys(summary).every((k) => k.startsWith('perplexity.text.'))).toBe(true);
  });

  it('names robustness curves by family and level, with the adapter beside the base model', () => {
    const result: EvalResult = {
      ...base,
      suite: 'robustness',
      robustness: {
        task: 'qqp',
        primaryMetric: 'accuracy',
        seed: 0,
        levels: [0, 0.2],
        families: ['typo'],
        count: 10,
        original: { base: { accuracy: 0.7 }, adapter: { accuracy: 0.8 } },
        curves: [{ family: 'typo', level: 0.2, base: { accuracy: 0.5 }, adapter: { accuracy: 0.75 } }],
        worstCase: [{ level: 0.2, base: { family: 'typo', value: 0.5 }, adapter: { family: 'typo', value: 0.75 } }],
        changes: [{ id: 'q1', family: 'typo', level: 0.2, input: 'x', base: { original: 1, perturbed: 0 }, adapter: null }],
      },
    };
    expect(summarize(result)).toEqual({
      'robustness.original.base.accuracy': 0.7,
      'robustness.original.adapter.accuracy': 0.8,
      'robustness.curves.typo@0.2.base.accuracy': 0.5,
      'robustness.curves.typo@0.2.adapter.accuracy': 0.75,
      'robustness.worstCase@0.2.base': 0.5,
      'robustness.worstCase@0.2.adapter': 0.75,
    });
  });
});

describe('summaryTables', () => {
  it('prints one table per dataset with a row per group and a column per figure', () => {
    const lines = summaryTables({
      'stereoSet.intrasentence.overall.lms': 90.5,
      'stereoSet.intrasentence.overall.ss': 60,
      'stereoSet.intrasentence.overall.icat': 72.4,
      'crowsPairs.byBiasType.age.stereoPercent': 55.25,
      'crowsPairs.biasScore': 3,
    });
    expect(lines).toEqual([
      'stereoSet:',
      '                           lms  ss   icat',
      '  intrasentence.overall  90.50  60  72.40',
      '',
      'crowsPairs:',
      '                  stereoPercent  biasScore',
      '  byBiasType.age          55.25          -',
      '  overall                     -          3',
    ]);
  });
});
