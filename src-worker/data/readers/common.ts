// What every reader shares: reading the file, walking JSONL / JSON / CSV with line numbers,
// checking fields, and one error that lists every bad row (the style of ../dataset.ts).
import { constants } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { WorkbenchError } from '../../../src-shared/errors.ts';
import { parseCsv, type CsvOptions, type CsvRecord } from './csv.ts';

export interface DatasetRowError {
  line: number;
  message: string;
}

/** One error listing every bad row (the first five in the message), so a file is fixed in one pass. */
export function throwBadRows(source: string, errors: DatasetRowError[]): never {
  const shown = errors
    .slice(0, 5)
    .map((e) => `line ${e.line}: ${e.message}`)
    .join('; ');
  const more = errors.length > 5 ? ` (and ${errors.length - 5} more)` : '';
  throw new WorkbenchError(
    'dataset_invalid',
    `${source} has ${errors.length} bad row${errors.length === 1 ? '' : 's'}: ${shown}${more}. Fix or remove these lines and start again.`,
    { errors },
  );
}

/** Thrown inside a row check; caught by the reader and turned into a line-numbered error. */
export class RowProblem extends Error {}

/**
 * The largest file read whole. Readers hold the text in memory and V8 strings end at ~536 million
 * characters; past this a 1.9 GB file failed after 9 s with "Cannot create a string longer than ...".
 */
export const MAX_DATASET_BYTES = 500_000_000;

function megabytes(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${Math.round(bytes / 1e6)} MB`;
}

export interface BoundedRead {
  bytes: Buffer;
  /** The file's size on disk. */
  size: number;
  /** False when only the head was read (headBytes). */
  complete: boolean;
}

/**
 * Reads a regular file, whole (up to `limit`, refused with the limit named beyond it) or only its first
 * `headBytes` cut back to the last whole line. Devices (/dev/zero), pipes and sockets are refused before
 * any read: they have no end to read to. O_NONBLOCK keeps the open of a named pipe from waiting for a writer.
 */
export async function readBoundedFile(file: string, options: { what?: string; limit?: number; headBytes?: number } = {}): Promise<BoundedRead> {
  const what = options.what ?? 'Dataset';
  const limit = options.limit ?? MAX_DATASET_BYTES;
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new WorkbenchError('not_found', `${what} file ${file} does not exist. Pick another file.`, { field: 'path', path: file });
    if (code === 'EISDIR') throw new WorkbenchError('dataset_invalid', `${file} is a folder; pick one of the files inside it.`, { field: 'path', path: file });
    throw new WorkbenchError('dataset_invalid', `Cannot read ${what.toLowerCase()} ${file}: ${(e as Error).message}`, { field: 'path', path: file });
  }
  try {
    const info = await handle.stat();
    if (info.isDirectory()) throw new WorkbenchError('dataset_invalid', `${file} is a folder; pick one of the files inside it.`, { field: 'path', path: file });
    if (!info.isFile()) {
      throw new WorkbenchError(
        'dataset_invalid',
        `${file} is not a regular file (a device, pipe or socket has no end to read to). Pick a .jsonl, .csv or .tsv file.`,
        {
          field: 'path',
          path: file,
        },
      );
    }
    const head = options.headBytes !== undefined && info.size > options.headBytes;
    if (!head && info.size > limit) {
      throw new WorkbenchError(
        'dataset_invalid',
        `${file} is ${megabytes(info.size)}; the workbench reads ${what.toLowerCase()} files up to ${megabytes(limit)}. Split it into smaller files (e.g. \`split -l 100000 ${basename(file)}\`) and use one of them.`,
        { field: 'path', path: file, size: info.size, limit },
      );
    }
    const wanted = head ? options.headBytes! : info.size;
    const buffer = Buffer.alloc(wanted);
    let filled = 0;
    // A file that shrank while being read ends early; one that grew is read up to the size it had.
    while (filled < wanted) {
      const { bytesRead } = await handle.read(buffer, filled, wanted - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    let bytes = buffer.subarray(0, filled);
    if (head) {
      const lastNewline = bytes.lastIndexOf(0x0a);
      if (lastNewline >= 0) bytes = bytes.subarray(0, lastNewline + 1);
    }
    return { bytes, size: info.size, complete: !head };
  } finally {
    await handle.close();
  }
}

