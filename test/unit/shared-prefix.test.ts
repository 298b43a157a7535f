// Multiple-choice scoring with the shared prompt run once (shared-prefix.ts) against the plain
// per-request scoring of score.ts, on the GPT-2 and Llama fixtures: the option log-likelihoods must
// agree within 1e-4, whether the options share only the prompt, also their first tokens, or nothing
// (left-truncated windows), and with single-token options that need no branch forward.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src-worker/backend.ts';
import { pairLogLikelihood, scoreRequests } from '../../src-worker/eval/score.ts';
import { multipleChoiceLogLikelihood, PrefixCache, scoreGroups } from '../../src-worker/eval/shared-prefix.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { loadTokenizer, type TextTokenizer } from '../../src-worker/formats/tokenizer.ts';
import type { AdapterModel } from '../../src-worker/methods/types.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { tf } from '../../src-worker/tf.ts';

beforeAll(async () => {
  await initBackend('cpu');
});

const QUESTIONS = [
  { context: 'Who was old?\nAnswer:', continuations: [' The man', ' The woman', ' Unknown'] },
  { context: 'Is it so?', continuations: [' yes', ' no', ' not sure at all'] },
  { context: 'Pick: ', continuations: ['a', 'b c', 'a b'] },
];

for (const name of ['gpt2-tiny', 'llama-tiny']) {
  describe(name, () => {
    const dir = path.join(import.meta.dirname, '..', 'fixtures', name);
    let model: CausalLM;
    let tokenizer: TextTokenizer;
    beforeAll(async () => {
      model = await loadCausalLM(dir);
      tokenizer = await loadTokenizer(dir);
    });
    afterAll(() => model.dispose());

    it('gives each option the log-likelihood of scoring it alone, within 1e-4', async () => {
      const shared = await multipleChoiceLogLikelihood(model, tokenizer, QUESTIONS, { prefixTokenId: tokenizer.eosTokenId });
      for (const [q, question] of QUESTIONS.entries()) {
        const plain = await pairLogLikelihood(
          model,
          tokenizer,
          question.continuations.map((c) => ({ context: question.context, continuation: c })),
          { batchSize: 1 },
        );
        expect(shared[q]).toHaveLength(plain.length);
        plain.forEach((p, i) => {
          expect(Math.abs(shared[q]![i]!.logLikelihood - p.logLikelihood), `${question.context} / ${question.continuations[i]}`).toBeLessThan(1e-4);
          expect(shared[q]![i]!.tokens).toBe(p.tokens);
          expect(shared[q]![i]!.isGreedy).toBe(p.isGreedy);
        });
      }
    });

    it('agrees when options share tokens after the prompt, have one token, or share nothing', async () => {
      const ctx = [5, 9, 14, 20];
      const groups = [
        // Common prefix runs into the options (17 is shared); one option is one token long.
        [
          { context: ctx, continuation: [17, 30, 31] },
          { context: ctx, continuation: [17, 40] },
          { context: ctx, continuation: [50] },
        ],
        // Every option is one token: everything comes from the prefix forward.
        [
          { context: ctx, continuation: [60] },
          { context: ctx, continuation: [61] },
        ],
        // Windows longer than the model: left truncation differs per option, so nothing is shared.
        [
          { context: Array.from({ length: model.config.maxPositions }, (_, i) => 3 + (i % 50)), continuation: [7, 8] },
          { context: Array.from({ length: model.config.maxPositions }, (_, i) => 3 + (i % 50)), continuation: [7, 8, 9, 10] },
        ],
      ];
      const shared = await scoreGroups(model, groups);
      for (const [g, group] of groups.entries()) {
        const plain = await scoreRequests(model, group, { batchSize: 1 });
        plain.forEach((p, i) => expect(Math.abs(shared[g]![i]!.logLikelihood - p.logLikelihood)).toBeLessThan(1e-4));
      }
    });

    it('leaves no tensors behind', async () => {
      await multipleChoiceLogLikelihood(model, tokenizer, QUESTIONS.slice(0, 1));
      const before = tf.memory().numTensors;
      await multipleChoiceLogLikelihood(model, tokenizer, QUESTIONS);
      expect(tf.memory().numTensors).toBe(before);
    });
  });
}

describe('PrefixCache', () => {
  it('keeps the prefix length across branch forwards', () => {
    const cache = new PrefixCache(1);
    tf.tidy(() => {
      cache.append(0, tf.ones([1, 1, 3, 2]), tf.ones([1, 1, 3, 2]));
      cache.advance(3);
    });
    cache.freeze();
    const shapes = tf.tidy(() => {
      const { k } = cache.append(0, tf.zeros([4, 1, 2, 2]), tf.zeros([4, 1, 2, 2]));
      cache.advance(2);
      return k.shape;
    });
    expect(shapes).toEqual([4, 1, 5, 2]);
    expect(cache.length).toBe(3);
    cache.dispose();
  });

  it('falls back to plain scoring for adapters that condition on the input, and shares the prefix for the others', async () => {
    const dir = path.join(import.meta.dirname, '..', 'fixtures', 'gpt2-tiny');
    const model = await loadCausalLM(dir);
    const groups = [
      [
        { context: [1, 2, 3], continuation: [4, 5] },
        { context: [1, 2, 3], continuation: [6] },
      ],
    ];
    const adaptersThat = (conditionsOnInput: boolean) => {
      const prepared: number[][] = [];
      const adapters = {
        conditionsOnInput,
        delta: () => null,
        prepare: (_m: CausalLM, prompts: readonly (readonly number[])[]) => prepared.push(...prompts.map((p) => [...p])),
      } as unknown as AdapterModel;
      return { adapters, prepared };
    };
    const conditioned = adaptersThat(true);
    const plain = await scoreGroups(model, groups, { adapters: conditioned.adapters });
    // scoreRequests prepared the full inputs (context + continuation minus its last token).
    expect(conditioned.prepared).toEqual([
      [1, 2, 3, 4],
      [1, 2, 3],
    ]);
    // A prepare that only feeds regularizers (bias-aware) does not stop the sharing, and the scores agree.
    const regularizerOnly = adaptersThat(false);
    const shared = await scoreGroups(model, groups, { adapters: regularizerOnly.adapters });
    expect(regularizerOnly.prepared).toEqual([]);
    shared.flat().forEach((s, i) => expect(s.logLikelihood).toBeCloseTo(plain.flat()[i]!.logLikelihood, 4));
    model.dispose();
  });
});
