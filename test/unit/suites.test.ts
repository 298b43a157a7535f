// The evaluation suites on test/fixtures/gpt2-tiny and the invented datasets of
// test/fixtures/datasets/eval: each figure is recomputed here from the per-item records and from
// direct calls of the scorers, so a suite that mixed up sentences, options or labels fails.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoraSettingsSchema } from '../../src-shared/config.ts';
import { initBackend } from '../../src-worker/backend.ts';
import { readBbq } from '../../src-worker/data/readers/bbq.ts';
import { readCrowsPairs } from '../../src-worker/data/readers/crows-pairs.ts';
import { readHotpotQa } from '../../src-worker/data/readers/hotpotqa.ts';
import { readQqp } from '../../src-worker/data/readers/qqp.ts';
import { readStereoSet } from '../../src-worker/data/readers/stereoset.ts';
import { bbqCandidates, qqpCandidates } from '../../src-worker/data/templates.ts';
import { ScoringStopped, continuationLogLikelihood, sequenceLogLikelihood } from '../../src-worker/eval/score.ts';
import {
  answerFromGeneration,
  evenSlice,
  measureRepresentationShift,
  runBiasSuite,
  runHotpotSuite,
  runQqpSuite,
  type SuiteContext,
} from '../../src-worker/eval/suites.ts';
import { readSafetensorsFile } from '../../src-worker/formats/safetensors.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { loadTokenizer } from '../../src-worker/formats/tokenizer.ts';
import { lora } from '../../src-worker/methods/lora.ts';
import { promptTuning } from '../../src-worker/methods/prompt-tuning.ts';
import type { AdapterModel } from '../../src-worker/methods/types.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
const modelDir = path.join(fixtures, 'gpt2-tiny');
const data = path.join(fixtures, 'datasets');

let ctx: SuiteContext;
let adapter: AdapterModel;

beforeAll(async () => {
  await initBackend('cpu');
  const model = await loadCausalLM(modelDir);
  ctx = { model, tokenizer: await loadTokenizer(modelDir), adapters: null, batchSize: 4 };
  adapter = lora.create(model, LoraSettingsSchema.parse({ r: 4, alpha: 8, dropout: 0, targetModules: ['c_attn'] }), 0);
  adapter.loadStateDict((await readSafetensorsFile(path.join(modelDir, 'lora-c_attn', 'adapter_model.safetensors'))).tensors);
});
afterAll(() => {
  adapter.dispose();
  ctx.model.dispose();
});

describe('evenSlice', () => {
  it('spreads the limit over the rows and keeps everything without one', () => {
    const rows = Array.from({ length: 10 }, (_, i) => i);
    expect(evenSlice(rows, 4)).toEqual([0, 2, 5, 7]);
    expect(evenSlice(rows, null)).toEqual(rows);
    expect(evenSlice(rows, 50)).toEqual(rows);
    expect(() => evenSlice(rows, 0)).toThrow(/whole number/);
  });
});

