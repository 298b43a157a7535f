// The start token of a text scored without context: lm-evaluation-harness's prefix_token_id, the
// tokenizer's BOS where it names one (Llama's <s>), else its EOS (what GPT-2's BOS is too).
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { prefixTokenOf, sequenceLogLikelihood } from '../../src-worker/eval/score.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { loadTokenizer } from '../../src-worker/formats/tokenizer.ts';

const fixtures = path.join(import.meta.dirname, '..', 'fixtures');

describe('the scoring start token', () => {
  it('is BOS where the tokenizer names one, else EOS', async () => {
    const llama = await loadTokenizer(path.join(fixtures, 'llama-tiny'));
    expect([llama.namedBosTokenId, llama.eosTokenId, prefixTokenOf(llama)]).toEqual([1, 2, 1]);
    const gpt2 = await loadTokenizer(path.join(fixtures, 'gpt2-tiny'));
    expect(prefixTokenOf(gpt2)).toBe(gpt2.eosTokenId);
    expect(prefixTokenOf({ ...gpt2, namedBosTokenId: null, bosTokenId: null })).toBe(gpt2.eosTokenId);
  });

  it('is what a sentence is scored from by default', async () => {
    const dir = path.join(fixtures, 'llama-tiny');
    const [model, tokenizer] = await Promise.all([loadCausalLM(dir), loadTokenizer(dir)]);
    try {
      const [byDefault] = await sequenceLogLikelihood(model, tokenizer, ['the cat sat']);
      const [fromBos] = await sequenceLogLikelihood(model, tokenizer, ['the cat sat'], { prefixTokenId: 1 });
      const [fromEos] = await sequenceLogLikelihood(model, tokenizer, ['the cat sat'], { prefixTokenId: 2 });
      expect(byDefault!.logLikelihood).toBe(fromBos!.logLikelihood);
      expect(byDefault!.logLikelihood).not.toBeCloseTo(fromEos!.logLikelihood, 3);
    } finally {
      model.dispose();
    }
  });
});
