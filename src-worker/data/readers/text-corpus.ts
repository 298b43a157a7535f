// A text corpus for language modelling (perplexity): a JSONL file with a "text" string per line, or
// plain text whose documents are separated by `<|endoftext|>` lines (as TinyStories ships) or, without
// that marker, by blank lines (as wikitext's paragraphs are). Documents keep the line they start on.
// JSONL lines with "prompt" and "completion" instead score the completion given the prompt (a task's
// held-out rows, as training scores them).
import { RowErrors, RowProblem, jsonlLines, readTextFile, throwEmpty } from './common.ts';

export interface TextDocument {
  id: string;
  text: string;
  /** What `text` is scored after (a "prompt"); only the text's tokens count. */
  context?: string;
  /** 1-based line where the document starts. */
  line: number;
}

export const END_OF_TEXT = '<|endoftext|>';

function parseJsonlCorpus(text: string, source: string): TextDocument[] {
  const errors = new RowErrors();
  const documents: TextDocument[] = [];
  for (const entry of jsonlLines(text)) {
    if ('error' in entry) {
      errors.add(entry.line, entry.error);
      continue;
    }
    const doc = errors.guard(entry.line, () => {
      const value = entry.value as Record<string, unknown> | null;
      if (!value || typeof value !== 'object' || Array.isArray(value)) throw new RowProblem('expected a JSON object with a "text" string');
      const id = typeof value.id === 'string' || typeof value.id === 'number' ? String(value.id) : `line-${entry.line}`;
      if (value.text === undefined && (value.prompt !== undefined || value.completion !== undefined)) {
        if (typeof value.prompt !== 'string' || typeof value.completion !== 'string') throw new RowProblem('"prompt" and "completion" must both be strings');
        if (value.completion.trim() === '') throw new RowProblem('"completion" is empty');
        return { id, text: value.completion, context: value.prompt, line: entry.line };
      }
      if (typeof value.text !== 'string') throw new RowProblem(`"text" is ${value.text === undefined ? 'missing' : `a ${typeof value.text}, not a string`}`);
      if (value.text.trim() === '') throw new RowProblem('"text" is empty');
      return { id, text: value.text, line: entry.line };
    });
    if (doc) documents.push(doc);
  }
  errors.throwIfAny(source);
  return documents;
}

function parsePlainCorpus(text: string): TextDocument[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const byMarker = lines.some((l) => l.trim() === END_OF_TEXT);
  const documents: TextDocument[] = [];
  let current: string[] = [];
  let start = 1;
  const flush = (nextStart: number) => {
    const body = current.join('\n').trim();
    if (body !== '') documents.push({ id: `line-${start}`, text: body, line: start });
    current = [];
    start = nextStart;
  };
  lines.forEach((raw, i) => {
    const isBreak = byMarker ? raw.trim() === END_OF_TEXT : raw.trim() === '';
    if (isBreak) flush(i + 2);
    else {
      if (current.length === 0) start = i + 1;
      current.push(raw);
    }
  });
  flush(lines.length + 1);
  return documents;
}

export function parseTextCorpus(text: string, source: string, format: 'jsonl' | 'text'): TextDocument[] {
  const documents = format === 'jsonl' ? parseJsonlCorpus(text, source) : parsePlainCorpus(text);
  if (documents.length === 0) throwEmpty(source, format === 'jsonl' ? 'JSONL lines with a "text" string' : 'some text');
  return documents;
}

/** .jsonl / .json lines files are read as JSONL; anything else as plain text. */
export async function readTextCorpus(path: string): Promise<TextDocument[]> {
  const format = /\.jsonl?$/i.test(path) ? 'jsonl' : 'text';
  return parseTextCorpus(await readTextFile(path), path, format);
}
