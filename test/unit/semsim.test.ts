// SemSim: the base model's pooled hidden states (and a BERT encoder folder) as the semantic encoder,
// checked against embeddings and cosines computed here by hand, and its place in the HotpotQA report.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src-worker/backend.ts';
import { readHotpotQa } from '../../src-worker/data/readers/hotpotqa.ts';
import { hotpotQaReport } from '../../src-worker/eval/metrics.ts';
import { BaseModelEncoder, loadBertSemanticEncoder, semSimScores, withSemSim, type SemanticEncoder } from '../../src-worker/eval/semsim.ts';
import { runHotpotSuite } from '../../src-worker/eval/suites.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { loadTokenizer, type TextTokenizer } from '../../src-worker/formats/tokenizer.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { tf } from '../../src-worker/tf.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');
let model: CausalLM;
let tokenizer: TextTokenizer;

beforeAll(async () => {
  await initBackend('cpu');
  model = await loadCausalLM(path.join(fixtures, 'gpt2-tiny'));
  tokenizer = await loadTokenizer(path.join(fixtures, 'gpt2-tiny'));
});
afterAll(() => model.dispose());

/** The mean over a text's tokens of the final hidden states, from a forward of that text alone. */
async function pooledByHand(text: string): Promise<number[]> {
  const ids = tokenizer.encode(text);
  const h = model.hiddenStates(tf.tensor2d([ids], [1, ids.length], 'int32'));
  const data = (await h.data()) as Float32Array;
  h.dispose();
  const C = model.config.hiddenSize;
  return Array.from({ length: C }, (_, c) => ids.reduce((s, _t, t) => s + data[t * C + c]!, 0) / ids.length);
}

function cosineByHand(a: number[], b: number[]): number {
  const dot = a.reduce((s, v, i) => s + v * b[i]!, 0);
  return dot / Math.sqrt(a.reduce((s, v) => s + v * v, 0) * b.reduce((s, v) => s + v * v, 0));
}

describe('base-model encoder', () => {
  it('embeds each text as its pooled hidden states, the same alone as in a padded batch', async () => {
    const encoder = new BaseModelEncoder(model, tokenizer);
    const texts = ['Paris', 'the capital of France', 'yes', 'Arthur Conan Doyle wrote it'];
    const embedded = await encoder.embed(texts);
    for (const [i, text] of texts.entries()) {
      const hand = await pooledByHand(text);
      hand.forEach((v, c) => expect(embedded[i]![c]).toBeCloseTo(v, 4));
    }
    // An empty prediction embeds as zeros, so it scores 0 against any answer.
    expect(Array.from((await encoder.embed(['']))[0]!).every((v) => v === 0)).toBe(true);
    encoder.dispose();
  });

  it('gives 1 for identical strings and the hand-computed cosine otherwise', async () => {
    const encoder = new BaseModelEncoder(model, tokenizer);
    const pairs = [
      { prediction: 'Arthur Conan Doyle', gold: 'Arthur Conan Doyle' },
      { prediction: 'London', gold: 'Paris' },
      { prediction: 'no', gold: 'yes' },
      { prediction: '', gold: 'yes' },
    ];
    const scores = await semSimScores(encoder, pairs);
    expect(scores[0]).toBeCloseTo(1, 6);
    for (const i of [1, 2]) {
      const hand = cosineByHand(await pooledByHand(pairs[i]!.prediction), await pooledByHand(pairs[i]!.gold));
      expect(Math.abs(scores[i]! - hand)).toBeLessThan(1e-5);
      expect(scores[i]).toBeLessThan(1 - 1e-6);
    }
    expect(scores[3]).toBe(0);
    encoder.dispose();
  });
});

describe('BERT encoder folder', () => {
  let encoder: SemanticEncoder;
  beforeAll(async () => {
    encoder = await loadBertSemanticEncoder(path.join(fixtures, 'bert-tiny'));
  });
  afterAll(() => encoder.dispose());

  it('mean-pools [CLS] text [SEP] and scores identical strings 1', async () => {
    const [same, other] = await semSimScores(encoder, [
      { prediction: 'the cat sat', gold: 'the cat sat' },
      { prediction: 'the cat sat', gold: 'a dog ran' },
    ]);
    expect(same).toBeCloseTo(1, 6);
    expect(other).toBeLessThan(1 - 1e-6);
    expect(other).toBeGreaterThan(-1);
  });
});

describe('SemSim in the HotpotQA report', () => {
  it('averages per-item SemSim overall, by type and by level, beside EM / F1', () => {
    const items = [
      { prediction: 'a', gold: 'a', type: 'bridge', level: 'easy', semsim: 1 },
      { prediction: 'b', gold: 'c', type: 'bridge', level: 'hard', semsim: 0.5 },
      { prediction: 'd', gold: 'e', type: 'comparison', level: 'hard', semsim: 0.2 },
    ];
    const report = withSemSim(hotpotQaReport(items), items);
    expect(report.overall.semsim).toBeCloseTo(1.7 / 3, 12);
    expect(report.overall.em).toBeCloseTo(1 / 3, 12);
    expect(report.byType['bridge']!.semsim).toBeCloseTo(0.75, 12);
    expect(report.byType['comparison']!.semsim).toBeCloseTo(0.2, 12);
    expect(report.byLevel['hard']!.semsim).toBeCloseTo(0.35, 12);
    expect(report.byLevel['easy']!.semsim).toBe(1);
  });

  it('runs in the suite with the base-model encoder', async () => {
    const examples = await readHotpotQa(path.join(fixtures, 'datasets', 'hotpotqa-official.json'));
    const encoder = new BaseModelEncoder(model, tokenizer);
    const r = await runHotpotSuite({
      model,
      tokenizer,
      adapters: null,
      semanticEncoder: encoder,
      examples,
      limit: 2,
      options: { maxNewTokens: 4, paragraphs: 'none' },
    });
    const direct = await semSimScores(encoder, r.items);
    r.items.forEach((item, i) => expect(item.semsim).toBeCloseTo(direct[i]!, 9));
    expect(r.report.overall.semsim).toBeCloseTo(direct.reduce((a, b) => a + b, 0) / direct.length, 9);
    const without = await runHotpotSuite({ model, tokenizer, adapters: null, examples, limit: 2, options: { maxNewTokens: 4, paragraphs: 'none' } });
    expect(without.report.overall.semsim).toBeUndefined();
    encoder.dispose();
  });
});