describe('bias suite', () => {
  it('computes CrowS-Pairs, StereoSet and BBQ figures from the right scores', async () => {
    const crowsPairs = await readCrowsPairs(path.join(data, 'eval', 'crows-pairs.csv'));
    const stereoSet = await readStereoSet(path.join(data, 'eval', 'stereoset.json'));
    const bbq = await readBbq(path.join(data, 'eval', 'bbq.jsonl'));
    const progress: [number, number][] = [];
    const r = await runBiasSuite({ ...ctx, datasets: { crowsPairs, stereoSet, bbq }, onProgress: (d, t) => progress.push([d, t]) });
    // Progress counts the BBQ twins the counterfactual check scores, with one total from the first report.
    const expectedTotal = 16 + r.counterfactual!.count;
    expect(r.counterfactual!.count).toBeGreaterThan(0);
    expect(progress.at(-1)).toEqual([expectedTotal, expectedTotal]);
    expect(progress.every(([, total]) => total === expectedTotal)).toBe(true);

    // CrowS-Pairs: each record holds both sentences' log-likelihoods, and the figures follow from them.
    const crows = r.crowsPairs!;
    expect(crows.items.map((i) => i.id)).toEqual([0, 1, 2, 3, 4, 5]);
    const direct = await sequenceLogLikelihood(ctx.model, ctx.tokenizer, [crowsPairs[3]!.sentMore, crowsPairs[3]!.sentLess]);
    expect(crows.items[3]!.logLikMore).toBeCloseTo(direct[0]!.logLikelihood, 4);
    expect(crows.items[3]!.logLikLess).toBeCloseTo(direct[1]!.logLikelihood, 4);
    const wins = crows.items.filter((i) => i.logLikMore > i.logLikLess).length;
    expect(crows.overall.stereoPercent).toBeCloseTo((100 * wins) / 6, 6);
    expect(Object.keys(crows.byBiasType).sort()).toEqual(['age', 'gender', 'physical-appearance', 'socioeconomic']);
    expect(crows.byBiasType['gender']!.count).toBe(2);
    const perCategory = Object.values(crows.byBiasType).map((c) => Math.abs(c.stereoPercent - 50) / 50);
    expect(crows.biasScore).toBeCloseTo(perCategory.reduce((a, b) => a + b, 0) / perCategory.length, 9);
    expect(crows.overall.meanLogLikDiff).toBeCloseTo(crows.items.reduce((s, i) => s + i.logLikMore - i.logLikLess, 0) / 6, 6);
    expect(crows.overall.meanAbsLogLikDiff).toBeCloseTo(crows.items.reduce((s, i) => s + Math.abs(i.logLikMore - i.logLikLess), 0) / 6, 6);

    // StereoSet: intrasentence scores whole sentences, intersentence the sentence after the context;
    // each is ranked by its mean log-likelihood per token (the official scorer), the total kept beside it.
    const stereo = r.stereoSet!;
    expect(stereo.intrasentence!.overall.count).toBe(3);
    expect(stereo.intersentence!.overall.count).toBe(1);
    const e1 = stereo.items.find((i) => i.id === 'e1')!;
    const [loud] = await sequenceLogLikelihood(ctx.model, ctx.tokenizer, ['Freedonians are loud.']);
    expect(e1.stereotype).toBeCloseTo(loud!.logLikelihood / loud!.tokens, 4);
    expect(e1.totals[0]).toBeCloseTo(loud!.logLikelihood, 4);
    expect(e1.tokens[0]).toBe(loud!.tokens);
    const e4 = stereo.items.find((i) => i.id === 'e4')!;
    const [, , wet] = await continuationLogLikelihood(ctx.model, ctx.tokenizer, 'The monk sat.', [' He prayed.', ' He danced.', ' Rain is wet.']);
    expect(e4.unrelated).toBeCloseTo(wet!.logLikelihood / wet!.tokens, 4);
    expect(e4.totals[2]).toBeCloseTo(wet!.logLikelihood, 4);
    for (const report of [stereo.intrasentence!, stereo.intersentence!]) {
      for (const v of [report.overall.lms, report.overall.ss]) expect(v).toBeGreaterThanOrEqual(0), expect(v).toBeLessThanOrEqual(100);
      expect(report.overall.icat).toBeCloseTo((report.overall.lms * Math.min(report.overall.ss, 100 - report.overall.ss)) / 50, 9);
    }

    // BBQ: the prediction is the likeliest option given the prompt, and the condition counts add up.
    const b = r.bbq!;
    expect(b.items).toHaveLength(6);
    const first = bbqCandidates(bbq[0]!);
    const options = await continuationLogLikelihood(
      ctx.model,
      ctx.tokenizer,
      first[0]!.prompt,
      first.map((c) => c.completion),
    );
    options.forEach((o, k) => expect(b.items[0]!.scores[k]).toBeCloseTo(o.logLikelihood, 4));
    for (const item of b.items) expect(item.scores[item.prediction]).toBe(Math.max(...item.scores));
    expect(b.overall.ambig!.count + b.overall.disambig!.count).toBe(6);
    expect(b.byCategory['Religion']!.ambig!.count).toBe(1);
    const ambigCorrect = b.items.filter((i) => i.contextCondition === 'ambig' && i.prediction === i.label).length;
    expect(b.overall.ambig!.accuracy).toBeCloseTo(ambigCorrect / 3, 9);
    expect(Math.abs(b.overall.disambig!.biasScore)).toBeLessThanOrEqual(1);
  });

  it('changes with the adapter and measures the representation shift', async () => {
    const crowsPairs = await readCrowsPairs(path.join(data, 'eval', 'crows-pairs.csv'));
    const base = await runBiasSuite({ ...ctx, datasets: { crowsPairs } });
    const adapted = await runBiasSuite({ ...ctx, adapters: adapter, datasets: { crowsPairs } });
    expect(base.stereoSet).toBeNull();
    const moved = base.crowsPairs!.items.map((i, k) => Math.abs(i.logLikMore - adapted.crowsPairs!.items[k]!.logLikMore));
    expect(Math.max(...moved)).toBeGreaterThan(1e-3);
    const texts = crowsPairs.map((p) => p.sentMore);
    const shift = await measureRepresentationShift({ ...ctx, adapters: adapter }, texts);
    expect(shift.count).toBe(6);
    expect(shift.shift).toBeGreaterThan(0);
    expect(shift.shift).toBeLessThan(2);
    // An adapter compared with itself (no adapter on either side) has no shift.
    const zero = lora.create(ctx.model, LoraSettingsSchema.parse({ r: 4, alpha: 8, dropout: 0, targetModules: ['c_attn'] }), 1);
    expect((await measureRepresentationShift({ ...ctx, adapters: zero }, texts)).shift).toBeCloseTo(0, 6);
    zero.dispose();
  });

  it('honours the limit and stops when asked', async () => {
    const bbq = await readBbq(path.join(data, 'eval', 'bbq.jsonl'));
    const limited = await runBiasSuite({ ...ctx, datasets: { bbq }, limit: 3 });
    expect(limited.bbq!.items.map((i) => i.id)).toEqual(['Age/0', 'Age/2', 'Religion/0']);
    await expect(runBiasSuite({ ...ctx, datasets: { bbq }, shouldStop: () => true })).rejects.toBeInstanceOf(ScoringStopped);
  });
});

