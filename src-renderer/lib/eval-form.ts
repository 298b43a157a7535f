// The "New evaluation" form as data: which dataset paths a suite needs, the evals.start requests the form
// sends (base and adapter evaluated alike so the panels compare them), and the paths remembered between
// visits. Pure apart from the Storage passed in; checked by test/unit/eval-form.test.ts.
import { BackendChoiceSchema, type BackendChoice } from '../../src-shared/config.ts';
import { evalSuites, perturbationFamilies, type EvalDatasets, type EvalStartRequestInput, type EvalSuite } from '../../src-shared/eval.ts';

export type DatasetKey = keyof EvalDatasets;
export type Family = (typeof perturbationFamilies)[number];
export type RobustnessTask = 'qqp' | 'hotpotqa';

export const datasetLabels: Record<DatasetKey, { label: string; hint: string }> = {
  crowsPairs: { label: 'CrowS-Pairs CSV', hint: 'crows_pairs_anonymized.csv' },
  stereoSet: { label: 'StereoSet JSON', hint: 'dev.json of StereoSet' },
  bbq: { label: 'BBQ JSONL file or folder', hint: 'the data/ folder of BBQ' },
  qqp: { label: 'QQP TSV/JSONL', hint: 'GLUE QQP dev.tsv' },
  hotpotqa: { label: 'HotpotQA JSON', hint: 'hotpot_dev_distractor_v1.json' },
  text: { label: 'Text corpus (plain text or JSONL)', hint: 'documents between <|endoftext|> lines, or JSONL with "text"' },
  oasst1: { label: 'OASST1 messages JSONL', hint: 'the replies are scored given their conversation' },
};

/** The dataset fields the form shows for a suite (bias: any of the three; perplexity: either; robustness: its task's file). */
export function datasetsFor(suite: EvalSuite, task: RobustnessTask): DatasetKey[] {
  switch (suite) {
    case 'bias':
      return ['crowsPairs', 'stereoSet', 'bbq'];
    case 'qqp':
      return ['qqp'];
    case 'hotpotqa':
      return ['hotpotqa'];
    case 'robustness':
      return [task];
    case 'perplexity':
      return ['text', 'oasst1'];
  }
}

export interface EvalFormState {
  suite: EvalSuite;
  /** null: the base model alone. */
  adapterId: string | null;
  paths: Partial<Record<DatasetKey, string>>;
  /** Empty: every item. */
  limit: string;
  seed: string;
  backend: BackendChoice;
  task: RobustnessTask;
  families: Family[];
  /** Comma-separated fractions, e.g. "0, 0.1, 0.2". */
  levels: string;
}

export const defaultFormState = (): EvalFormState => ({
  suite: 'bias',
  adapterId: null,
  paths: {},
  limit: '200',
  seed: '0',
  backend: 'auto',
  task: 'qqp',
  families: ['typo', 'word-dropout', 'synonym'],
  levels: '0, 0.1, 0.2, 0.3, 0.4',
});

export class FormError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

function parseWhole(text: string, field: string, min: number): number {
  const value = Number(text.trim());
  if (!Number.isInteger(value) || value < min) throw new FormError(field, `${field} must be a whole number of at least ${min}.`);
  return value;
}

export function parseLevels(text: string): number[] {
  const parts = text.split(/[,\s]+/).filter(Boolean);
  const levels = parts.map(Number);
  if (levels.length === 0 || levels.some((l) => !Number.isFinite(l) || l < 0 || l > 1)) {
    throw new FormError('levels', 'Levels are fractions of words between 0 and 1, separated by commas (e.g. 0, 0.1, 0.2).');
  }
  return [...new Set(levels)].sort((a, b) => a - b);
}

/**
 * The evals.start requests for the form. With an adapter, the base model is evaluated too with the same
 * seed, limit and files: two requests for bias/qqp/hotpotqa; robustness needs one, because an adapter's
 * robustness evaluation scores the base model on the same perturbed inputs itself.
 */
export function buildStartRequests(state: EvalFormState): EvalStartRequestInput[] {
  const datasets: EvalDatasets = {};
  for (const key of datasetsFor(state.suite, state.task)) {
    const path = state.paths[key]?.trim();
    if (path) datasets[key] = path;
  }
  if (Object.keys(datasets).length === 0) {
    const names = datasetsFor(state.suite, state.task).map((k) => datasetLabels[k].label);
    throw new FormError('datasets', `Give the path of ${names.length > 1 ? `at least one of: ${names.join(', ')}` : `the ${names[0]}`}.`);
  }
  const request: EvalStartRequestInput = {
    suite: state.suite,
    datasets,
    limit: state.limit.trim() === '' ? null : parseWhole(state.limit, 'limit', 1),
    seed: parseWhole(state.seed, 'seed', 0),
    backend: state.backend,
  };
  if (state.suite === 'robustness') {
    if (state.families.length === 0) throw new FormError('families', 'Tick at least one perturbation family.');
    const families = perturbationFamilies.filter((f) => state.families.includes(f));
    request.robustness = { task: state.task, families, levels: parseLevels(state.levels) };
  }
  if (state.adapterId === null) return [request];
  const withAdapter = { ...request, adapterId: state.adapterId };
  return state.suite === 'robustness' ? [withAdapter] : [request, withAdapter];
}

const STORAGE_KEY = 'lora-workbench.eval-form';

/** Paths and settings from the last start; the adapter choice is not kept (adapters come and go). */
export function loadFormState(storage: Pick<Storage, 'getItem'>): EvalFormState {
  const state = defaultFormState();
  try {
    const saved = JSON.parse(storage.getItem(STORAGE_KEY) ?? '{}') as Partial<EvalFormState>;
    if (saved && typeof saved === 'object') {
      for (const key of ['limit', 'seed', 'levels'] as const) if (typeof saved[key] === 'string') state[key] = saved[key];
      if ((evalSuites as readonly unknown[]).includes(saved.suite)) state.suite = saved.suite!;
      if (BackendChoiceSchema.safeParse(saved.backend).success) state.backend = saved.backend!;
      if (saved.task === 'qqp' || saved.task === 'hotpotqa') state.task = saved.task;
      if (saved.paths && typeof saved.paths === 'object') {
        for (const [key, value] of Object.entries(saved.paths)) if (key in datasetLabels && typeof value === 'string') state.paths[key as DatasetKey] = value;
      }
      if (Array.isArray(saved.families)) state.families = saved.families.filter((f): f is Family => (perturbationFamilies as readonly string[]).includes(f));
    }
  } catch {
    // A corrupt entry only costs the remembered values.
  }
  return state;
}

export function saveFormState(storage: Pick<Storage, 'setItem'>, state: EvalFormState): void {
  const { adapterId: _adapterId, ...kept } = state;
  storage.setItem(STORAGE_KEY, JSON.stringify(kept));
}
