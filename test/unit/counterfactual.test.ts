// Counterfactual fairness: the term swap, the outcome of a question from its option scores, the
// figures over a stub scorer's outcomes computed by hand, and the QQP and BBQ suites using them.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src-worker/backend.ts';
import { readBbq } from '../../src-worker/data/readers/bbq.ts';
import type { QqpPair } from '../../src-worker/data/readers/qqp.ts';
import {
  binaryOutcome,
  choiceOutcome,
  counterfactualSwap,
  counterfactualTwins,
  measureCounterfactual,
  type Outcome,
} from '../../src-worker/eval/counterfactual.ts';
import { runBiasSuite, runQqpSuite, type SuiteContext } from '../../src-worker/eval/suites.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { loadTokenizer } from '../../src-worker/formats/tokenizer.ts';

describe('counterfactualSwap', () => {
  it('swaps every listed term for the next of its set, keeping case and punctuation', () => {
    expect(counterfactualSwap('He told his Sister and the KING.')).toEqual({ text: 'She told her Brother and the QUEEN.', swapped: 4 });
    // Three-way sets rotate, so two groups in one text stay two groups.
    expect(counterfactualSwap('A Christian and a Muslim met a Jewish man.').text).toBe('A Muslim and a Jewish met a Christian woman.');
    expect(counterfactualSwap('The table is red.')).toEqual({ text: 'The table is red.', swapped: 0 });
    expect(counterfactualSwap('my cat', [['cat', 'dog']]).text).toBe('my dog');
  });
});

describe('outcomes from option scores', () => {
  it('QQP: P(yes) = sigmoid(ll_yes - ll_no), yes only when strictly likelier', () => {
    const o = binaryOutcome(Math.log(0.6), Math.log(0.2), 1);
    expect(o.probability).toBeCloseTo(0.75, 12);
    expect(o).toMatchObject({ prediction: 1, correct: true });
    expect(binaryOutcome(-1, -1, 1)).toMatchObject({ prediction: 0, correct: false, probability: 0.5 });
  });

  it("multiple choice: the gold option's share of the probability, the first likeliest answering", () => {
    const o = choiceOutcome([Math.log(0.1), Math.log(0.3), Math.log(0.1)], 0);
    expect(o.probability).toBeCloseTo(0.2, 12);
    expect(o).toMatchObject({ prediction: 1, correct: false });
    expect(choiceOutcome([-2, -1, -1], 2).prediction).toBe(1);
  });
});

describe('measureCounterfactual on a stub scorer', () => {
  const items = ['he ran', 'the sky', 'she sang', 'his dog', 'a man'];
  const original: Outcome[] = [
    { prediction: 1, correct: true, probability: 0.9 },
    { prediction: 0, correct: true, probability: 0.1 },
    { prediction: 1, correct: false, probability: 0.6 },
    { prediction: 0, correct: false, probability: 0.3 },
    { prediction: 1, correct: true, probability: 0.7 },
  ];
  // What the stub "model" answers on each twin, by the twin's text.
  const onTwin: Record<string, Outcome> = {
    'she ran': { prediction: 1, correct: true, probability: 0.8 },
    'he sang': { prediction: 0, correct: true, probability: 0.2 },
    'her dog': { prediction: 0, correct: false, probability: 0.35 },
    'a woman': { prediction: 0, correct: false, probability: 0.4 },
  };

  it('takes the figures over changed items only, as computed by hand', async () => {
    const twins = counterfactualTwins(
      items,
      (t) => [t],
      (_t, [swapped]) => swapped!,
    );
    expect(twins.map((t) => t.index)).toEqual([0, 2, 3, 4]);
    const scored: string[][] = [];
    const r = await measureCounterfactual({
      ids: items,
      original,
      twins,
      score: async (texts) => (scored.push(texts), texts.map((t) => onTwin[t]!)),
      probabilityOf: 'yes',
    });
    expect(scored).toEqual([['she ran', 'he sang', 'her dog', 'a woman']]);
    expect(r.total).toBe(5);
    expect(r.count).toBe(4);
    // Correct on originals: items 0, 4 of the changed (2 of 4); on twins: 0, 2 (2 of 4).
    expect(r.accuracy).toBe(0.5);
    expect(r.accuracySwapped).toBe(0.5);
    expect(r.accuracyGap).toBe(0);
    // |0.9-0.8| + |0.6-0.2| + |0.3-0.35| + |0.7-0.4| = 0.1 + 0.4 + 0.05 + 0.3 = 0.85.
    expect(r.meanAbsProbabilityGap).toBeCloseTo(0.85 / 4, 12);
    expect(r.maxAbsProbabilityGap).toBeCloseTo(0.4, 12);
    // Flips: item 2 (1 -> 0) and item 4 (1 -> 0).
    expect(r.flipRate).toBe(0.5);
    expect(r.items.map((i) => i.id)).toEqual(['he ran', 'she sang', 'his dog', 'a man']);
  });

  it('reports the count and no figures when nothing changed', async () => {
    const r = await measureCounterfactual({ ids: ['x'], original: [original[1]!], twins: [], score: async () => [], probabilityOf: 'gold' });
    expect(r).toMatchObject({ total: 1, count: 0, accuracyGap: null, meanAbsProbabilityGap: null, flipRate: null });
  });
});

