import { describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import {
  classificationScores,
  confusionMatrix,
  cosineSimilarity,
  hotpotExactMatch,
  hotpotF1,
  hotpotQaReport,
  languageModelScores,
  matthewsCorrelation,
  normalizeAnswer,
  semSim,
} from '../../src-worker/eval/metrics.ts';

describe('normalizeAnswer (HotpotQA / SQuAD normalize_answer)', () => {
  // Expected strings are what hotpot_evaluate_v1.py's normalize_answer returns for each input.
  const cases: [string, string][] = [
    ['The Eiffel Tower', 'eiffel tower'],
    ['  a   cat,  AN apple; the end. ', 'cat apple end'],
    ['Theatre of the Absurd', 'theatre of absurd'],
    // Punctuation goes before articles: "an-other" becomes one word, "the_the" too.
    ['an-other', 'another'],
    ['the_the', 'thethe'],
    ['(a) (b) (c)', 'b c'],
    ["don't", 'dont'],
    ['1,000 dollars', '1000 dollars'],
    // Only ASCII punctuation is removed; Unicode letters count as word characters for \b.
    ["Ångström's theory", 'ångströms theory'],
    ['über the café', 'über café'],
    ['«the» – a dash', '« » – dash'],
    ['the3', 'the3'],
    ['3the', '3the'],
    // Python's str.split() whitespace: em space, ideographic space, \x1c and NEL all split.
    ['a\u2003b\u3000c', 'b c'],
    ['x\u001cy', 'x y'],
    ['\u0085the\u0085', ''],
    ['A.', ''],
    ['', ''],
  ];
  it.each(cases)('%j -> %j', (input, expected) => {
    expect(normalizeAnswer(input)).toBe(expected);
  });
});

describe('HotpotQA F1 and EM', () => {
  it('scores token overlap: precision, recall and their harmonic mean', () => {
    // pred {cat, sat}, gold {cat, sat, down}: P = 1, R = 2/3, F1 = 0.8.
    expect(hotpotF1('the cat sat', 'cat sat down')).toEqual({ f1: 0.8, precision: 1, recall: 2 / 3 });
    expect(hotpotF1('New York City', 'new york').f1).toBeCloseTo(0.8, 12);
    // Bags of tokens, so order and punctuation do not matter.
    expect(hotpotF1('Barack Obama', 'Obama, Barack').f1).toBe(1);
    // A repeated token counts once per gold occurrence: P = 1/3, R = 1.
    expect(hotpotF1('cat cat cat', 'cat')).toEqual({ f1: 0.5, precision: 1 / 3, recall: 1 });
    expect(hotpotF1('the the cat cat', 'cat the cat').f1).toBe(1);
  });

  it('gives yes / no / noanswer credit only for an exact normalized match', () => {
    expect(hotpotF1('Yes.', 'yes').f1).toBe(1);
    expect(hotpotF1('yes', 'no').f1).toBe(0);
    // "yes it is" shares the token "yes" with the gold, but a yes/no gold allows no partial credit.
    expect(hotpotF1('yes it is', 'yes')).toEqual({ f1: 0, precision: 0, recall: 0 });
    expect(hotpotF1('Paris', 'yes').f1).toBe(0);
    expect(hotpotF1('no', 'no answer').f1).toBe(0);
    expect(hotpotF1('noanswer', 'No answer').f1).toBe(0);
  });

  it('handles empty answers as the official script does: EM 1 and F1 0 when both are empty', () => {
    expect(hotpotExactMatch('', '')).toBe(true);
    expect(hotpotF1('', '')).toEqual({ f1: 0, precision: 0, recall: 0 });
    // Articles alone normalize to the empty string.
    expect(hotpotExactMatch('a an the', 'The')).toBe(true);
    expect(hotpotF1('a an the', 'the').f1).toBe(0);
    expect(hotpotF1('', 'Paris').f1).toBe(0);
    expect(hotpotF1('Paris', '').f1).toBe(0);
    expect(hotpotExactMatch('Paris', '')).toBe(false);
  });

  it('reports means overall and by question type and level', () => {
    const report = hotpotQaReport([
      { prediction: 'Paris', gold: 'paris', type: 'bridge', level: 'hard' }, // EM 1, F1 1
      { prediction: 'the cat sat', gold: 'cat sat down', type: 'bridge', level: 'easy' }, // EM 0, F1 0.8
      { prediction: 'no', gold: 'yes', type: 'comparison', level: 'hard' }, // EM 0, F1 0
      { prediction: 'yes', gold: 'yes', type: null, level: null }, // EM 1, F1 1: counted overall only
    ]);
    expect(report.overall).toEqual({ count: 4, em: 0.5, f1: 0.7, precision: 0.75, recall: (1 + 2 / 3 + 0 + 1) / 4 });
    expect(report.byType['bridge']).toEqual({ count: 2, em: 0.5, f1: 0.9, precision: 1, recall: (1 + 2 / 3) / 2 });
    expect(report.byType['comparison']).toEqual({ count: 1, em: 0, f1: 0, precision: 0, recall: 0 });
    expect(Object.keys(report.byLevel).sort()).toEqual(['easy', 'hard']);
    expect(report.byLevel['hard']!.f1).toBe(0.5);
    expect(() => hotpotQaReport([])).toThrow(WorkbenchError);
  });
});

describe('SemSim', () => {
  it('is the mean cosine similarity of prediction and gold embeddings', () => {
    expect(cosineSimilarity([1, 0], [2, 0])).toBe(1);
    expect(cosineSimilarity([1, 0], [0, 3])).toBe(0);
    expect(cosineSimilarity([1, 0], [-1, 0])).toBe(-1);
    expect(cosineSimilarity([1, 1], [1, 0])).toBeCloseTo(Math.SQRT1_2, 15);
    const result = semSim([[1, 0], [1, 1], new Float32Array([0, 2])], [[3, 0], [1, 0], new Float32Array([0, 1])]);
    expect(result.perItem[1]).toBeCloseTo(Math.SQRT1_2, 7);
    expect(result.mean).toBeCloseTo((1 + Math.SQRT1_2 + 1) / 3, 7);
  });

  it('gives 0 for a zero vector and refuses mismatched inputs', () => {
    expect(cosineSimilarity([0, 0], [1, 2])).toBe(0);
    expect(() => cosineSimilarity([1], [1, 2])).toThrow(/length 1 and 2/);
    expect(() => semSim([[1]], [])).toThrow(/1 predictions for 0 answers/);
    expect(() => semSim([], [])).toThrow(/at least one item/);
  });
});

describe('classification scores (QQP)', () => {
  it('computes accuracy, positive-class F1 and MCC from the confusion matrix', () => {
    const predictions = [1, 1, 0, 0, 1, 0, 1, 0] as const;
    const labels = [1, 0, 0, 1, 1, 0, 1, 0] as const;
    expect(confusionMatrix(predictions, labels)).toEqual({ tp: 3, fp: 1, tn: 3, fn: 1 });
    // MCC = (3*3 - 1*1) / sqrt(4 * 4 * 4 * 4) = 8 / 16.
    expect(classificationScores(predictions, labels)).toEqual({
      tp: 3,
      fp: 1,
      tn: 3,
      fn: 1,
      count: 8,
      accuracy: 0.75,
      precision: 0.75,
      recall: 0.75,
      f1: 0.75,
      mcc: 0.5,
    });
  });

  it('matches MCC worked by hand on an unbalanced matrix', () => {
    // (5*3 - 2*1) / sqrt(7 * 6 * 5 * 4) = 13 / sqrt(840)
    expect(matthewsCorrelation({ tp: 5, fp: 2, tn: 3, fn: 1 })).toBeCloseTo(0.4485426135725303, 15);
    expect(matthewsCorrelation({ tp: 0, fp: 4, tn: 0, fn: 4 })).toBe(-1);
  });

  it('gives MCC 0 when a margin is empty and F1 0 without true positives', () => {
    // Always "not duplicate": TP + FP = 0.
    const allNegative = classificationScores([0, 0, 0, 0], [1, 0, 1, 0]);
    expect(allNegative).toMatchObject({ accuracy: 0.5, precision: 0, recall: 0, f1: 0, mcc: 0 });
    // Only one class in the labels and the predictions: TN + FN = 0.
    expect(classificationScores([true, true], [true, true])).toMatchObject({ accuracy: 1, f1: 1, mcc: 0 });
    expect(matthewsCorrelation({ tp: 0, fp: 0, tn: 0, fn: 0 })).toBe(0);
    expect(() => classificationScores([], [])).toThrow(/at least one item/);
    expect(() => classificationScores([1], [1, 0])).toThrow(/1 predictions for 2 labels/);
  });
});

describe('language-model loss and perplexity', () => {
  it('pools token NLLs over texts (not a mean of per-text means) and exponentiates', () => {
    // (1 + 6) / (1 + 3) = 1.75; a mean of per-text losses would give (1 + 2) / 2 = 1.5.
    const scores = languageModelScores([
      { nllSum: 1, tokens: 1 },
      { nllSum: 6, tokens: 3 },
    ]);
    expect(scores.tokens).toBe(4);
    expect(scores.loss).toBe(1.75);
    expect(scores.perplexity).toBeCloseTo(5.754602676005731, 12);
  });

  it('gives perplexity V for a uniform model over V tokens', () => {
    expect(languageModelScores([{ nllSum: 10 * Math.log(50), tokens: 10 }]).perplexity).toBeCloseTo(50, 10);
  });

  it('refuses an empty slice and malformed counts', () => {
    expect(() => languageModelScores([{ nllSum: 0, tokens: 0 }])).toThrow(/at least one scored token/);
    expect(() => languageModelScores([{ nllSum: NaN, tokens: 1 }])).toThrow(/must be finite/);
    expect(() => languageModelScores([{ nllSum: 1, tokens: 1.5 }])).toThrow(/tokens a count/);
  });
});
