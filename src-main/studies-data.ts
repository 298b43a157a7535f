// The training data of a study cell: a JSONL source rendered through the recipe's templates into the
// prompt/completion JSONL that runs train on, optionally imbalanced on a label and cut to a number of rows.
// Deterministic (no randomness: rows are taken spread evenly in file order), and cached by content.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { WorkbenchError } from '../src-shared/errors.ts';
import type { StudyData } from '../src-shared/studies.ts';

type Row = Record<string, unknown>;

function readJsonl(file: string): Row[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new WorkbenchError('not_found', `The study's training data ${file} cannot be read (${(error as Error).message}). Check the data path (--data DIR).`, {
      field: 'data.source',
      path: file,
    });
  }
  return text.split('\n').flatMap((line, i) => {
    if (!line.trim()) return [];
    try {
      return [JSON.parse(line) as Row];
    } catch {
      throw new WorkbenchError('dataset_invalid', `${file} line ${i + 1} is not JSON; the study's data.source must be a JSONL file.`, {
        field: 'data.source',
        line: i + 1,
      });
    }
  });
}

/** `count` items of `items` spread evenly over them (all of them when count >= length). */
export function spread<T>(items: readonly T[], count: number): T[] {
  if (count >= items.length) return [...items];
  return Array.from({ length: count }, (_, i) => items[Math.floor((i * items.length) / count)]!);
}

/** A field of a row, or a dotted path into it ("answers_objects.0.spans.0"); undefined where it is absent. */
function fieldValue(row: Row, field: string): unknown {
  let at: unknown = row;
  for (const part of field.split('.')) {
    if (at === null || typeof at !== 'object' || !(part in at)) return undefined;
    at = (at as Record<string, unknown>)[part];
  }
  return at;
}

function render(template: string, row: Row, values: StudyData['values']): string {
  return template.replace(/\{([\w.]+)\}/g, (_, field: string) => {
    const raw = fieldValue(row, field);
    if (raw === undefined)
      throw new WorkbenchError(
        'dataset_invalid',
        `The template names {${field}}, which a data row does not have (its fields: ${Object.keys(row).join(', ')}).`,
        { field: 'data' },
      );
    const text = raw === null ? '' : typeof raw === 'string' ? raw : JSON.stringify(raw);
    return values[field]?.[text] ?? text;
  });
}

/**
 * Keeps every row of the majority label up to `ratio` times the rows of the scarcest other label, and that
 * many of each other label: the imbalance is exactly ratio : 1 : 1 … whatever the source's own balance.
 * With `total`, about that many rows in all (the minority count rounded, so the ratio stays exact): each label
 * is cut on its own, because spreading the mixed rows afterwards aliases with the labels' order in the file
 * (QQP's 10:1 came out 6.4:1 in 200 rows that way).
 * Labels are the raw field values (before `values` maps them to words).
 */
export function imbalance(rows: readonly Row[], spec: NonNullable<StudyData['imbalance']>, total: number | null = null): Row[] {
  const byLabel = new Map<string, Row[]>();
  for (const row of rows) {
    const raw = row[spec.field];
    const label = raw === undefined || raw === null ? '' : typeof raw === 'string' ? raw : JSON.stringify(raw);
    byLabel.set(label, [...(byLabel.get(label) ?? []), row]);
  }
  const majority = byLabel.get(spec.majority) ?? [];
  const others = [...byLabel.entries()].filter(([label]) => label !== spec.majority).map(([, r]) => r);
  if (majority.length === 0 || others.length === 0) {
    throw new WorkbenchError(
      'dataset_invalid',
      `data.imbalance needs rows with ${spec.field} = ${spec.majority} and rows with another value; found labels: ${[...byLabel.keys()].join(', ')}.`,
      {
        field: 'data.imbalance',
      },
    );
  }
  const available = Math.min(Math.min(...others.map((r) => r.length)), Math.floor(majority.length / spec.ratio));
  const perMinority = total === null ? available : Math.min(available, Math.max(1, Math.round(total / (spec.ratio + others.length))));
  if (perMinority < 1)
    throw new WorkbenchError('dataset_invalid', `Too few rows labelled ${spec.majority} for the ratio ${spec.ratio}:1.`, { field: 'data.imbalance.ratio' });
  const kept = new Set([...spread(majority, Math.round(perMinority * spec.ratio)), ...others.flatMap((r) => spread(r, perMinority))]);
  return rows.filter((row) => kept.has(row));
}

