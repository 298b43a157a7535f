// The inspect-dataset job on the user fixtures: columns, first rows, the mapping, bad rows by line,
// the suggested mapping, the file's hash, and the normalized JSONL that training reads.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ColumnMapping } from '../../src-shared/datasets.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { formatAlpacaPrompt, parseInstructionJsonl } from '../../src-worker/data/dataset.ts';
import { inspectDataset, suggestColumnMapping } from '../../src-worker/data/inspect-dataset.ts';

const dir = path.join(import.meta.dirname, '..', 'fixtures', 'datasets', 'user');
const fixture = (name: string) => path.join(dir, name);
const out = mkdtempSync(path.join(tmpdir(), 'inspect-dataset-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function inspect(name: string, mapping?: ColumnMapping, normalizeTo: string | null = null, rows = 20) {
  return inspectDataset({ type: 'inspect-dataset', path: fixture(name), mapping, rows, normalizeTo });
}

describe('inspect-dataset on CSV', () => {
  it('reads quoted commas and multi-line records, and lists the bad row by line', async () => {
    const { preview, sha256, normalized } = await inspect('qa.csv');
    expect(preview.format).toBe('csv');
    expect(preview.columns).toEqual(['question', 'answer', 'category']);
    expect(preview.rowCount).toBe(5);
    expect(preview.rows[0]).toEqual({ question: 'What is the capital of France, in one word?', answer: 'Paris', category: 'geography' });
    expect(preview.rows[2]).toEqual({ question: 'Name a colour, any colour', answer: 'blue, or red', category: 'misc' });
    expect(preview.rows[3]!.question).toBe('A question over\ntwo lines?');
    expect(preview.errors).toEqual([{ line: 5, message: 'has 4 fields, the header has 3' }]);
    expect(preview.errorCount).toBe(1);
    expect(preview.mapped).toBeNull();
    expect(preview.suggestedMapping).toEqual({ prompt: 'question', completion: 'answer', task: 'category' });
    expect(sha256).toBe(
      createHash('sha256')
        .update(readFileSync(fixture('qa.csv')))
        .digest('hex'),
    );
    expect(normalized).toBeNull();
  });

  it('maps rows and reports an empty completion on its own line, sorted with the read errors', async () => {
    const { preview } = await inspect('qa.csv', { prompt: 'question', completion: 'answer', task: 'category' });
    expect(preview.mapped).toEqual([
      { prompt: 'What is the capital of France, in one word?', completion: 'Paris', task: 'geography' },
      { prompt: 'What is 2+2?', completion: '4', task: 'math' },
      { prompt: 'Name a colour, any colour', completion: 'blue, or red', task: 'misc' },
      { prompt: 'A question over\ntwo lines?', completion: 'Yes', task: 'misc' },
    ]);
    expect(preview.errors).toEqual([
      { line: 5, message: 'has 4 fields, the header has 3' },
      { line: 8, message: '"answer" is empty' },
    ]);
    expect(preview.errorCount).toBe(2);
  });

  it('keeps only `rows` rows in the preview but counts them all', async () => {
    const { preview } = await inspect('qa.csv', { prompt: 'question', completion: 'answer' }, null, 2);
    expect(preview.rows).toHaveLength(2);
    expect(preview.mapped).toHaveLength(2);
    expect(preview.rowCount).toBe(5);
  });

  it('writes the usable rows as workbench JSONL that the training reader accepts', async () => {
    const target = path.join(out, 'qa.jsonl');
    const { normalized } = await inspect('qa.csv', { prompt: 'question', completion: 'answer', task: 'category' }, target);
    expect(normalized).toBe(4);
    const lines = readFileSync(target, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    expect(lines[0]).toEqual({ prompt: 'What is the capital of France, in one word?', completion: 'Paris', task: 'geography' });
    expect(lines).toHaveLength(4);
    const examples = parseInstructionJsonl(readFileSync(target, 'utf8'), target);
    expect(examples.map((e) => e.completion)).toEqual(['Paris', '4', 'blue, or red', 'Yes']);
    expect(existsSync(`${target}.partial`)).toBe(false);
  });

  it('refuses a mapping naming a column the file lacks, naming the mapping field', async () => {
    const error = await inspect('qa.csv', { prompt: 'question', completion: 'reply' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WorkbenchError);
    expect((error as WorkbenchError).code).toBe('invalid_input');
    expect((error as WorkbenchError).details).toMatchObject({ field: 'mapping.completion', column: 'reply' });
    expect((error as WorkbenchError).message).toContain('"question", "answer", "category"');
  });
});

describe('inspect-dataset on TSV', () => {
  it('splits on tabs only and suggests sentence -> label', async () => {
    const { preview } = await inspect('sst.tsv', { prompt: 'sentence', completion: 'label' });
    expect(preview.format).toBe('tsv');
    expect(preview.columns).toEqual(['sentence', 'label']);
    expect(preview.errors).toEqual([]);
    expect(preview.suggestedMapping).toEqual({ prompt: 'sentence', completion: 'label' });
    expect(preview.mapped).toEqual([
      { prompt: 'a gripping, funny film', completion: 'positive', task: null },
      { prompt: 'dull and far too long', completion: 'negative', task: null },
      { prompt: 'a "so-so" movie', completion: 'negative', task: null },
    ]);
  });
});

describe('inspect-dataset on JSONL', () => {
  it('lists a broken line, a non-object line and a nested value by line; a missing task is no error', async () => {
    const target = path.join(out, 'notes.jsonl');
    const { preview, normalized } = await inspect('notes.jsonl', { text: 'text', task: 'task' }, target);
    expect(preview.format).toBe('jsonl');
    expect(preview.columns).toEqual(['text', 'task']);
    expect(preview.rowCount).toBe(3);
    expect(preview.suggestedMapping).toEqual({ text: 'text', task: 'task' });
    expect(preview.rows[2]).toEqual({ text: '{"nested":true}' });
    expect(preview.errors.map((e) => e.line)).toEqual([2, 4, 5]);
    expect(preview.errors[0]!.message).toMatch(/^invalid JSON/);
    expect(preview.errors[1]!.message).toBe('not a JSON object');
    expect(preview.errors[2]!.message).toBe('"text" must be text, got {"nested":true}');
    expect(normalized).toBe(2);
    expect(readFileSync(target, 'utf8')).toBe('{"text":"The first note.","task":"notes"}\n{"text":"A third note, after a broken line."}\n');
  });

  it('maps Alpaca rows exactly as the training reader reads the Alpaca file itself', async () => {
    const target = path.join(out, 'alpaca.jsonl');
    const { preview, normalized } = await inspect('alpaca.jsonl', { prompt: 'instruction', input: 'input', completion: 'output' }, target);
    expect(preview.suggestedMapping).toEqual({ prompt: 'instruction', input: 'input', completion: 'output' });
    expect(preview.mapped![1]).toEqual({ prompt: formatAlpacaPrompt('Translate to French.', 'Good morning'), completion: 'Bonjour.', task: null });
    expect(preview.errors).toEqual([{ line: 3, message: '"output" is empty' }]);
    expect(normalized).toBe(2);
    const source = readFileSync(fixture('alpaca.jsonl'), 'utf8').split('\n').slice(0, 2).join('\n');
    const strip = (rows: { prompt: string; completion: string }[]) => rows.map(({ prompt, completion }) => ({ prompt, completion }));
    expect(strip(parseInstructionJsonl(readFileSync(target, 'utf8')))).toEqual(strip(parseInstructionJsonl(source)));
  });

  it('refuses an input mapping without a prompt, and text with a prompt', async () => {
    await expect(inspect('alpaca.jsonl', { input: 'input', completion: 'output' })).rejects.toMatchObject({ details: { field: 'mapping.input' } });
    await expect(inspect('notes.jsonl', { text: 'text', prompt: 'task' })).rejects.toMatchObject({ details: { field: 'mapping.prompt' } });
  });

  it('says a missing file is not found and a JSON array should be converted', async () => {
    await expect(inspect('nope.csv')).rejects.toMatchObject({ code: 'not_found' });
    const array = path.join(out, 'array.json');
    (await import('node:fs')).writeFileSync(array, '[{"text": "a"}]');
    await expect(inspectDataset({ type: 'inspect-dataset', path: array, rows: 5, normalizeTo: null })).rejects.toThrow(/JSON Lines/);
  });
});

describe('suggestColumnMapping', () => {
  it('knows the common shapes, case-insensitively', () => {
    expect(suggestColumnMapping(['Prompt', 'Completion'])).toEqual({ prompt: 'Prompt', completion: 'Completion' });
    expect(suggestColumnMapping(['instruction', 'context', 'response', 'category'])).toEqual({
      prompt: 'instruction',
      input: 'context',
      completion: 'response',
      task: 'category',
    });
    expect(suggestColumnMapping(['question', 'answer'])).toEqual({ prompt: 'question', completion: 'answer' });
    expect(suggestColumnMapping(['id', 'body'])).toEqual({ text: 'body' });
    expect(suggestColumnMapping(['a', 'b'])).toBeNull();
  });
});