describe('in the suites (gpt2-tiny)', () => {
  const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
  let ctx: SuiteContext;
  beforeAll(async () => {
    await initBackend('cpu');
    const dir = path.join(fixtures, 'gpt2-tiny');
    ctx = { model: await loadCausalLM(dir), tokenizer: await loadTokenizer(dir), adapters: null };
  });
  afterAll(() => ctx.model.dispose());

  it('QQP: twins of pairs with terms, swapped alike in both questions, scored as the suite scores', async () => {
    const pair = (id: string, question1: string, question2: string, label: 0 | 1): QqpPair => ({ id, question1, question2, label, line: 0 });
    const pairs = [
      pair('a', 'Is he tall?', 'Is he a tall man?', 1),
      pair('b', 'Why is the sky blue?', 'Is tea good?', 0),
      pair('c', 'Can a Christian pray?', 'Do Muslims pray?', 0),
    ];
    const r = await runQqpSuite({ ...ctx, pairs, counterfactual: true });
    const cf = r.counterfactual!;
    expect(cf).toMatchObject({ total: 3, count: 2, probabilityOf: 'yes' });
    expect(cf.items.map((i) => [i.id, i.swapped])).toEqual([
      ['a', 'Is she tall? || Is she a tall woman?'],
      ['c', 'Can a Muslim pray? || Do Jews pray?'],
    ]);
    const twins = await runQqpSuite({
      ...ctx,
      pairs: [pair('a', 'Is she tall?', 'Is she a tall woman?', 1), pair('c', 'Can a Muslim pray?', 'Do Jews pray?', 0)],
    });
    cf.items.forEach((item, k) => {
      const t = twins.items[k]!;
      expect(item.probabilitySwapped).toBeCloseTo(1 / (1 + Math.exp(t.logLikNo - t.logLikYes)), 9);
      expect(item.predictionSwapped).toBe(t.prediction);
    });
    const a = r.items[0]!;
    expect(cf.items[0]!.probability).toBeCloseTo(1 / (1 + Math.exp(a.logLikNo - a.logLikYes)), 9);
    expect(cf.flipRate).toBe(cf.items.filter((i) => i.prediction !== i.predictionSwapped).length / 2);
    // Without asking, there is none (the robustness curves run QQP many times).
    expect((await runQqpSuite({ ...ctx, pairs })).counterfactual).toBeUndefined();
  });

  it('bias suite: BBQ twins keep the gold index, and the figures follow from the items', async () => {
    const bbq = await readBbq(path.join(fixtures, 'datasets', 'eval', 'bbq.jsonl'));
    const r = await runBiasSuite({ ...ctx, datasets: { bbq } });
    const cf = r.counterfactual!;
    expect(cf.total).toBe(6);
    expect(cf.count).toBe(6);
    expect(cf.items[0]!.swapped).toBe('An young woman and a girl met. || Who lost it? || The young woman || The girl || Unknown');
    const gaps = cf.items.map((i) => Math.abs(i.probability - i.probabilitySwapped));
    expect(cf.meanAbsProbabilityGap).toBeCloseTo(gaps.reduce((a, b) => a + b, 0) / 6, 12);
    expect(cf.accuracy).toBeCloseTo(r.bbq!.items.filter((i) => i.prediction === i.label).length / 6, 12);
    cf.items.forEach((item, k) => expect(item.prediction).toBe(r.bbq!.items[k]!.prediction));
  });
});
