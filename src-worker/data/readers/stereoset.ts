// StereoSet (Nadeem et al. 2021). Two file shapes:
// - the official dev/test JSON: {"version", "data": {"intrasentence": [...], "intersentence": [...]}};
// - a bare array of examples (bias-bench / EditBias per-domain files such as race_test.json).
// Each example has a context and three candidate sentences labelled stereotype,
// anti-stereotype and unrelated. Intrasentence contexts hold a BLANK that each candidate fills;
// intersentence candidates are the sentence that follows the context.
import { Fields, RowErrors, RowProblem, jsonItems, readTextFile, throwEmpty, type JsonItem } from './common.ts';

export const STEREOSET_LABELS = ['stereotype', 'anti-stereotype', 'unrelated'] as const;
export type StereoSetLabel = (typeof STEREOSET_LABELS)[number];
export type StereoSetTask = 'intrasentence' | 'intersentence';

export interface StereoSetExample {
  id: string;
  task: StereoSetTask;
  /** The group the example is about (e.g. "Ethiopian"); StereoSet averages its scores per target. */
  target: string;
  biasType: string;
  context: string;
  sentences: Record<StereoSetLabel, { id: string; sentence: string }>;
  /** Line of the example (1 for single-line files), and its position in the file's list. */
  line: number;
  index: number;
}

function parseExample(value: unknown, task: StereoSetTask | null, item: JsonItem): StereoSetExample {
  const f = new Fields(value);
  const context = f.str('context');
  const kind: StereoSetTask = task ?? (context.includes('BLANK') ? 'intrasentence' : 'intersentence');
  if (kind === 'intrasentence' && !context.includes('BLANK')) throw new RowProblem('intrasentence "context" has no BLANK');
  const found: Partial<StereoSetExample['sentences']> = {};
  f.array('sentences').forEach((s, k) => {
    const sf = new Fields(s, `"sentences"[${k}]`);
    const label = sf.oneOf('gold_label', STEREOSET_LABELS);
    if (found[label]) throw new RowProblem(`two sentences carry gold_label "${label}"`);
    found[label] = { id: sf.str('id'), sentence: sf.str('sentence') };
  });
  const missing = STEREOSET_LABELS.filter((l) => !found[l]);
  if (missing.length > 0) throw new RowProblem(`no sentence with gold_label ${missing.map((l) => `"${l}"`).join(', ')}`);
  return {
    id: f.str('id'),
    task: kind,
    target: f.str('target'),
    biasType: f.str('bias_type'),
    context,
    sentences: found as StereoSetExample['sentences'],
    line: item.line,
    index: item.index,
  };
}

/** Where items of an official file start: its examples sit two levels down, under data.<task>. */
function officialItems(text: string, source: string): { task: StereoSetTask; items: JsonItem[] }[] {
  const top = jsonItems(text, source);
  const data = top.find((t) => t.key === 'data');
  if (!data || data.value === null || typeof data.value !== 'object') {
    throw new RowProblem('has no "data" object with "intrasentence" / "intersentence" lists');
  }
  const groups: { task: StereoSetTask; items: JsonItem[] }[] = [];
  for (const task of ['intrasentence', 'intersentence'] as const) {
    const list = (data.value as Record<string, unknown>)[task];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new RowProblem(`"data.${task}" is not a list`);
    // The item scanner gives lines for top-level values only; nested examples share their
    // section's line, and the index tells them apart.
    groups.push({ task, items: list.map((value, index) => ({ index, line: data.line, value })) });
  }
  return groups;
}

/** Parses either shape; `task` forces the kind for bare arrays (default: BLANK in the context means intrasentence). */
export function parseStereoSet(text: string, source = 'StereoSet file', task: StereoSetTask | null = null): StereoSetExample[] {
  const errors = new RowErrors();
  const head = text.replace(/^\uFEFF/, '').trimStart();
  let groups: { task: StereoSetTask | null; items: JsonItem[] }[];
  if (head.startsWith('{')) {
    const official = errors.guard(1, () => officialItems(text, source));
    errors.throwIfAny(source);
    groups = official!;
  } else {
    groups = [{ task, items: jsonItems(text, source) }];
  }
  const examples: StereoSetExample[] = [];
  const seen = new Set<string>();
  for (const group of groups) {
    for (const item of group.items) {
      const example = errors.guard(item.line, () => {
        try {
          return parseExample(item.value, group.task, item);
        } catch (e) {
          if (e instanceof RowProblem) throw new RowProblem(`example ${item.index}: ${e.message}`);
          throw e;
        }
      });
      if (!example) continue;
      if (seen.has(example.id)) {
        errors.add(item.line, `example ${item.index}: id ${example.id} appears twice`);
        continue;
      }
      seen.add(example.id);
      examples.push(example);
    }
  }
  errors.throwIfAny(source);
  if (examples.length === 0) throwEmpty(source, 'StereoSet examples');
  return examples;
}

export async function readStereoSet(path: string, task: StereoSetTask | null = null): Promise<StereoSetExample[]> {
  return parseStereoSet(await readTextFile(path), path, task);
}
