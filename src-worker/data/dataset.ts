// Instruction datasets as JSONL: one JSON object a line, in one of three shapes.
//   {"prompt": "...", "completion": "..."}                  the workbench's own shape
//   {"instruction": "...", "input": "...", "output": "..."}  Alpaca (input may be empty or absent)
//   {"text": "..."}                                          plain language modelling, loss on every token
// Every bad row is reported with its line number; none is dropped silently.
import { readTextFile, throwBadRows, type DatasetRowError } from './readers/common.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';

export interface InstructionExample {
  /** Conditioning text; the loss ignores its tokens. Empty for plain `text` rows. */
  prompt: string;
  /** The text the model learns to produce. */
  completion: string;
  /** 1-based line in the source file, for error messages and evaluation reports. */
  line: number;
  /** The row's task label (optional "task" field), for multi-task training (bias-aware LoRA's L_align). */
  task?: string;
}

/**
 * Alpaca's prompt without its one-paragraph preamble: the preamble costs ~30 tokens per
 * example, which a small model's short context (maxSeqLen 96 by default) cannot spare.
 */
export function formatAlpacaPrompt(instruction: string, input: string): string {
  return input.trim() === ''
    ? `### Instruction:\n${instruction}\n\n### Response:\n`
    : `### Instruction:\n${instruction}\n\n### Input:\n${input}\n\n### Response:\n`;
}

const SHAPES = 'expected {"prompt","completion"}, {"instruction","input","output"} or {"text"}';

class RowProblem {
  constructor(readonly message: string) {}
}

/** Parses one row; returns the example or a message saying what is wrong with it. */
function parseRow(value: unknown, line: number): InstructionExample | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return `not a JSON object; ${SHAPES}`;
  const row = value as Record<string, unknown>;
  const str = (key: string): string | undefined | null => {
    if (!(key in row)) return undefined;
    return typeof row[key] === 'string' ? (row[key] as string) : null;
  };
  const need = (key: string, allowEmpty = false): string => {
    const v = str(key);
    if (v === undefined) throw new RowProblem(`missing "${key}"`);
    if (v === null) throw new RowProblem(`"${key}" must be a string, got ${JSON.stringify(row[key])?.slice(0, 40)}`);
    if (!allowEmpty && v.trim() === '') throw new RowProblem(`"${key}" is empty`);
    return v;
  };
  try {
    const task = str('task');
    if (task === null || task?.trim() === '') throw new RowProblem('"task" must be a non-empty string');
    const withTask = (e: InstructionExample): InstructionExample => (task ? { ...e, task } : e);
    if ('completion' in row || 'prompt' in row) {
      // An empty prompt is legal (unconditional generation); an empty completion leaves nothing to learn.
      return withTask({ prompt: need('prompt', true), completion: need('completion'), line });
    }
    if ('instruction' in row || 'output' in row) {
      const input = str('input');
      if (input === null) throw new RowProblem('"input" must be a string');
      return withTask({ prompt: formatAlpacaPrompt(need('instruction'), input ?? ''), completion: need('output'), line });
    }
    if ('text' in row) return withTask({ prompt: '', completion: need('text'), line });
    return `unknown row shape with keys ${Object.keys(row).slice(0, 6).join(', ') || '(none)'}; ${SHAPES}`;
  } catch (e) {
    if (e instanceof RowProblem) return e.message;
    throw e;
  }
}

/** Parses JSONL text; throws dataset_invalid listing every bad line. Blank lines are allowed. */
export function parseInstructionJsonl(text: string, source = 'dataset'): InstructionExample[] {
  const examples: InstructionExample[] = [];
  const errors: DatasetRowError[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = i + 1;
    const trimmed = (i === 0 ? raw.replace(/^\uFEFF/, '') : raw).trim();
    if (trimmed === '') return;
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch (e) {
      errors.push({ line, message: `invalid JSON (${(e as Error).message})` });
      return;
    }
    const parsed = parseRow(value, line);
    if (typeof parsed === 'string') errors.push({ line, message: parsed });
    else examples.push(parsed);
  });
  if (errors.length > 0) throwBadRows(source, errors);
  if (examples.length === 0) {
    throw new WorkbenchError('dataset_invalid', `${source} has no rows; ${SHAPES}, one JSON object per line.`, { errors: [] });
  }
  return examples;
}

export async function readInstructionDataset(path: string): Promise<InstructionExample[]> {
  // Bounded and regular files only: a run naming /dev/zero or a pipe must fail, not read forever.
  return parseInstructionJsonl(await readTextFile(path), path);
}