export async function readTextFile(path: string, what = 'Dataset'): Promise<string> {
  return (await readBoundedFile(path, { what })).bytes.toString('utf8');
}

/** The files of a folder with one of `extensions`, sorted, or [path] when path is a file. */
export async function filesIn(path: string, extensions: string[]): Promise<string[]> {
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new WorkbenchError('not_found', `Dataset path ${path} does not exist. Pick another file or folder.`, { path });
  }
  if (!info.isDirectory()) return [path];
  const names = (await readdir(path)).filter((name) => extensions.some((ext) => name.endsWith(ext))).sort();
  if (names.length === 0) {
    throw new WorkbenchError('dataset_invalid', `Folder ${path} holds no ${extensions.join(' / ')} file.`, { path });
  }
  return names.map((name) => join(path, name));
}

/** Collects bad rows and throws them all at once, so the user fixes a file in one pass. */
export class RowErrors {
  readonly list: DatasetRowError[] = [];

  add(line: number, message: string): void {
    this.list.push({ line, message });
  }

  /** Runs `check` for one row; a RowProblem becomes an error on `line` and the result is undefined. */
  guard<T>(line: number, check: () => T): T | undefined {
    try {
      return check();
    } catch (e) {
      if (e instanceof RowProblem) {
        this.add(line, e.message);
        return undefined;
      }
      throw e;
    }
  }

  throwIfAny(source: string): void {
    if (this.list.length === 0) return;
    throwBadRows(
      source,
      [...this.list].sort((a, b) => a.line - b.line),
    );
  }
}

export function throwEmpty(source: string, expected: string): never {
  throw new WorkbenchError('dataset_invalid', `${source} has no rows; expected ${expected}.`, { errors: [] });
}

/** One JSONL line: its 1-based number and parsed value, or why it did not parse. Blank lines are skipped. */
export function* jsonlLines(text: string): Generator<{ line: number; value: unknown } | { line: number; error: string }> {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let raw = lines[i]!;
    if (i === 0) raw = raw.replace(/^\uFEFF/, '');
    const trimmed = raw.trim();
    if (trimmed === '') continue;
    try {
      yield { line: i + 1, value: JSON.parse(trimmed) };
    } catch (e) {
      yield { line: i + 1, error: `invalid JSON (${(e as Error).message})` };
    }
  }
}

export interface JsonItem {
  /** Position in the top-level array, or in the object's key order. */
  index: number;
  /** The key, when the top level is an object. */
  key?: string;
  /** 1-based line where the item's value starts. */
  line: number;
  value: unknown;
}

/**
 * Splits a top-level JSON array or object into its items, each with the line where it starts,
 * so a bad item is reported by line (e.g. QQP's `{"0": {...}, "1": {...}}`) rather than by the
 * whole file. Single-line files report line 1 and the item index.
 */
export function jsonItems(text: string, source: string): JsonItem[] {
  const src = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  let i = 0;
  let line = 1;
  const fail = (message: string): never => {
    throw new WorkbenchError('dataset_invalid', `${source} is not valid JSON: line ${line}: ${message}. Fix the file and start again.`, {
      errors: [{ line, message }],
    });
  };
  const skipSpace = () => {
    while (i < src.length && /\s/.test(src[i]!)) {
      if (src[i] === '\n') line++;
      i++;
    }
  };
  /** Moves i past the string that starts at i. */
  const scanString = () => {
    i++;
    while (i < src.length && src[i] !== '"') {
      if (src[i] === '\\') i++;
      else if (src[i] === '\n') line++;
      i++;
    }
    if (i >= src.length) fail('a string is never closed');
    i++;
  };
  /** Scans one JSON value from i and returns its text; strings and nesting are tracked, not validated. */
  const scanValue = (): string => {
    const start = i;
    let depth = 0;
    while (i < src.length) {
      const c = src[i]!;
      if (c === '"') {
        scanString();
        continue;
      }
      if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') {
        if (depth === 0) break;
        depth--;
      } else if (c === ',' && depth === 0) break;
      else if (c === '\n') line++;
      i++;
    }
    return src.slice(start, i);
  };
  const parseItem = (raw: string, itemLine: number): unknown => {
    try {
      return JSON.parse(raw);
    } catch (e) {
      line = itemLine;
      return fail(`invalid JSON value (${(e as Error).message})`);
    }
  };

  skipSpace();
  const open = src[i];
  if (open !== '[' && open !== '{') fail('expected a JSON array or object at the top level');
  const close = open === '[' ? ']' : '}';
  i++;
  const items: JsonItem[] = [];
  for (;;) {
    skipSpace();
    if (src[i] === close) {
      i++;
      break;
    }
    if (items.length > 0) {
      if (src[i] !== ',') fail(`expected "," or "${close}"`);
      i++;
      skipSpace();
    }
    let key: string | undefined;
    if (open === '{') {
      if (src[i] !== '"') fail('expected a quoted key');
      const keyStart = i;
      scanString();
      key = parseItem(src.slice(keyStart, i), line) as string;
      skipSpace();
      if (src[i] !== ':') fail('expected ":" after a key');
      i++;
      skipSpace();
    }
    const itemLine = line;
    const raw = scanValue();
    if (raw.trim() === '') fail(i >= src.length ? 'the file ends early (truncated?)' : 'expected a value');
    items.push({ index: items.length, key, line: itemLine, value: parseItem(raw, itemLine) });
    if (i >= src.length) fail('the file ends early (truncated?)');
  }
  skipSpace();
  if (i < src.length) fail('unexpected text after the end of the top-level value');
  return items;
}

