import { describe, expect, it } from 'vitest';
import type { BbqExample } from '../../src-worker/data/readers/bbq.ts';
import type { HotpotQaExample } from '../../src-worker/data/readers/hotpotqa.ts';
import type { StereoSetExample } from '../../src-worker/data/readers/stereoset.ts';
import {
  bbqCandidates,
  bbqTemplate,
  conversationTemplate,
  crowsPairsCandidates,
  hotpotQaTemplate,
  plainChatFormatter,
  qqpCandidates,
  qqpTemplate,
  stereoSetCandidates,
  type ChatFormatter,
} from '../../src-worker/data/templates.ts';

const hotpot: HotpotQaExample = {
  id: 'q',
  question: 'Where was Ada born?',
  answer: 'Riverton',
  type: 'bridge',
  level: 'easy',
  paragraphs: [
    { title: 'Ada', sentences: ['Ada was born in Riverton.', ' She paints.'], isSupporting: true },
    { title: 'Hilltop', sentences: ['Hilltop is a village.'], isSupporting: false },
  ],
  supportingFacts: [{ title: 'Ada', sentenceIndex: 0 }],
  line: 1,
};

describe('templates', () => {
  it('writes HotpotQA with all paragraphs (distractor setting), gold only, or none', () => {
    expect(hotpotQaTemplate(hotpot)).toEqual({
      prompt: 'Context:\nAda: Ada was born in Riverton. She paints.\nHilltop: Hilltop is a village.\n\nQuestion: Where was Ada born?\nAnswer:',
      completion: ' Riverton',
    });
    expect(hotpotQaTemplate(hotpot, { paragraphs: 'supporting' }).prompt).toBe(
      'Context:\nAda: Ada was born in Riverton. She paints.\n\nQuestion: Where was Ada born?\nAnswer:',
    );
    expect(hotpotQaTemplate(hotpot, { paragraphs: 'none' }).prompt).toBe('Question: Where was Ada born?\nAnswer:');
  });

  it('writes QQP with yes/no label words and offers both as candidates', () => {
    const pair = { id: '1', question1: 'A?', question2: 'B?', label: 0 as const, line: 2 };
    expect(qqpTemplate(pair)).toEqual({
      prompt: 'Question 1: A?\nQuestion 2: B?\nQuestion: Do both questions ask the same thing?\nAnswer:',
      completion: ' no',
    });
    expect(qqpCandidates(pair).map((c) => [c.label, c.completion])).toEqual([
      ['no', ' no'],
      ['yes', ' yes'],
    ]);
    expect(() => qqpTemplate({ ...pair, label: null })).toThrow(/no label/);
  });

  it('formats a conversation with the plain formatter or a model-supplied one', () => {
    const conversation = {
      treeId: 't',
      turns: [
        { role: 'user' as const, content: 'Hi' },
        { role: 'assistant' as const, content: 'Hello!' },
        { role: 'user' as const, content: 'Bye' },
        { role: 'assistant' as const, content: 'See you.' },
      ],
      line: 4,
    };
    expect(conversationTemplate(conversation)).toEqual({ prompt: 'User: Hi\n\nAssistant: Hello!\n\nUser: Bye\n\nAssistant:', completion: ' See you.' });
    const chatml: ChatFormatter = (history, reply) => ({
      prompt: history.map((t) => `<|im_start|>${t.role}\n${t.content}<|im_end|>\n`).join('') + '<|im_start|>assistant\n',
      completion: `${reply}<|im_end|>`,
    });
    expect(conversationTemplate(conversation, chatml).completion).toBe('See you.<|im_end|>');
    expect(plainChatFormatter([{ role: 'user', content: 'Q' }], 'A')).toEqual({ prompt: 'User: Q\n\nAssistant:', completion: ' A' });
    expect(() => conversationTemplate({ ...conversation, turns: conversation.turns.slice(0, 3) })).toThrow(/does not end with an assistant turn/);
  });

  it('writes BBQ as a three-option question and scores each option after the same prompt', () => {
    const example: BbqExample = {
      exampleId: 0,
      category: 'Age',
      questionIndex: '1',
      questionPolarity: 'neg',
      contextCondition: 'ambig',
      context: 'Two people met.',
      question: 'Who forgot?',
      answers: ['The grandmother', 'The granddaughter', 'Unknown'],
      label: 2,
      unknownIndex: 2,
      stereotypedIndex: 0,
      file: 'Age.jsonl',
      line: 1,
    };
    const prompt = 'Context: Two people met.\nQuestion: Who forgot?\nOptions:\n(a) The grandmother\n(b) The granddaughter\n(c) Unknown\nAnswer:';
    expect(bbqTemplate(example)).toEqual({ prompt, completion: ' Unknown' });
    expect(bbqCandidates(example)).toEqual([
      { label: 'ans0', prompt, completion: ' The grandmother' },
      { label: 'ans1', prompt, completion: ' The granddaughter' },
      { label: 'ans2', prompt, completion: ' Unknown' },
    ]);
  });

  it('scores CrowS-Pairs sentences whole, StereoSet intrasentence whole and intersentence after its context', () => {
    expect(crowsPairsCandidates({ index: 0, sentMore: 'M.', sentLess: 'L.', direction: 'stereo', biasType: 'age', line: 2 })).toEqual([
      { label: 'more', prompt: '', completion: 'M.' },
      { label: 'less', prompt: '', completion: 'L.' },
    ]);
    const sentences = {
      stereotype: { id: 'a', sentence: 'S.' },
      'anti-stereotype': { id: 'b', sentence: 'A.' },
      unrelated: { id: 'c', sentence: 'U.' },
    };
    const intra: StereoSetExample = { id: 'i', task: 'intrasentence', target: 't', biasType: 'race', context: 'T is BLANK.', sentences, line: 1, index: 0 };
    expect(stereoSetCandidates(intra).map((c) => [c.label, c.prompt, c.completion])).toEqual([
      ['stereotype', '', 'S.'],
      ['anti-stereotype', '', 'A.'],
      ['unrelated', '', 'U.'],
    ]);
    expect(stereoSetCandidates({ ...intra, task: 'intersentence', context: 'Ctx.' })[1]).toEqual({
      label: 'anti-stereotype',
      prompt: 'Ctx.',
      completion: ' A.',
    });
  });
});
