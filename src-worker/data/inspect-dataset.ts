// The `inspect-dataset` job: a user's JSONL / CSV / TSV file read with the table readers (readers/user-table.ts),
// shown as columns and first rows, mapped column by column onto prompt / completion (or text), and, when
// registering, written out as the workbench's own JSONL. Bad rows are listed with their lines and left out
// of the normalized file, never dropped without a word: the registry records how many were skipped.
import { createHash } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ColumnMapping, DatasetPreview } from '../../src-shared/datasets.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { InspectDatasetJob } from '../../src-shared/worker-protocol.ts';
import { formatAlpacaPrompt } from './dataset.ts';
import { readBoundedFile, RowErrors, RowProblem } from './readers/common.ts';
import { cellText, detectTableFormat, loadRows, type RawRow } from './readers/user-table.ts';

type Format = DatasetPreview['format'];
export type MappedRow = NonNullable<DatasetPreview['mapped']>[number];

/** A preview reads at most this much of the file's head (cut back to the last whole line). */
export const PREVIEW_BYTES = 4 * 1024 * 1024;

/** The preview keeps this many bad rows; errorCount has them all. */
export const MAX_LISTED_ERRORS = 100;

export interface DatasetInspection {
  preview: DatasetPreview;
  sha256: string;
  /** Rows written to normalizeTo, or null when the job did not ask for it. */
  normalized: number | null;
}

/** From the extension when it is one we know, else from the content; JSON arrays are refused (convert to JSONL). */
export function guessFormat(text: string, file: string): Format {
  const detected = detectTableFormat(text, file);
  if (detected !== 'json') return detected;
  throw new WorkbenchError(
    'dataset_invalid',
    `${file} is a JSON array; the workbench reads JSON Lines (one object per line). Convert it, e.g. \`jq -c '.[]' ${path.basename(file)} > ${path.basename(file, path.extname(file))}.jsonl\`, and pick the .jsonl file.`,
    { field: 'path', path: file },
  );
}

// Pairs in order of how surely they mean prompt -> completion; the first whose both columns exist wins.
const PAIRS: [string, string][] = [
  ['prompt', 'completion'],
  ['prompt', 'response'],
  ['instruction', 'output'],
  ['instruction', 'response'],
  ['question', 'answer'],
  ['query', 'response'],
  ['query', 'answer'],
  ['input', 'output'],
  ['input', 'target'],
  ['source', 'target'],
  ['sentence', 'label'],
  ['text', 'label'],
];
const TEXT_NAMES = ['text', 'content', 'body', 'document', 'sentence'];
// Alpaca calls the instruction's extra context `input`; Dolly calls it `context`.
const INPUT_NAMES = ['input', 'context'];
const TASK_NAMES = ['task', 'task_name', 'category'];

/** A mapping guessed from column names (case-insensitive), or null when none fits. */
export function suggestColumnMapping(columns: string[]): ColumnMapping | null {
  const find = (name: string) => columns.find((c) => c.trim().toLowerCase() === name);
  const task = TASK_NAMES.map(find).find((c) => c !== undefined);
  const withTask = (m: ColumnMapping): ColumnMapping => (task !== undefined ? { ...m, task } : m);
  for (const [p, c] of PAIRS) {
    const prompt = find(p);
    const completion = find(c);
    if (prompt === undefined || completion === undefined) continue;
    const input = p === 'instruction' ? INPUT_NAMES.map(find).find((x) => x !== undefined) : undefined;
    return withTask(input !== undefined ? { prompt, input, completion } : { prompt, completion });
  }
  const text = TEXT_NAMES.map(find).find((c) => c !== undefined);
  return text === undefined ? null : withTask({ text });
}

/** Refuses a mapping naming a column the file does not have, naming the mapping field at fault. */
export function checkMapping(mapping: ColumnMapping, columns: string[], source: string): void {
  if (mapping.text !== undefined && (mapping.prompt !== undefined || mapping.input !== undefined)) {
    const field = mapping.prompt !== undefined ? 'prompt' : 'input';
    throw new WorkbenchError(
      'invalid_input',
      `A text mapping trains on every token and has no prompt: clear "${field}", or map "completion" instead of "text".`,
      {
        field: `mapping.${field}`,
      },
    );
  }
  if (mapping.input !== undefined && mapping.prompt === undefined) {
    throw new WorkbenchError(
      'invalid_input',
      `"input" is Alpaca's extra context for an instruction: map the instruction column as "prompt" too, or clear "input".`,
      {
        field: 'mapping.input',
      },
    );
  }
  for (const field of ['prompt', 'input', 'completion', 'text', 'task'] as const) {
    const column = mapping[field];
    if (column === undefined || columns.includes(column)) continue;
    throw new WorkbenchError(
      'invalid_input',
      `The mapping's ${field} column "${column}" is not in ${source}; its columns are ${columns.map((c) => `"${c}"`).join(', ') || '(none)'}. Pick one of them.`,
      { field: `mapping.${field}`, column, columns },
    );
  }
}