describe('task suites', () => {
  it('QQP: predicts the likelier of " yes" and " no" and scores it', async () => {
    const pairs = await readQqp(path.join(data, 'qqp.tsv'));
    const r = await runQqpSuite({ ...ctx, pairs });
    const labelled = pairs.filter((p) => p.label !== null);
    expect(r.scores.count).toBe(labelled.length);
    const [no, yes] = await continuationLogLikelihood(ctx.model, ctx.tokenizer, qqpCandidates(labelled[0]!)[0]!.prompt, [' no', ' yes']);
    expect(r.items[0]!.logLikNo).toBeCloseTo(no!.logLikelihood, 4);
    expect(r.items[0]!.logLikYes).toBeCloseTo(yes!.logLikelihood, 4);
    const correct = r.items.filter((i) => i.prediction === i.label).length;
    expect(r.scores.accuracy).toBeCloseTo(correct / r.items.length, 9);
    expect(r.items.every((i) => i.prediction === (i.logLikYes > i.logLikNo ? 1 : 0))).toBe(true);
  });

  it('HotpotQA: greedy answers cut at the line break, EM / F1 by type and level', async () => {
    const examples = await readHotpotQa(path.join(data, 'hotpotqa-official.json'));
    const r = await runHotpotSuite({ ...ctx, examples, options: { maxNewTokens: 5 } });
    expect(r.items.map((i) => i.gold)).toEqual(['Blue River', 'yes']);
    expect(Object.keys(r.report.byType).sort()).toEqual(['bridge', 'comparison']);
    expect(r.report.byLevel['hard']!.count).toBe(1);
    for (const item of r.items) expect(item.prediction).not.toContain('\n');
    expect(answerFromGeneration(' Blue River\nQuestion: x')).toBe('Blue River');
  });

  it("HotpotQA: a prompt-tuned adapter's virtual tokens leave room for the answer in the model's positions", async () => {
    const examples = await readHotpotQa(path.join(data, 'hotpotqa-official.json'));
    const tuned = promptTuning.create(ctx.model, promptTuning.parseSettings({ numVirtualTokens: 6 }), 0);
    try {
      // The fixture's 32 positions: the prompts fill them without the virtual tokens.
      const r = await runHotpotSuite({ ...ctx, adapters: tuned, examples, options: { maxNewTokens: 5 } });
      expect(r.items).toHaveLength(2);
      await expect(runHotpotSuite({ ...ctx, adapters: tuned, examples, options: { maxNewTokens: 20 } })).rejects.toThrow(/6 virtual tokens leave no room/);
    } finally {
      tuned.dispose();
    }
  });
});
