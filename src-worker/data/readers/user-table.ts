// The user's own table, JSONL (or a JSON array of objects) or CSV / TSV with a header row,
// turned into prompt/completion examples through a column mapping the user picks after a preview:
//   {prompt: "question", completion: "answer"}  conditional text, loss on the completion
//   {text: "body"}                              plain language modelling, loss on every token
// The rules match ../dataset.ts: an empty prompt is allowed, an empty completion is not, and
// every bad row is reported with its line.
import { WorkbenchError } from '../../../src-shared/errors.ts';
import type { InstructionExample } from '../dataset.ts';
import { RowErrors, RowProblem, describeValue, jsonItems, jsonlLines, parseTable, readTextFile, throwEmpty, type DatasetRowError } from './common.ts';

export type ColumnMapping = { prompt: string; completion: string } | { text: string };
export type TableFormat = 'jsonl' | 'json' | 'csv' | 'tsv';

export interface TablePreview {
  format: TableFormat;
  /** Column names in first-seen order (JSON keys are collected over the whole file). */
  columns: string[];
  /** The first rows, every value as text. */
  rows: { line: number; values: Record<string, string> }[];
  rowCount: number;
  /** A mapping guessed from common column names, or null when nothing fits. */
  suggestedMapping: ColumnMapping | null;
  /** Rows that could not be read at all, for the preview to show before the user commits. */
  errors: DatasetRowError[];
}

/** From the file name when it says, else from the first character / first line. */
export function detectTableFormat(text: string, source = ''): TableFormat {
  const lower = source.toLowerCase();
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson')) return 'jsonl';
  if (lower.endsWith('.json'))
    return text
      .replace(/^\uFEFF/, '')
      .trimStart()
      .startsWith('[')
      ? 'json'
      : 'jsonl';
  if (lower.endsWith('.csv')) return 'csv';
  if (lower.endsWith('.tsv') || lower.endsWith('.tab')) return 'tsv';
  const head = text.replace(/^\uFEFF/, '').trimStart();
  if (head.startsWith('[')) return 'json';
  if (head.startsWith('{')) return 'jsonl';
  const firstLine = head.split('\n', 1)[0] ?? '';
  return (firstLine.match(/\t/g)?.length ?? 0) > (firstLine.match(/,/g)?.length ?? 0) ? 'tsv' : 'csv';
}

/** A cell as text: strings as they are, numbers and booleans printed; anything else is a bad row. */
export function cellText(value: unknown, column: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new RowProblem(`"${column}" must be text, got ${describeValue(value)}`);
}

export interface RawRow {
  line: number;
  values: Record<string, unknown>;
}

export function loadRows(text: string, source: string, format: TableFormat, errors: RowErrors): { columns: string[]; rows: RawRow[] } {
  if (format === 'csv' || format === 'tsv') {
    const table = parseTable(text, { delimiter: format === 'csv' ? ',' : '\t' }, errors);
    const duplicate = table.columns.find((c, k) => table.columns.indexOf(c) !== k);
    if (duplicate !== undefined) errors.add(table.headerLine, `header names column "${duplicate}" twice`);
    return table;
  }
  const items = format === 'json' ? jsonItems(text, source).map((item) => ({ line: item.line, value: item.value })) : [...jsonlLines(text)];
  const columns: string[] = [];
  const rows: RawRow[] = [];
  for (const item of items) {
    if ('error' in item) {
      errors.add(item.line, item.error);
      continue;
    }
    const value = item.value;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      errors.add(item.line, 'not a JSON object');
      continue;
    }
    for (const key of Object.keys(value)) if (!columns.includes(key)) columns.push(key);
    rows.push({ line: item.line, values: value as Record<string, unknown> });
  }
  return { columns, rows };
}

const PROMPT_NAMES = ['prompt', 'instruction', 'question', 'input', 'query', 'source', 'context'];
const COMPLETION_NAMES = ['completion', 'response', 'output', 'answer', 'target', 'label', 'reply'];
const TEXT_NAMES = ['text', 'content', 'sentence', 'body', 'document'];

export function suggestMapping(columns: string[]): ColumnMapping | null {
  const find = (names: string[]) => names.map((n) => columns.find((c) => c.toLowerCase() === n)).find((c) => c !== undefined);
  const prompt = find(PROMPT_NAMES);
  const completion = find(COMPLETION_NAMES);
  if (prompt !== undefined && completion !== undefined && prompt !== completion) return { prompt, completion };
  const text = find(TEXT_NAMES);
  return text === undefined ? null : { text };
}

/** The first rows and the columns, for the mapping dialog; bad rows are listed, not thrown. */
export function previewUserTable(text: string, source = 'table', options: { maxRows?: number; format?: TableFormat } = {}): TablePreview {
  const format = options.format ?? detectTableFormat(text, source);
  const errors = new RowErrors();
  const { columns, rows } = loadRows(text, source, format, errors);
  const shown = rows.slice(0, options.maxRows ?? 5).map((row) => {
    const values: Record<string, string> = {};
    for (const [k, v] of Object.entries(row.values)) values[k] = typeof v === 'string' ? v : JSON.stringify(v);
    return { line: row.line, values };
  });
  return { format, columns, rows: shown, rowCount: rows.length, suggestedMapping: suggestMapping(columns), errors: errors.list.slice(0, 20) };
}

export function parseUserTable(text: string, source: string, mapping: ColumnMapping, options: { format?: TableFormat } = {}): InstructionExample[] {
  const format = options.format ?? detectTableFormat(text, source);
  const errors = new RowErrors();
  const { columns, rows } = loadRows(text, source, format, errors);
  const wanted = 'text' in mapping ? [mapping.text] : [mapping.prompt, mapping.completion];
  const unknown = wanted.filter((c) => !columns.includes(c));
  if (unknown.length > 0 && columns.length > 0) {
    throw new WorkbenchError(
      'invalid_input',
      `${source} has no column ${unknown.map((c) => `"${c}"`).join(' or ')}; its columns are ${columns.map((c) => `"${c}"`).join(', ')}. Pick one of them.`,
      { columns, mapping },
    );
  }
  const examples: InstructionExample[] = [];
  for (const row of rows) {
    const example = errors.guard(row.line, () => {
      const cell = (column: string) => {
        if (!(column in row.values) || row.values[column] === null) throw new RowProblem(`missing "${column}"`);
        return cellText(row.values[column], column);
      };
      if ('text' in mapping) {
        const body = cell(mapping.text);
        if (body.trim() === '') throw new RowProblem(`"${mapping.text}" is empty`);
        return { prompt: '', completion: body, line: row.line };
      }
      const completion = cell(mapping.completion);
      if (completion.trim() === '') throw new RowProblem(`"${mapping.completion}" is empty`);
      return { prompt: cell(mapping.prompt), completion, line: row.line };
    });
    if (example) examples.push(example);
  }
  errors.throwIfAny(source);
  if (examples.length === 0) throwEmpty(source, 'a header (or JSON keys) and at least one row');
  return examples;
}

export async function readUserTable(path: string, mapping: ColumnMapping, options: { format?: TableFormat } = {}): Promise<InstructionExample[]> {
  return parseUserTable(await readTextFile(path), path, mapping, options);
}

export async function previewUserTableFile(path: string, options: { maxRows?: number; format?: TableFormat } = {}): Promise<TablePreview> {
  return previewUserTable(await readTextFile(path), path, options);
}
