// The perplexity suite: the text-corpus reader, the windows that score a reply longer than the model's
// context, the corpus figures (per token, word and byte), and the suite's sums against hand-computed
// bigram scores and against direct calls of the scorer on test/fixtures/gpt2-tiny.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src-worker/backend.ts';
import type { Conversation } from '../../src-worker/data/readers/oasst1.ts';
import { parseTextCorpus } from '../../src-worker/data/readers/text-corpus.ts';
import { conversationTemplate } from '../../src-worker/data/templates.ts';
import { corpusScores, wordCount } from '../../src-worker/eval/metrics.ts';
import { conditionalWindows, encodePair, pairLogLikelihood, scoreRequests } from '../../src-worker/eval/score.ts';
import { runPerplexitySuite } from '../../src-worker/eval/suites.ts';
import { loadCausalLM } from '../../src-worker/formats/model-folder.ts';
import { loadTokenizer, type TextTokenizer } from '../../src-worker/formats/tokenizer.ts';
import type { CausalLM } from '../../src-worker/models/types.ts';
import { BIGRAM_TABLE, bigram, charTokenizer } from '../helpers/bigram.ts';

beforeAll(async () => {
  await initBackend('cpu');
});

describe('text corpus reader', () => {
  it('splits plain text at <|endoftext|> lines and keeps blank lines inside a document', () => {
    const docs = parseTextCorpus('Once upon a time.\n\nThe end.\n<|endoftext|>\nAnother story.\n<|endoftext|>\n', 'stories.txt', 'text');
    expect(docs).toEqual([
      { id: 'line-1', text: 'Once upon a time.\n\nThe end.', line: 1 },
      { id: 'line-5', text: 'Another story.', line: 5 },
    ]);
  });

  it('splits at blank lines when there is no <|endoftext|> marker', () => {
    const docs = parseTextCorpus('\n = Title = \n\nFirst paragraph,\nstill first.\n\n\nSecond.\n', 'wiki.txt', 'text');
    expect(docs.map((d) => [d.line, d.text])).toEqual([
      [2, '= Title ='],
      [4, 'First paragraph,\nstill first.'],
      [8, 'Second.'],
    ]);
  });

  it('reads JSONL "text" fields and lists every bad line', () => {
    expect(parseTextCorpus('{"text": "a b"}\n\n{"id": 7, "text": "c"}\n', 'c.jsonl', 'jsonl')).toEqual([
      { id: 'line-1', text: 'a b', line: 1 },
      { id: '7', text: 'c', line: 3 },
    ]);
    expect(() => parseTextCorpus('{"text": "ok"}\n{"text": 3}\nnot json\n{"text": "  "}\n[1]\n', 'bad.jsonl', 'jsonl')).toThrow(
      /bad\.jsonl has 4 bad rows: line 2: "text" is a number, not a string; line 3: invalid JSON.*; line 4: "text" is empty; line 5: expected a JSON object/,
    );
  });

  it('reads JSONL "prompt" and "completion" lines as a completion scored after its prompt', () => {
    expect(parseTextCorpus('{"prompt": "Q: a?\\nA:", "completion": " b"}\n', 'p.jsonl', 'jsonl')).toEqual([
      { id: 'line-1', text: ' b', context: 'Q: a?\nA:', line: 1 },
    ]);
    expect(() => parseTextCorpus('{"prompt": "Q"}\n{"prompt": "Q", "completion": " "}\n', 'bad.jsonl', 'jsonl')).toThrow(
      /line 1: "prompt" and "completion" must both be strings; line 2: "completion" is empty/,
    );
  });

  it('refuses a corpus with no text', () => {
    expect(() => parseTextCorpus('\n<|endoftext|>\n\n', 'empty.txt', 'text')).toThrow(/has no rows/);
  });
});

describe('conditional windows', () => {
  it('scores every continuation token once, each window within the model positions', () => {
    const context = [90, 91, 92, 93, 94];
    const continuation = [10, 11, 12, 13, 14, 15, 16];
    const windows = conditionalWindows(context, continuation, 3);
    expect(windows).toEqual([
      { context: [94], continuation: [10, 11, 12] },
      { context: [12], continuation: [13, 14, 15] },
      { context: [13, 14, 15], continuation: [16] },
    ]);
    expect(windows.flatMap((w) => w.continuation)).toEqual(continuation);
    // A short continuation keeps as much of the context as fits.
    expect(conditionalWindows(context, [10], 3)).toEqual([{ context: [92, 93, 94], continuation: [10] }]);
  });
});

describe('corpus figures', () => {
  it('pools the negative log-likelihood over tokens, words and bytes', () => {
    const nll = [4 * Math.log(2), 2 * Math.log(8)];
    const s = corpusScores([
      { nllSum: nll[0]!, tokens: 4, words: 2, bytes: 10 },
      { nllSum: nll[1]!, tokens: 2, words: 1, bytes: 6 },
    ]);
    const total = nll[0]! + nll[1]!; // 10 ln 2
    expect(s).toMatchObject({ count: 2, tokens: 6, words: 3, bytes: 16 });
    expect(s.loss).toBeCloseTo(total / 6, 12);
    expect(s.perplexity).toBeCloseTo(2 ** (10 / 6), 10);
    expect(s.wordPerplexity).toBeCloseTo(2 ** (10 / 3), 10);
    expect(s.bytePerplexity).toBeCloseTo(2 ** (10 / 16), 10);
    expect(s.bitsPerByte).toBeCloseTo(10 / 16, 12);
  });

  it('counts words between runs of whitespace', () => {
    expect(wordCount('  The cat\n sat.\t ')).toBe(3);
    expect(wordCount('')).toBe(0);
    expect(() => corpusScores([{ nllSum: 1, tokens: 1, words: 0, bytes: 0 }])).toThrow(/need some text/);
  });
});

