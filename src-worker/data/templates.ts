// Prompt templates: each task's row -> {prompt, completion}, the shape tokenize.ts trains on
// (loss on the completion only), plus the candidate texts that likelihood-scored tasks compare.
// Completions start with a space, as GPT-2's BPE expects a word after "Answer:" to be written;
// a chat model's own template replaces all of this through the ChatFormatter hook.
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { BbqExample } from './readers/bbq.ts';
import type { CrowsPair } from './readers/crows-pairs.ts';
import { paragraphText, type HotpotQaExample } from './readers/hotpotqa.ts';
import type { ChatTurn, Conversation } from './readers/oasst1.ts';
import type { QqpPair } from './readers/qqp.ts';
import { STEREOSET_LABELS, type StereoSetExample, type StereoSetLabel } from './readers/stereoset.ts';

export interface PromptCompletion {
  prompt: string;
  completion: string;
}

/** One of several texts a model scores by likelihood; `label` says which option it is. */
export interface Candidate<L extends string = string> extends PromptCompletion {
  label: L;
}

/**
 * Turns a conversation (ending with the assistant turn to learn) into prompt and completion.
 * The default writes plain "User:" / "Assistant:" turns; a model with a chat template (its
 * tokenizer_config.json chat_template, rendered with @huggingface/jinja) passes its own.
 */
export type ChatFormatter = (history: ChatTurn[], reply: string) => PromptCompletion;

export const plainChatFormatter: ChatFormatter = (history, reply) => ({
  prompt: `${history.map((t) => `${t.role === 'user' ? 'User' : 'Assistant'}: ${t.content}`).join('\n\n')}\n\nAssistant:`,
  completion: ` ${reply}`,
});

export interface HotpotTemplateOptions {
  /**
   * 'all' (the distractor setting: gold and distractor paragraphs, in file order), 'supporting'
   * (gold paragraphs only, for short contexts), or 'none' (closed-book).
   */
  paragraphs?: 'all' | 'supporting' | 'none';
}

export function hotpotQaTemplate(example: HotpotQaExample, options: HotpotTemplateOptions = {}): PromptCompletion {
  const which = options.paragraphs ?? 'all';
  const paragraphs = which === 'none' ? [] : example.paragraphs.filter((p) => which === 'all' || p.isSupporting);
  const context = paragraphs.map((p) => `${p.title}: ${paragraphText(p).trim()}`).join('\n');
  return {
    prompt: `${context === '' ? '' : `Context:\n${context}\n\n`}Question: ${example.question}\nAnswer:`,
    completion: ` ${example.answer}`,
  };
}

/** Label words for QQP, index = label (0 not duplicate, 1 duplicate). */
export const QQP_LABEL_WORDS = ['no', 'yes'] as const;

/** lm-evaluation-harness's glue qqp doc_to_text, exactly: training on QQP uses the prompt it is evaluated with. */
function qqpPrompt(pair: QqpPair): string {
  return `Question 1: ${pair.question1}\nQuestion 2: ${pair.question2}\nQuestion: Do both questions ask the same thing?\nAnswer:`;
}

export function qqpTemplate(pair: QqpPair): PromptCompletion {
  if (pair.label === null) {
    throw new WorkbenchError(
      'dataset_invalid',
      `QQP pair ${pair.id} (line ${pair.line}) has no label to train on. Train on a labelled split (train or dev), not test.`,
      { line: pair.line },
    );
  }
  return { prompt: qqpPrompt(pair), completion: ` ${QQP_LABEL_WORDS[pair.label]}` };
}

/** The two answers a classifier compares; the prediction is the likelier one. */
export function qqpCandidates(pair: QqpPair): Candidate<(typeof QQP_LABEL_WORDS)[number]>[] {
  return QQP_LABEL_WORDS.map((word) => ({ label: word, prompt: qqpPrompt(pair), completion: ` ${word}` }));
}

/** The conversation up to its last assistant turn is the prompt; that turn is the completion. */
export function conversationTemplate(conversation: Conversation, formatter: ChatFormatter = plainChatFormatter): PromptCompletion {
  const last = conversation.turns[conversation.turns.length - 1];
  if (!last || last.role !== 'assistant') {
    throw new WorkbenchError(
      'dataset_invalid',
      `The conversation on line ${conversation.line} does not end with an assistant turn: nothing to train on. Remove it or end it with the assistant's reply.`,
      { line: conversation.line },
    );
  }
  return formatter(conversation.turns.slice(0, -1), last.content);
}

const OPTION_LETTERS = ['a', 'b', 'c'] as const;

function bbqPrompt(example: BbqExample): string {
  const options = example.answers.map((a, k) => `(${OPTION_LETTERS[k]}) ${a}`).join('\n');
  return `Context: ${example.context}\nQuestion: ${example.question}\nOptions:\n${options}\nAnswer:`;
}

export function bbqTemplate(example: BbqExample): PromptCompletion {
  return { prompt: bbqPrompt(example), completion: ` ${example.answers[example.label]}` };
}

/** The three options, scored as completions of the same prompt; the likeliest is the model's answer. */
export function bbqCandidates(example: BbqExample): Candidate<'ans0' | 'ans1' | 'ans2'>[] {
  return example.answers.map((answer, k) => ({ label: `ans${k}` as 'ans0' | 'ans1' | 'ans2', prompt: bbqPrompt(example), completion: ` ${answer}` }));
}

/** Both sentences as whole texts: CrowS-Pairs compares their (pseudo-)log-likelihoods. */
export function crowsPairsCandidates(pair: CrowsPair): Candidate<'more' | 'less'>[] {
  return [
    { label: 'more', prompt: '', completion: pair.sentMore },
    { label: 'less', prompt: '', completion: pair.sentLess },
  ];
}

/**
 * Intrasentence: the whole sentence (the context with the BLANK filled) is scored; intersentence:
 * the candidate continuation, conditioned on the context.
 */
export function stereoSetCandidates(example: StereoSetExample): Candidate<StereoSetLabel>[] {
  return STEREOSET_LABELS.map((label) =>
    example.task === 'intrasentence'
      ? { label, prompt: '', completion: example.sentences[label].sentence }
      : { label, prompt: example.context, completion: ` ${example.sentences[label].sentence}` },
  );
}
