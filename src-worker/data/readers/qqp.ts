// GLUE QQP (Quora Question Pairs) in the shapes found in ../shared/data/qqp:
// - GLUE's TSV: header `id qid1 qid2 question1 question2 is_duplicate` (the test split has no
//   label column). Read without quote processing, as GLUE's own loader does, so the Quora
//   export's `"""..."""` artefacts stay in the text exactly as every published number saw them.
// - glue_pretrain JSON (LM-BFF / PowerfulPromptFT): {"0": {"text_a", "text_b", "label": "0"|"1"}, ...}.
// - JSONL: {"question1", "question2", "is_duplicate"} one pair a line (extra keys are kept out).
import { Fields, RowErrors, RowProblem, describeValue, jsonItems, jsonlLines, parseTable, readTextFile, throwEmpty } from './common.ts';

export interface QqpPair {
  id: string;
  question1: string;
  question2: string;
  /** 1 = duplicate; null in GLUE's unlabelled test split. */
  label: 0 | 1 | null;
  line: number;
}

function parseLabel(v: unknown, key: string): 0 | 1 {
  if (v === 0 || v === '0') return 0;
  if (v === 1 || v === '1') return 1;
  throw new RowProblem(`"${key}" is ${describeValue(v)}, expected 0 or 1`);
}

export function parseQqpTsv(text: string, source = 'QQP TSV'): QqpPair[] {
  const errors = new RowErrors();
  const { columns, rows, headerLine } = parseTable(text, { delimiter: '\t', quote: null }, errors);
  const missing = ['question1', 'question2'].filter((c) => !columns.includes(c));
  if (columns.length > 0 && missing.length > 0) {
    // Without the question columns no row can be read; report the header alone.
    const header = new RowErrors();
    header.add(
      headerLine,
      `header has no ${missing.map((c) => `"${c}"`).join(' or ')} column (found ${columns.join(', ')}); expected GLUE's id, qid1, qid2, question1, question2, is_duplicate`,
    );
    header.throwIfAny(source);
  }
  const labelled = columns.includes('is_duplicate');
  const pairs: QqpPair[] = [];
  for (const row of rows) {
    const pair = errors.guard(row.line, () => ({
      id: row.values['id'] ?? String(pairs.length),
      question1: row.values['question1']!,
      question2: row.values['question2']!,
      label: labelled ? parseLabel(row.values['is_duplicate'], 'is_duplicate') : null,
      line: row.line,
    }));
    if (pair) pairs.push(pair);
  }
  errors.throwIfAny(source);
  if (pairs.length === 0) throwEmpty(source, 'a GLUE QQP header and one pair per line');
  return pairs;
}

function fromObject(value: unknown, fallbackId: string, line: number): QqpPair {
  const f = new Fields(value);
  if (f.has('text_a') || f.has('text_b')) {
    return {
      id: fallbackId,
      question1: f.str('text_a', { allowEmpty: true }),
      question2: f.str('text_b', { allowEmpty: true }),
      label: parseLabel(f.row['label'], 'label'),
      line,
    };
  }
  if (f.has('question1') || f.has('question2')) {
    const id = f.row['id'] ?? f.row['pp_key'];
    return {
      id: id === undefined ? fallbackId : String(id),
      question1: f.str('question1', { allowEmpty: true }),
      question2: f.str('question2', { allowEmpty: true }),
      label: f.has('is_duplicate') ? parseLabel(f.row['is_duplicate'], 'is_duplicate') : null,
      line,
    };
  }
  throw new RowProblem(
    `unknown row shape with keys ${Object.keys(f.row).slice(0, 6).join(', ') || '(none)'}; expected {"text_a","text_b","label"} or {"question1","question2","is_duplicate"}`,
  );
}

/** glue_pretrain's JSON object (or an array of pair objects); the key becomes the id. */
export function parseQqpJson(text: string, source = 'QQP JSON'): QqpPair[] {
  const errors = new RowErrors();
  const pairs: QqpPair[] = [];
  for (const item of jsonItems(text, source)) {
    const pair = errors.guard(item.line, () => fromObject(item.value, item.key ?? String(item.index), item.line));
    if (pair) pairs.push(pair);
  }
  errors.throwIfAny(source);
  if (pairs.length === 0) throwEmpty(source, 'pair objects');
  return pairs;
}

export function parseQqpJsonl(text: string, source = 'QQP JSONL'): QqpPair[] {
  const errors = new RowErrors();
  const pairs: QqpPair[] = [];
  for (const item of jsonlLines(text)) {
    if ('error' in item) {
      errors.add(item.line, item.error);
      continue;
    }
    const pair = errors.guard(item.line, () => fromObject(item.value, String(pairs.length), item.line));
    if (pair) pairs.push(pair);
  }
  errors.throwIfAny(source);
  if (pairs.length === 0) throwEmpty(source, 'one {"question1","question2","is_duplicate"} object per line');
  return pairs;
}

/** Picks the parser from the file name (.tsv, .json, .jsonl), falling back on the content. */
export function parseQqp(text: string, source = 'QQP file'): QqpPair[] {
  const lower = source.toLowerCase();
  if (lower.endsWith('.tsv')) return parseQqpTsv(text, source);
  if (lower.endsWith('.jsonl')) return parseQqpJsonl(text, source);
  if (lower.endsWith('.json')) return parseQqpJson(text, source);
  const head = text.replace(/^\uFEFF/, '').trimStart();
  if (head.startsWith('[')) return parseQqpJson(text, source);
  if (head.startsWith('{')) {
    // A whole-file object spans lines; JSONL has one complete object on its first line.
    const firstLine = head.split('\n', 1)[0]!.trim();
    try {
      JSON.parse(firstLine);
      return parseQqpJsonl(text, source);
    } catch {
      return parseQqpJson(text, source);
    }
  }
  return parseQqpTsv(text, source);
}

export async function readQqp(path: string): Promise<QqpPair[]> {
  return parseQqp(await readTextFile(path), path);
}
