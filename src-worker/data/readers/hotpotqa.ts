// HotpotQA, distractor setting (Yang et al. 2018), in the two shapes that circulate:
// - the official one: {_id, question, answer, type, level, supporting_facts: [[title, sent]],
//   context: [[title, [sentence, ...]]]}, as a JSON array (hotpot_dev_distractor_v1.json) or
//   one object per line;
// - IRCoT's (Trivedi et al. 2023): {question_id, question_text, answers_objects: [{spans}],
//   contexts: [{title, paragraph_text, is_supporting}]}, which keeps only paragraph-level
//   support and drops type and level.
import { Fields, RowErrors, RowProblem, jsonItems, jsonlLines, readTextFile, throwEmpty } from './common.ts';

export const HOTPOT_TYPES = ['bridge', 'comparison'] as const;
export const HOTPOT_LEVELS = ['easy', 'medium', 'hard'] as const;
export type HotpotType = (typeof HOTPOT_TYPES)[number];
export type HotpotLevel = (typeof HOTPOT_LEVELS)[number];

export interface HotpotParagraph {
  title: string;
  /** Sentences as in the official file (each after the first starts with its space); IRCoT gives one. */
  sentences: string[];
  /** True for the gold paragraphs (those named by a supporting fact). */
  isSupporting: boolean;
}

export interface HotpotQaExample {
  id: string;
  question: string;
  answer: string;
  /** Absent in IRCoT's format. */
  type: HotpotType | null;
  level: HotpotLevel | null;
  paragraphs: HotpotParagraph[];
  /** Sentence-level supporting facts; null in IRCoT's format, which keeps paragraph-level support only. */
  supportingFacts: { title: string; sentenceIndex: number }[] | null;
  line: number;
}

const SHAPES = 'HotpotQA objects ({"_id","question","answer","context",...}) or IRCoT objects ({"question_id","question_text","answers_objects","contexts"})';

function parseOfficial(f: Fields, line: number): HotpotQaExample {
  const context = f.array('context');
  const paragraphs: HotpotParagraph[] = context.map((entry, k) => {
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || !Array.isArray(entry[1])) {
      throw new RowProblem(`"context"[${k}] must be [title, [sentence, ...]]`);
    }
    const sentences = entry[1] as unknown[];
    if (!sentences.every((s) => typeof s === 'string')) throw new RowProblem(`"context"[${k}] has a sentence that is not a string`);
    return { title: entry[0], sentences: sentences as string[], isSupporting: false };
  });
  const supportingFacts = f.array('supporting_facts').map((fact, k) => {
    if (!Array.isArray(fact) || fact.length !== 2 || typeof fact[0] !== 'string' || !Number.isInteger(fact[1])) {
      throw new RowProblem(`"supporting_facts"[${k}] must be [title, sentence index]`);
    }
    return { title: fact[0] as string, sentenceIndex: fact[1] as number };
  });
  for (const fact of supportingFacts) {
    const paragraph = paragraphs.find((p) => p.title === fact.title);
    if (!paragraph) throw new RowProblem(`supporting fact names "${fact.title}", which is not a context title`);
    // The sentence index is not checked against the paragraph's length: the official evaluation
    // compares (title, index) pairs as given, so a reader that rejected them would disagree with it.
    paragraph.isSupporting = true;
  }
  return {
    id: f.str('_id'),
    question: f.str('question'),
    answer: f.str('answer'),
    type: f.oneOf('type', HOTPOT_TYPES),
    level: f.oneOf('level', HOTPOT_LEVELS),
    paragraphs,
    supportingFacts,
    line,
  };
}

function parseIrcot(f: Fields, line: number): HotpotQaExample {
  const answers = f.array('answers_objects');
  const first = answers[0];
  if (answers.length === 0 || first === null || typeof first !== 'object') throw new RowProblem('"answers_objects" is empty');
  const spans = new Fields(first, '"answers_objects"[0]').array('spans');
  if (spans.length === 0 || typeof spans[0] !== 'string' || spans[0].trim() === '') {
    throw new RowProblem('"answers_objects"[0].spans has no answer text');
  }
  const paragraphs = f.array('contexts').map((c, k) => {
    const p = new Fields(c, `"contexts"[${k}]`);
    const supporting = p.row['is_supporting'];
    if (typeof supporting !== 'boolean') throw new RowProblem(`"contexts"[${k}].is_supporting must be true or false`);
    return { title: p.str('title', { allowEmpty: true }), sentences: [p.str('paragraph_text', { allowEmpty: true })], isSupporting: supporting };
  });
  return {
    id: f.str('question_id'),
    question: f.str('question_text'),
    answer: spans[0],
    type: null,
    level: null,
    paragraphs,
    supportingFacts: null,
    line,
  };
}

function parseExample(value: unknown, line: number): HotpotQaExample {
  const f = new Fields(value);
  if (f.has('_id') || f.has('supporting_facts')) return parseOfficial(f, line);
  if (f.has('question_id') || f.has('question_text')) return parseIrcot(f, line);
  throw new RowProblem(`unknown row shape with keys ${Object.keys(f.row).slice(0, 6).join(', ') || '(none)'}; expected ${SHAPES}`);
}

/** Parses a HotpotQA file, JSONL or a JSON array; throws dataset_invalid listing every bad row. */
export function parseHotpotQa(text: string, source = 'HotpotQA file'): HotpotQaExample[] {
  const errors = new RowErrors();
  const examples: HotpotQaExample[] = [];
  const items = text
    .trimStart()
    .replace(/^\uFEFF/, '')
    .startsWith('[')
    ? jsonItems(text, source).map((item) => ({ line: item.line, value: item.value }))
    : [...jsonlLines(text)];
  const seen = new Map<string, number>();
  for (const item of items) {
    if ('error' in item) {
      errors.add(item.line, item.error);
      continue;
    }
    const example = errors.guard(item.line, () => parseExample(item.value, item.line));
    if (!example) continue;
    const previous = seen.get(example.id);
    if (previous !== undefined) {
      errors.add(item.line, `id ${example.id} repeats the question on line ${previous}`);
      continue;
    }
    seen.set(example.id, item.line);
    examples.push(example);
  }
  errors.throwIfAny(source);
  if (examples.length === 0) throwEmpty(source, SHAPES);
  return examples;
}

export async function readHotpotQa(path: string): Promise<HotpotQaExample[]> {
  return parseHotpotQa(await readTextFile(path), path);
}

/** The paragraph as one string: official sentences already carry their leading spaces. */
export function paragraphText(paragraph: HotpotParagraph): string {
  return paragraph.sentences.join('');
}