/** One row through the mapping; a RowProblem names what is missing or empty. */
export function mapRow(values: Record<string, unknown>, mapping: ColumnMapping): MappedRow {
  const cell = (column: string) => {
    if (!(column in values) || values[column] === null || values[column] === undefined) throw new RowProblem(`missing "${column}"`);
    return cellText(values[column], column);
  };
  // The task label is optional per row too: a row without one trains like any other, untagged.
  const taskValue = mapping.task === undefined ? undefined : values[mapping.task];
  const task = taskValue === undefined || taskValue === null ? null : cellText(taskValue, mapping.task!).trim() || null;
  // The same rules as training's JSONL reader (../dataset.ts): an empty prompt is legal, an empty completion is not.
  const target = mapping.text ?? mapping.completion!;
  const completion = cell(target);
  if (completion.trim() === '') throw new RowProblem(`"${target}" is empty`);
  if (mapping.text !== undefined) return { prompt: '', completion, task };
  let prompt = mapping.prompt === undefined ? '' : cell(mapping.prompt);
  if (mapping.input !== undefined) {
    if (prompt.trim() === '') throw new RowProblem(`"${mapping.prompt}" is empty (the instruction)`);
    prompt = formatAlpacaPrompt(prompt, cell(mapping.input));
  }
  return { prompt, completion, task };
}

/** The workbench's JSONL line for a mapped row: {"text"} for a text mapping, else {"prompt","completion"}; "task" when mapped. */
export function normalizedLine(row: MappedRow, mapping: ColumnMapping): string {
  const body: Record<string, string> = mapping.text !== undefined ? { text: row.completion } : { prompt: row.prompt, completion: row.completion };
  if (row.task !== null) body.task = row.task;
  return JSON.stringify(body);
}

function previewValues(row: RawRow, columns: string[]): Record<string, string> {
  const values: Record<string, string> = {};
  for (const c of columns) {
    if (!(c in row.values)) continue;
    const v = row.values[c];
    values[c] = typeof v === 'string' ? v : v === null ? '' : JSON.stringify(v);
  }
  return values;
}

export async function inspectDataset(job: InspectDatasetJob, log: (message: string) => void = () => {}): Promise<DatasetInspection> {
  const file = path.resolve(job.path);
  // A preview reads the file's head only, so any size can be previewed in a moment; registering reads it whole.
  const { bytes, complete } = await readBoundedFile(file, job.normalizeTo === null ? { headBytes: PREVIEW_BYTES } : {});
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const text = bytes.toString('utf8');
  const format = job.format ?? guessFormat(text, file);
  const errors = new RowErrors();
  const { columns, rows } = loadRows(text, file, format, errors);

  const mapping = job.mapping;
  if (mapping && columns.length > 0) checkMapping(mapping, columns, file);
  const mapped: MappedRow[] = [];
  const lines: string[] = [];
  if (mapping) {
    for (const row of rows) {
      const result = errors.guard(row.line, () => mapRow(row.values, mapping));
      if (!result) continue;
      if (mapped.length < job.rows) mapped.push(result);
      if (job.normalizeTo !== null) lines.push(normalizedLine(result, mapping));
    }
  }

  let normalized: number | null = null;
  if (job.normalizeTo !== null) {
    if (!mapping) throw new WorkbenchError('invalid_input', 'Writing the normalized dataset needs a column mapping.', { field: 'mapping' });
    normalized = lines.length;
    if (lines.length > 0) {
      // Written beside the target and renamed, so a crash never leaves a half file that a run would train on.
      const target = path.resolve(job.normalizeTo);
      const partial = `${target}.partial`;
      await mkdir(path.dirname(target), { recursive: true });
      try {
        await writeFile(partial, `${lines.join('\n')}\n`, 'utf8');
        await rename(partial, target);
      } catch (e) {
        await rm(partial, { force: true });
        throw e;
      }
      log(`Wrote ${lines.length} rows to ${target}${errors.list.length ? ` (${errors.list.length} bad rows left out)` : ''}.`);
    }
  }

  const sorted = [...errors.list].sort((a, b) => a.line - b.line);
  const preview: DatasetPreview = {
    path: file,
    format,
    columns,
    rows: rows.slice(0, job.rows).map((row) => previewValues(row, columns)),
    mapped: mapping ? mapped : null,
    rowCount: rows.length,
    errors: sorted.slice(0, MAX_LISTED_ERRORS),
    errorCount: sorted.length,
    suggestedMapping: suggestColumnMapping(columns) as Record<string, string> | null,
    partial: !complete,
  };
  return { preview, sha256, normalized };
}
