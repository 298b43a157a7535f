import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { formatAlpacaPrompt, parseInstructionJsonl, readInstructionDataset } from '../../src-worker/data/dataset.ts';
import { splitTrainValidation, validationSize } from '../../src-worker/data/split.ts';
import { tokenizeExample, type EncodingTokenizer } from '../../src-worker/data/tokenize.ts';

/** One token per character (code point + 10), EOS = 1: token counts equal string lengths. */
const charTokenizer: EncodingTokenizer = { encode: (text) => [...text].map((c) => c.codePointAt(0)! + 10), eosTokenId: 1 };

function caught(fn: () => unknown): WorkbenchError {
  try {
    fn();
  } catch (e) {
    if (e instanceof WorkbenchError) return e;
    throw e;
  }
  throw new Error('expected a WorkbenchError');
}

describe('parseInstructionJsonl', () => {
  it('reads the three row shapes and keeps line numbers', () => {
    const text = [
      '{"prompt": "2+2=", "completion": "4"}',
      '',
      '{"instruction": "Add", "input": "2 and 2", "output": "4"}',
      '{"instruction": "Say hi", "output": "hi"}',
      '{"text": "plain text"}',
    ].join('\n');
    const rows = parseInstructionJsonl(text);
    expect(rows).toEqual([
      { prompt: '2+2=', completion: '4', line: 1 },
      { prompt: formatAlpacaPrompt('Add', '2 and 2'), completion: '4', line: 3 },
      { prompt: formatAlpacaPrompt('Say hi', ''), completion: 'hi', line: 4 },
      { prompt: '', completion: 'plain text', line: 5 },
    ]);
    expect(rows[1]!.prompt).toContain('### Input:\n2 and 2');
    expect(rows[2]!.prompt).not.toContain('### Input');
  });

  it('accepts CRLF line ends and a byte-order mark', () => {
    expect(parseInstructionJsonl('\uFEFF{"prompt":"a","completion":"b"}\r\n{"text":"c"}\r\n')).toHaveLength(2);
  });

  it('lists every bad row with its line number and drops none silently', () => {
    const text = [
      '{"prompt": "ok", "completion": "fine"}',
      '{"prompt": "no completion"}',
      'not json',
      '[1, 2]',
      '{"prompt": "x", "completion": 5}',
      '{"prompt": "x", "completion": "   "}',
      '{"question": "?", "answer": "!"}',
      '{"instruction": "x", "input": 3, "output": "y"}',
      '{"text": "fine too"}',
    ].join('\n');
    const error = caught(() => parseInstructionJsonl(text, 'train.jsonl'));
    expect(error.code).toBe('dataset_invalid');
    const errors = (error.details as { errors: { line: number; message: string }[] }).errors;
    expect(errors.map((e) => e.line)).toEqual([2, 3, 4, 5, 6, 7, 8]);
    expect(errors[0]!.message).toContain('missing "completion"');
    expect(errors[1]!.message).toContain('invalid JSON');
    expect(errors[2]!.message).toContain('not a JSON object');
    expect(errors[3]!.message).toContain('"completion" must be a string');
    expect(errors[4]!.message).toContain('"completion" is empty');
    expect(errors[5]!.message).toContain('unknown row shape with keys question, answer');
    expect(errors[6]!.message).toContain('"input" must be a string');
    expect(error.message).toMatch(/^train\.jsonl has 7 bad rows: line 2: .*\(and 2 more\)/);
  });

  it('rejects a file without rows', () => {
    expect(caught(() => parseInstructionJsonl('\n\n')).code).toBe('dataset_invalid');
  });

  it('reads a file, and reports a missing one as not_found', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lw-dataset-'));
    writeFileSync(join(dir, 'a.jsonl'), '{"prompt":"p","completion":"c"}\n');
    expect(await readInstructionDataset(join(dir, 'a.jsonl'))).toEqual([{ prompt: 'p', completion: 'c', line: 1 }]);
    await expect(readInstructionDataset(join(dir, 'missing.jsonl'))).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe('tokenizeExample', () => {
  it('puts the loss on the completion and EOS only', () => {
    const t = tokenizeExample(charTokenizer, { prompt: 'ab', completion: 'xyz', line: 1 }, 32);
    expect(t.inputIds).toEqual([107, 108, 130, 131, 132, 1]);
    expect(t.lossMask).toEqual([0, 0, 1, 1, 1, 1]);
    expect(t.promptLength).toBe(2);
    expect(t.truncated).toBe(false);
  });

  it('trains on every token of a plain text row', () => {
    const t = tokenizeExample(charTokenizer, { prompt: '', completion: 'hey', line: 1 }, 32);
    expect(t.lossMask).toEqual([1, 1, 1, 1]);
  });

  it('cuts the prompt from the left first', () => {
    const t = tokenizeExample(charTokenizer, { prompt: 'abcdefgh', completion: 'xy', line: 1 }, 8);
    // 8 prompt + 2 completion + EOS = 11 > 8: the first 3 prompt tokens go.
    expect(t.inputIds).toEqual([...'defgh'].map((c) => c.codePointAt(0)! + 10).concat([130, 131, 1]));
    expect(t.lossMask).toEqual([0, 0, 0, 0, 0, 1, 1, 1]);
    expect(t.truncated).toBe(true);
  });

  it('starts every example with the BOS token of a model that has one, and keeps it when truncating', () => {
    const withBos: EncodingTokenizer = { ...charTokenizer, bosTokenId: 2 };
    const t = tokenizeExample(withBos, { prompt: 'ab', completion: 'x', line: 1 }, 32);
    expect(t.inputIds).toEqual([2, 107, 108, 130, 1]);
    expect(t.lossMask).toEqual([0, 0, 0, 1, 1]);
    expect(t.promptLength).toBe(3);
    const cut = tokenizeExample(withBos, { prompt: 'abcdefgh', completion: 'xy', line: 1 }, 6);
    expect(cut.inputIds).toEqual([2, 113, 114, 130, 131, 1]);
    const text = tokenizeExample(withBos, { prompt: '', completion: 'hey', line: 1 }, 32);
    expect(text.inputIds[0]).toBe(2);
    expect(text.lossMask).toEqual([0, 1, 1, 1, 1]);
  });

  it('cuts the completion from the right once the prompt is gone', () => {
    const t = tokenizeExample(charTokenizer, { prompt: 'ab', completion: 'stuvwxyz', line: 1 }, 5);
    expect(t.inputIds).toEqual([...'stuvw'].map((c) => c.codePointAt(0)! + 10));
    expect(t.lossMask).toEqual([1, 1, 1, 1, 1]);
    expect(t.promptLength).toBe(0);
  });
});

describe('splitTrainValidation', () => {
  it('is a deterministic partition that depends on the seed', () => {
    const a = splitTrainValidation(50, 0.1, 7);
    expect(splitTrainValidation(50, 0.1, 7)).toEqual(a);
    expect(a.validation).toHaveLength(5);
    expect([...a.train, ...a.validation].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(new Set([...a.train, ...a.validation]).size).toBe(50);
    expect(splitTrainValidation(50, 0.1, 8).validation).not.toEqual(a.validation);
  });

  it('holds out at least one row from 10 rows up, and never every row', () => {
    expect(validationSize(10, 0.01)).toBe(1);
    expect(validationSize(9, 0.01)).toBe(0);
    expect(validationSize(4, 0.5)).toBe(2);
    expect(validationSize(2, 0.5)).toBe(1);
    expect(validationSize(1, 0.5)).toBe(0);
    expect(validationSize(100, 0)).toBe(0);
    expect(splitTrainValidation(12, 0.01, 1).validation).toHaveLength(1);
  });
});
