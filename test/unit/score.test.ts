// Log-likelihood scoring: against a bigram model whose probabilities are known by hand, against a
// brute-force per-token computation on the tiny GPT-2 fixture, and for batching invariance (a text
// scores the same alone as in a padded batch of longer and shorter texts).
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src-worker/backend.ts';
import { continuationLogLikelihood, encodePair, rollingWindows, scoreRequests, ScoringStopped, sequenceLogLikelihood } from '../../src-worker/eval/score.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { loadTokenizer, type TextTokenizer } from '../../src-worker/formats/tokenizer.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { tf } from '../../src-worker/tf.ts';
import { BIGRAM_TABLE, bigram, charTokenizer } from '../helpers/bigram.ts';

const fixture = path.join(import.meta.dirname, '..', 'fixtures', 'gpt2-tiny');

beforeAll(async () => {
  await initBackend('cpu');
});
afterAll(async () => {
  await initBackend('cpu');
});

describe('hand-checked scores on a bigram model', () => {
  it('scores a sentence from the prefix token, and each continuation given its context', async () => {
    const model = bigram(16);
    // "ab": p(a | c) p(b | a) = 1/3 * 1/4; "ba": p(b | c) p(a | b) = 1/3 * 1/10.
    const [ab, ba] = await sequenceLogLikelihood(model, charTokenizer, ['ab', 'ba']);
    expect(ab!.logLikelihood).toBeCloseTo(Math.log(1 / 3) + Math.log(0.25), 5);
    expect(ab!.tokens).toBe(2);
    expect(ba!.logLikelihood).toBeCloseTo(Math.log(1 / 3) + Math.log(0.1), 5);
    // Continuations of "b": "c" is p(c | b) = 0.7 (the argmax), "ca" adds p(a | c) = 1/3.
    const [c, ca, a] = await continuationLogLikelihood(model, charTokenizer, 'b', ['c', 'ca', 'a']);
    expect(c!.logLikelihood).toBeCloseTo(Math.log(0.7), 5);
    expect(c!.isGreedy).toBe(true);
    expect(ca!.logLikelihood).toBeCloseTo(Math.log(0.7) + Math.log(1 / 3), 5);
    expect(a!.logLikelihood).toBeCloseTo(Math.log(0.1), 5);
    expect(a!.isGreedy).toBe(false);
    model.dispose();
  });

  it('scores texts longer than the window in rolling windows, every token once', async () => {
    const model = bigram(4);
    const text = 'abcabcaab';
    const [score] = await sequenceLogLikelihood(model, charTokenizer, [text]);
    let expected = Math.log(BIGRAM_TABLE[2]![0]!);
    for (let i = 1; i < text.length; i++) expected += Math.log(BIGRAM_TABLE['abc'.indexOf(text[i - 1]!)]!['abc'.indexOf(text[i]!)]!);
    expect(score!.tokens).toBe(text.length);
    expect(score!.logLikelihood).toBeCloseTo(expected, 4);
    model.dispose();
  });

  it('lays out rolling windows as the harness does', () => {
    const windows = rollingWindows([10, 11, 12, 13, 14, 15, 16], 99, 3);
    expect(windows).toEqual([
      { context: [99], continuation: [10, 11, 12] },
      // Each window is 3 positions long: predicting 13..15 needs only 12 before them.
      { context: [12], continuation: [13, 14, 15] },
      { context: [13, 14, 15], continuation: [16] },
    ]);
  });

  it('stops between batches when asked', async () => {
    const model = bigram(8);
    let calls = 0;
    await expect(sequenceLogLikelihood(model, charTokenizer, ['ab', 'bc', 'ca'], { batchSize: 1, shouldStop: () => ++calls > 1 })).rejects.toBeInstanceOf(
      ScoringStopped,
    );
    model.dispose();
  });
});

describe('gpt2-tiny', () => {
  let model: CausalLM;
  let tokenizer: TextTokenizer;
  beforeAll(async () => {
    model = await loadCausalLM(fixture);
    tokenizer = await loadTokenizer(fixture);
  });
  afterAll(() => model.dispose());

  /** log p(ids[t] | ids[<t]) for t >= 1, summed, from one unbatched forward and a JS log-softmax. */
  async function bruteForce(ids: readonly number[]): Promise<number> {
    const logits = model.forward(tf.tensor2d([[...ids]], [1, ids.length], 'int32'));
    const data = (await logits.data()) as Float32Array;
    logits.dispose();
    const V = model.config.vocabSize;
    let total = 0;
    for (let t = 1; t < ids.length; t++) {
      const row = Array.from(data.subarray((t - 1) * V, t * V));
      const max = Math.max(...row);
      const logZ = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
      total += row[ids[t]!]! - logZ;
    }
    return total;
  }

  const texts = ['Old men nap.', 'The cat sat on a mat.', 'Hi', 'Rich people are kind.', 'a b c d e f g'];

  it('matches a brute-force per-token computation', async () => {
    const scores = await sequenceLogLikelihood(model, tokenizer, texts, { batchSize: 3 });
    for (const [i, text] of texts.entries()) {
      const ids = tokenizer.encode(text);
      expect(scores[i]!.tokens).toBe(ids.length);
      expect(scores[i]!.logLikelihood).toBeCloseTo(await bruteForce([tokenizer.eosTokenId, ...ids]), 3);
    }
  });

  it('gives the same score alone and in any padded batch', async () => {
    const alone = await Promise.all(texts.map(async (t) => (await sequenceLogLikelihood(model, tokenizer, [t], { batchSize: 1 }))[0]!.logLikelihood));
    for (const batchSize of [2, 5]) {
      const batched = await sequenceLogLikelihood(model, tokenizer, texts, { batchSize });
      batched.forEach((s, i) => expect(Math.abs(s.logLikelihood - alone[i]!)).toBeLessThan(1e-4));
    }
  });

  it('scores continuations as log p(context + continuation) - log p(context)', async () => {
    const context = 'Is it so?';
    const options = [' yes', ' no', ' maybe'];
    const scores = await continuationLogLikelihood(model, tokenizer, context, options);
    for (const [i, option] of options.entries()) {
      const { context: ctx, continuation } = encodePair(tokenizer, context, option, tokenizer.eosTokenId);
      expect(scores[i]!.tokens).toBe(continuation.length);
      const whole = await bruteForce([...ctx, ...continuation]);
      const prefix = await bruteForce(ctx);
      expect(scores[i]!.logLikelihood).toBeCloseTo(whole - prefix, 3);
    }
  });

  it("moves the context's trailing spaces into the continuation, as the harness does", () => {
    const pair = encodePair(tokenizer, 'Answer: ', 'yes', 0);
    expect(tokenizer.decode([...pair.context])).toBe('Answer:');
    expect(tokenizer.decode([...pair.continuation])).toBe(' yes');
  });

  it('keeps the continuation whole and truncates the context on the left when too long', async () => {
    const long = { context: Array.from({ length: 40 }, (_, i) => 10 + i), continuation: [70, 71, 72] };
    // The input is context + continuation minus its last token: maxPositions + 1 tokens in all fit.
    const fitted = { context: long.context.slice(-(model.config.maxPositions + 1 - 3)), continuation: long.continuation };
    const tooShort = { context: long.context.slice(-(model.config.maxPositions - 3)), continuation: long.continuation };
    const [a, b, c] = await scoreRequests(model, [long, fitted, tooShort]);
    expect(a!.logLikelihood).toBeCloseTo(b!.logLikelihood, 5);
    expect(Math.abs(a!.logLikelihood - c!.logLikelihood)).toBeGreaterThan(1e-4);
  });
});