/** CSV records with their header: field arrays become objects keyed by column name. */
export interface TableRow {
  line: number;
  values: Record<string, string>;
}

/**
 * Parses a CSV/TSV with a header row into keyed rows; records whose field count differs from
 * the header's, and records the parser rejected, go to `errors` with their lines.
 */
export function parseTable(text: string, options: CsvOptions, errors: RowErrors): { columns: string[]; rows: TableRow[]; headerLine: number } {
  const { records, errors: parseErrors } = parseCsv(text, options);
  for (const e of parseErrors) errors.add(e.line, e.message);
  const header: CsvRecord | undefined = records[0];
  if (!header) return { columns: [], rows: [], headerLine: 0 };
  const columns = header.fields.map((f) => f.trim());
  const rows: TableRow[] = [];
  for (const record of records.slice(1)) {
    if (record.fields.length !== columns.length) {
      errors.add(record.line, `has ${record.fields.length} field${record.fields.length === 1 ? '' : 's'}, the header has ${columns.length}`);
      continue;
    }
    const values: Record<string, string> = {};
    columns.forEach((c, k) => (values[c] = record.fields[k]!));
    rows.push({ line: record.line, values });
  }
  return { columns, rows, headerLine: header.line };
}

/** Typed access to one JSON object's fields; every check throws a RowProblem naming the field. */
export class Fields {
  readonly row: Record<string, unknown>;

  constructor(value: unknown, what = 'row') {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new RowProblem(`${what} is not a JSON object`);
    }
    this.row = value as Record<string, unknown>;
  }

  has(key: string): boolean {
    return key in this.row;
  }

  private get(key: string): unknown {
    if (!(key in this.row)) throw new RowProblem(`missing "${key}"`);
    return this.row[key];
  }

  str(key: string, { allowEmpty = false } = {}): string {
    const v = this.get(key);
    if (typeof v !== 'string') throw new RowProblem(`"${key}" must be a string, got ${describeValue(v)}`);
    if (!allowEmpty && v.trim() === '') throw new RowProblem(`"${key}" is empty`);
    return v;
  }

  int(key: string, min = -Infinity, max = Infinity): number {
    const v = this.get(key);
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new RowProblem(`"${key}" must be an integer, got ${describeValue(v)}`);
    if (v < min || v > max) throw new RowProblem(`"${key}" is ${v}, expected ${min} to ${max}`);
    return v;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    const v = this.get(key);
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      throw new RowProblem(`"${key}" is ${describeValue(v)}, expected one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
    }
    return v as T;
  }

  array(key: string): unknown[] {
    const v = this.get(key);
    if (!Array.isArray(v)) throw new RowProblem(`"${key}" must be a list, got ${describeValue(v)}`);
    return v;
  }

  object(key: string): Fields {
    const v = this.get(key);
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new RowProblem(`"${key}" must be an object, got ${describeValue(v)}`);
    return new Fields(v, `"${key}"`);
  }
}

export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 40 ? `${s.slice(0, 37)}...` : s;
}
