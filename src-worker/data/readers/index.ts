// The dataset registry: one entry per supported dataset, keyed by id, each naming its task,
// its reader and its template. Evaluation jobs, the UI's import dialog and the CLI look
// readers up here; one register call per dataset, duplicates throw (as methods/index.ts does).
import { WorkbenchError } from '../../../src-shared/errors.ts';
import type { InstructionExample } from '../dataset.ts';
import {
  bbqCandidates,
  bbqTemplate,
  conversationTemplate,
  crowsPairsCandidates,
  hotpotQaTemplate,
  qqpCandidates,
  qqpTemplate,
  stereoSetCandidates,
  type Candidate,
  type PromptCompletion,
} from '../templates.ts';
import { readBbq, type BbqExample } from './bbq.ts';
import { filesIn, readTextFile } from './common.ts';
import { readCrowsPairs, type CrowsPair } from './crows-pairs.ts';
import { readHotpotQa, type HotpotQaExample } from './hotpotqa.ts';
import { readOasst, type Conversation, type ThreadOptions } from './oasst1.ts';
import { readQqp, type QqpPair } from './qqp.ts';
import { parseStereoSet, type StereoSetExample } from './stereoset.ts';
import { readTextCorpus, type TextDocument } from './text-corpus.ts';
import { readUserTable, type ColumnMapping, type TableFormat } from './user-table.ts';

/** What a dataset is for; decides which metrics an evaluation computes on it. */
export type TaskKind =
  | 'qa' // generated answers, EM / F1 / SemSim
  | 'paraphrase' // binary classification, accuracy / F1 / MCC
  | 'dialogue' // language modelling, loss / perplexity
  | 'text' // language modelling of whole documents, loss / perplexity
  | 'stereotype-pairs' // CrowS-Pairs
  | 'stereoset' // StereoSet lms / ss / icat
  | 'bias-qa' // BBQ accuracy and bias scores
  | 'instruction'; // the user's own prompt/completion or text data

export interface LoadedDataset<Row> {
  rows: Row[];
  /** Things the user should know that are not errors (rows a filter left out, targets not found). */
  notes: string[];
}

export interface DatasetEntry<Row, Options = Record<string, never>> {
  id: string;
  label: string;
  taskKind: TaskKind;
  description: string;
  /** The files of ../shared/data this entry reads, relative to it, when that folder is present. */
  sharedFiles: string[];
  read(path: string, options?: Options): Promise<LoadedDataset<Row>>;
  /** Row -> prompt/completion for training and generation; absent for evaluation-only sets. */
  template?(row: Row): PromptCompletion;
  /** Texts to score by likelihood, for tasks decided by comparing options. */
  candidates?(row: Row): Candidate[];
  /** Rows with one key stay in one split (e.g. the threads of one OASST1 tree). */
  groupKey?(row: Row): string;
}

// biome-ignore lint/suspicious/noExplicitAny: the registry holds entries of different row types (a function parameter type is contravariant, so unknown does not fit); callers narrow by id.
type AnyEntry = DatasetEntry<any, any>;
const registry = new Map<string, AnyEntry>();

export function registerDataset<Row, Options = Record<string, never>>(entry: DatasetEntry<Row, Options>): void {
  if (registry.has(entry.id)) throw new Error(`dataset "${entry.id}" is registered twice`);
  registry.set(entry.id, entry);
}

export function getDataset(id: string): AnyEntry {
  const entry = registry.get(id);
  if (!entry) {
    throw new WorkbenchError('invalid_input', `Unknown dataset "${id}"; known datasets: ${[...registry.keys()].join(', ')}.`, { id });
  }
  return entry;
}

export function listDatasets(): AnyEntry[] {
  return [...registry.values()];
}

registerDataset<HotpotQaExample>({
  id: 'hotpotqa',
  label: 'HotpotQA (distractor)',
  taskKind: 'qa',
  description: 'Multi-hop questions over ten Wikipedia paragraphs, two of them gold; official or IRCoT JSONL / JSON.',
  sharedFiles: ['hotpotqa/hotpot_dev_distractor_v1_first53.jsonl', 'hotpotqa/ircot_dev_subsampled.jsonl'],
  read: async (path) => ({ rows: await readHotpotQa(path), notes: [] }),
  template: (row) => hotpotQaTemplate(row),
});