const asText = (raw: unknown) => (raw === undefined || raw === null ? '' : typeof raw === 'string' ? raw : JSON.stringify(raw));

type Part = Pick<StudyData, 'prompt' | 'completion' | 'task' | 'values' | 'rows'> & {
  imbalance?: StudyData['imbalance'];
  filter?: StudyData['filter'];
  heldOut?: StudyData['heldOut'];
};

/** The rows the filter keeps, split: every `heldOut`-th one is the test set, never trained on. */
function splitRows(spec: Part, source: readonly Row[]): { train: Row[]; test: Row[] } {
  const kept = source.filter((row) => Object.entries(spec.filter ?? {}).every(([field, value]) => asText(fieldValue(row, field)) === value));
  if (!spec.heldOut) return { train: kept, test: [] };
  const every = spec.heldOut;
  return { train: kept.filter((_, i) => i % every !== 0), test: kept.filter((_, i) => i % every === 0) };
}

/** Renders one source's rows; with `rows`, the imbalance is kept while the total is cut to about that many. */
export function studyTrainingRows(spec: Part, source: readonly Row[]): { prompt: string; completion: string; task?: string }[] {
  const kept = splitRows(spec, source).train;
  const total = spec.rows ?? null;
  let rows: Row[];
  if (spec.imbalance) rows = imbalance(kept, spec.imbalance, total);
  else rows = total === null ? kept : spread(kept, total);
  return rows.map((row) => ({
    prompt: render(spec.prompt, row, spec.values),
    completion: render(spec.completion, row, spec.values),
    ...(spec.task ? { task: render(spec.task, row, spec.values) } : {}),
  }));
}

/** Writes the cell's training file under `dir` (once per distinct content) and returns its path. */
export function prepareStudyData(spec: StudyData, dir: string): string {
  const rows = [spec, ...spec.also].flatMap((part) => studyTrainingRows(part, readJsonl(path.resolve(part.source))));
  if (rows.length === 0) throw new WorkbenchError('dataset_invalid', `The study's data section selects no rows from ${spec.source}.`, { field: 'data' });
  return writeOnce(dir, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
}

/** The held-out rows (data.heldOut) rendered, `count` of them spread evenly. */
export function studyHeldOutRows(spec: Part, source: readonly Row[], count: number): { prompt: string; completion: string }[] {
  return spread(splitRows(spec, source).test, count).map((row) => ({
    prompt: render(spec.prompt, row, spec.values),
    completion: render(spec.completion, row, spec.values),
  }));
}

/**
 * Writes a task's held-out rows as the perplexity suite's text corpus (JSONL with "prompt" and "completion":
 * the completion is scored given the prompt, as training scores it) and returns its path.
 */
export function prepareHeldOutText(spec: StudyData, dir: string, count: number): string {
  const rows = studyHeldOutRows(spec, readJsonl(path.resolve(spec.source)), count);
  if (rows.length === 0)
    throw new WorkbenchError('dataset_invalid', `No held-out rows in ${spec.source}: data.heldOut keeps every n-th row the filter keeps, and it keeps none.`, {
      field: 'data.heldOut',
    });
  return writeOnce(dir, `${rows.map((row) => JSON.stringify(row)).join('\n')}\n`);
}

/** A file under `dir` named by its content's digest, written once (atomically). */
function writeOnce(dir: string, text: string): string {
  const file = path.join(dir, `${createHash('sha256').update(text).digest('hex').slice(0, 16)}.jsonl`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${file}.tmp`, text);
    renameSync(`${file}.tmp`, file);
  }
  return file;
}
