// BBQ, the Bias Benchmark for QA (Parrish et al. 2022): one JSONL file per category, three
// answer options per question, one of them an "unknown" option that is correct whenever the
// context is ambiguous.
//
// The bias score needs to know which option names the stereotyped group. The BBQ repository
// ships that as `target_loc` in a supplemental CSV; without it, the option is found by matching
// answer_info's group label, then its answer text, against additional_metadata.stereotyped_groups
// (case-insensitive). The group label settles Age, Disability, Religion, ... ("old" in ["old"]);
// Nationality's labels are regions ("Europe"), so there the answer text ("British") settles it.
// When neither gives exactly one option, stereotypedIndex is null and the example is left out of
// the bias score (and counted there), never guessed.
import { Fields, RowErrors, RowProblem, filesIn, jsonlLines, readTextFile, throwEmpty } from './common.ts';

export interface BbqExample {
  exampleId: number;
  category: string;
  questionIndex: string;
  /** "neg": the question asks who fits the negative stereotype; "nonneg": its positive counterpart. */
  questionPolarity: 'neg' | 'nonneg';
  contextCondition: 'ambig' | 'disambig';
  context: string;
  question: string;
  answers: [string, string, string];
  /** Index of the correct answer. */
  label: 0 | 1 | 2;
  /** Index of the "unknown" option (Can't be determined, Not enough info, ...). */
  unknownIndex: 0 | 1 | 2;
  /** Index of the option naming the stereotyped group, or null when the metadata does not pin it down. */
  stereotypedIndex: 0 | 1 | 2 | null;
  /** File the example came from (one file per category) and its line there. */
  file: string;
  line: number;
}

const KEYS = ['ans0', 'ans1', 'ans2'] as const;

function parseExample(value: unknown, file: string, line: number): BbqExample {
  const f = new Fields(value);
  const info = f.object('answer_info');
  const groups = KEYS.map((k) => {
    const entry = info.array(k);
    if (entry.length < 2 || typeof entry[0] !== 'string' || typeof entry[1] !== 'string') {
      throw new RowProblem(`"answer_info.${k}" must be [answer text, group]`);
    }
    return { text: entry[0], group: entry[1] };
  });
  const unknown = groups.flatMap((g, k) => (g.group === 'unknown' ? [k] : []));
  if (unknown.length !== 1) throw new RowProblem(`answer_info marks ${unknown.length} options as "unknown", expected exactly 1`);
  const stereotyped = f
    .object('additional_metadata')
    .array('stereotyped_groups')
    .filter((g): g is string => typeof g === 'string')
    .map((g) => g.toLowerCase());
  const match = (key: 'group' | 'text') => groups.flatMap((g, k) => (k !== unknown[0] && stereotyped.includes(g[key].toLowerCase()) ? [k] : []));
  const byGroup = match('group');
  const byText = match('text');
  const target = byGroup.length === 1 ? byGroup[0]! : byText.length === 1 ? byText[0]! : null;
  return {
    exampleId: f.int('example_id', 0),
    category: f.str('category'),
    questionIndex: String(f.row['question_index'] ?? ''),
    questionPolarity: f.oneOf('question_polarity', ['neg', 'nonneg'] as const),
    contextCondition: f.oneOf('context_condition', ['ambig', 'disambig'] as const),
    context: f.str('context'),
    question: f.str('question'),
    answers: [f.str('ans0'), f.str('ans1'), f.str('ans2')],
    label: f.int('label', 0, 2) as 0 | 1 | 2,
    unknownIndex: unknown[0] as 0 | 1 | 2,
    stereotypedIndex: target as 0 | 1 | 2 | null,
    file,
    line,
  };
}

export function parseBbq(text: string, source = 'BBQ file'): BbqExample[] {
  const errors = new RowErrors();
  const examples: BbqExample[] = [];
  const seen = new Map<string, number>();
  for (const item of jsonlLines(text)) {
    if ('error' in item) {
      errors.add(item.line, item.error);
      continue;
    }
    const example = errors.guard(item.line, () => parseExample(item.value, source, item.line));
    if (!example) continue;
    const key = `${example.category}/${example.exampleId}`;
    const previous = seen.get(key);
    if (previous !== undefined) {
      errors.add(item.line, `example_id ${example.exampleId} of ${example.category} repeats line ${previous}`);
      continue;
    }
    seen.set(key, item.line);
    examples.push(example);
  }
  errors.throwIfAny(source);
  if (examples.length === 0) throwEmpty(source, 'one BBQ example object per line');
  return examples;
}

/** Reads one category file, or every .jsonl of a folder (BBQ's data/ folder), in file-name order. */
export async function readBbq(path: string): Promise<BbqExample[]> {
  const all: BbqExample[] = [];
  for (const file of await filesIn(path, ['.jsonl'])) all.push(...parseBbq(await readTextFile(file), file));
  return all;
}