registerDataset<QqpPair>({
  id: 'qqp',
  label: 'GLUE QQP',
  taskKind: 'paraphrase',
  description: 'Quora question pairs labelled duplicate or not; GLUE TSV, glue_pretrain JSON or JSONL.',
  sharedFiles: ['qqp/glue_pretrain_QQP_train.json', 'qqp/glue_pretrain_QQP_dev.json', 'qqp/qqp_glue_pretrain_9999.jsonl'],
  read: async (path) => {
    const rows = await readQqp(path);
    const unlabelled = rows.filter((r) => r.label === null).length;
    return { rows, notes: unlabelled > 0 ? [`${unlabelled} pairs have no label (GLUE test split): usable for generation only.`] : [] };
  },
  template: (row) => qqpTemplate(row),
  candidates: (row) => qqpCandidates(row),
});

registerDataset<Conversation, ThreadOptions>({
  id: 'oasst1',
  label: 'OpenAssistant OASST1',
  taskKind: 'dialogue',
  description: 'Human-written assistant conversations; message trees become user/assistant threads.',
  sharedFiles: ['oasst1/en-validation.jsonl'],
  read: async (path, options) => {
    const { conversations, skipped } = await readOasst(path, options);
    const notes =
      skipped.length === 0
        ? []
        : [
            `${skipped.length} message${skipped.length === 1 ? '' : 's'} not in any conversation: ${skipped
              .slice(0, 3)
              .map((s) => `line ${s.line}: ${s.reason}`)
              .join('; ')}${skipped.length > 3 ? '; ...' : ''}`,
          ];
    return { rows: conversations, notes };
  },
  template: (row) => conversationTemplate(row),
  groupKey: (row) => row.treeId,
});

registerDataset<CrowsPair>({
  id: 'crows-pairs',
  label: 'CrowS-Pairs',
  taskKind: 'stereotype-pairs',
  description: 'Sentence pairs, one more stereotypical than the other, in nine bias categories. Evaluation only.',
  sharedFiles: ['crows-pairs/crows_pairs_anonymized.csv'],
  read: async (path) => ({ rows: await readCrowsPairs(path), notes: [] }),
  candidates: (row) => crowsPairsCandidates(row),
});

registerDataset<StereoSetExample>({
  id: 'stereoset',
  label: 'StereoSet',
  taskKind: 'stereoset',
  description: 'Contexts with stereotype, anti-stereotype and unrelated candidates (intra- and intersentence). Evaluation only.',
  sharedFiles: ['stereoset/race_test.json', 'stereoset/religion_test.json'],
  read: async (path) => {
    const rows: StereoSetExample[] = [];
    for (const file of await filesIn(path, ['.json'])) rows.push(...parseStereoSet(await readTextFile(file), file));
    return { rows, notes: [] };
  },
  candidates: (row) => stereoSetCandidates(row),
});

registerDataset<BbqExample>({
  id: 'bbq',
  label: 'BBQ',
  taskKind: 'bias-qa',
  description: 'Three-option questions with ambiguous and disambiguated contexts, one file per bias category.',
  sharedFiles: ['bbq'],
  read: async (path) => {
    const rows = await readBbq(path);
    const unmatched = rows.filter((r) => r.stereotypedIndex === null).length;
    return {
      rows,
      notes: unmatched > 0 ? [`${unmatched} examples name no single stereotyped option; the bias score leaves them out.`] : [],
    };
  },
  template: (row) => bbqTemplate(row),
  candidates: (row) => bbqCandidates(row),
  groupKey: (row) => `${row.category}/${row.questionIndex}`,
});

registerDataset<TextDocument>({
  id: 'text-corpus',
  label: 'Text corpus',
  taskKind: 'text',
  description: 'Plain text (documents split at <|endoftext|> lines or blank lines) or JSONL with a "text" field, for perplexity.',
  sharedFiles: [],
  read: async (path) => ({ rows: await readTextCorpus(path), notes: [] }),
});

export interface UserTableOptions {
  mapping: ColumnMapping;
  format?: TableFormat;
}

registerDataset<InstructionExample, UserTableOptions>({
  id: 'user-table',
  label: 'Your own JSONL / CSV',
  taskKind: 'instruction',
  description: 'Any JSONL, JSON, CSV or TSV file, with the columns for prompt and completion (or text) picked by you.',
  sharedFiles: [],
  read: async (path, options) => {
    if (!options?.mapping) {
      throw new WorkbenchError('invalid_input', 'Pick which columns hold the prompt and the completion (or the text) before reading the file.', { path });
    }
    return { rows: await readUserTable(path, options.mapping, { format: options.format }), notes: [] };
  },
  template: (row) => ({ prompt: row.prompt, completion: row.completion }),
});