const bigramLogLik = (text: string) => {
  let sum = Math.log(BIGRAM_TABLE[2]!['abc'.indexOf(text[0]!)]!);
  for (let i = 1; i < text.length; i++) sum += Math.log(BIGRAM_TABLE['abc'.indexOf(text[i - 1]!)]!['abc'.indexOf(text[i]!)]!);
  return sum;
};

describe('perplexity suite', () => {
  it('equals the hand-computed bigram scores, documents longer than the window included', async () => {
    const model = bigram(3);
    const texts = ['abcab', 'bb', 'cacbba'];
    const documents = texts.map((text, i) => ({ id: `d${i}`, text, line: i + 1 }));
    const progress: [number, number][] = [];
    const { text, oasst1 } = await runPerplexitySuite({
      model,
      tokenizer: charTokenizer,
      adapters: null,
      batchSize: 2,
      documents,
      onProgress: (d, t) => progress.push([d, t]),
    });
    expect(oasst1).toBeNull();
    const expected = texts.map(bigramLogLik);
    text!.items.forEach((item, i) => {
      expect(item.tokens).toBe(texts[i]!.length);
      expect(item.logLikelihood).toBeCloseTo(expected[i]!, 5);
      expect(item.loss).toBeCloseTo(-expected[i]! / texts[i]!.length, 5);
    });
    const nll = -expected.reduce((a, b) => a + b, 0);
    expect(text!.tokens).toBe(13);
    expect(text!.perplexity).toBeCloseTo(Math.exp(nll / 13), 4);
    expect(text!.wordPerplexity).toBeCloseTo(Math.exp(nll / 3), 3);
    expect(text!.bitsPerByte).toBeCloseTo(nll / 13 / Math.LN2, 5);
    expect(progress.at(-1)).toEqual([3, 3]);
    model.dispose();
  });

  describe('on gpt2-tiny', () => {
    let model: CausalLM;
    let tokenizer: TextTokenizer;
    beforeAll(async () => {
      model = await loadCausalLM(path.join(import.meta.dirname, '..', 'fixtures', 'gpt2-tiny'));
      tokenizer = await loadTokenizer(path.join(import.meta.dirname, '..', 'fixtures', 'gpt2-tiny'));
    });
    afterAll(() => model.dispose());

    const conversation = (reply: string, line: number): Conversation => ({
      treeId: `t${line}`,
      line,
      turns: [
        { role: 'user', content: 'What is a cat?' },
        { role: 'assistant', content: reply },
      ],
    });

    it('scores an OASST1 reply given its conversation, as a prompt/completion pair is scored', async () => {
      const conversations = [conversation('A small animal.', 3)];
      const { oasst1, text } = await runPerplexitySuite({ model, tokenizer, adapters: null, conversations });
      expect(text).toBeNull();
      const { prompt, completion } = conversationTemplate(conversations[0]!);
      const [direct] = await pairLogLikelihood(model, tokenizer, [{ context: prompt, continuation: completion }]);
      expect(oasst1!.items[0]).toMatchObject({ id: 't3@3', tokens: direct!.tokens });
      expect(oasst1!.items[0]!.logLikelihood).toBeCloseTo(direct!.logLikelihood, 4);
      expect(oasst1!.words).toBe(3);
      expect(oasst1!.bytes).toBe(Buffer.byteLength(completion));
    });

    it("scores a prompt/completion line's completion given its prompt", async () => {
      const documents = parseTextCorpus('{"prompt": "What is a cat?\\nAnswer:", "completion": " A small animal."}\n', 'p.jsonl', 'jsonl');
      const { text } = await runPerplexitySuite({ model, tokenizer, adapters: null, documents });
      const [direct] = await pairLogLikelihood(model, tokenizer, [{ context: 'What is a cat?\nAnswer:', continuation: ' A small animal.' }]);
      expect(text!.items[0]!.tokens).toBe(direct!.tokens);
      expect(text!.items[0]!.logLikelihood).toBeCloseTo(direct!.logLikelihood, 4);
      expect(text!.bytes).toBe(Buffer.byteLength(' A small animal.'));
    });

    it('scores a reply longer than the context whole, in windows', async () => {
      const reply = 'The cat sat on the mat and looked at the dog, who sat by the door and looked back at the cat for a long while.';
      const conversations = [conversation(reply, 9)];
      const { oasst1 } = await runPerplexitySuite({ model, tokenizer, adapters: null, conversations });
      const { prompt, completion } = conversationTemplate(conversations[0]!);
      const pair = encodePair(tokenizer, prompt, completion, tokenizer.eosTokenId);
      expect(pair.continuation.length).toBeGreaterThan(model.config.maxPositions);
      const windows = conditionalWindows(pair.context, pair.continuation, model.config.maxPositions);
      const scores = await scoreRequests(model, windows);
      expect(oasst1!.items[0]!.tokens).toBe(pair.continuation.length);
      expect(oasst1!.items[0]!.logLikelihood).toBeCloseTo(
        scores.reduce((s, x) => s + x.logLikelihood, 0),
        4,
      );
    });
  });
});
