// Generation recipes (SG-LoRA leave-one-task-out): the recipe's validation names the field, the grid is
// the experts then one generation cell per held-out task, the held-out rows are never trained on, a study
// killed mid-way redoes nothing finished, and the figure's values are the stored evaluations' losses.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RunConfigSchema } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { EvalStartRequestInput, Evaluation } from '../../src-shared/eval.ts';
import type { AdapterGenerateRequestInput } from '../../src-shared/sg-lora.ts';
import { expandGrid, parseRecipe, scaleRecipe, type StudyRecipeInput } from '../../src-shared/studies.ts';
import { resolvePaths, type WorkbenchPaths } from '../../src-main/paths.ts';
import { StudyService, type StudyJobs } from '../../src-main/studies.ts';
import { studyHeldOutRows, studyTrainingRows } from '../../src-main/studies-data.ts';
import { HELD_OUT_LOSS_KEY } from '../../src-main/studies-generation.ts';
import { Store } from '../../src-main/store/index.ts';

let dir: string;
let paths: WorkbenchPaths;
let store: Store;

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lw-studies-gen-'));
  paths = resolvePaths({ dataDir: dir });
  store = Store.open(paths.dbFile);
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const TASKS = ['a', 'b', 'c'] as const;
/** Ten rows per task whose prompt starts with the task's name, so a scored file says which task it holds. */
function writeSources(): Record<string, string> {
  return Object.fromEntries(
    TASKS.map((task) => {
      const file = path.join(dir, `${task}.jsonl`);
      writeFileSync(file, `${Array.from({ length: 10 }, (_, i) => JSON.stringify({ q: `${task} question ${i}`, answer: `${task}${i}` })).join('\n')}\n`);
      return [task, file];
    }),
  );
}

const recipe = (sources: Record<string, string>, over: Partial<StudyRecipeInput> = {}): StudyRecipeInput => ({
  name: 'leave-one-out',
  title: 'Leave one task out',
  base: { training: { maxSteps: 4 } },
  seeds: [1],
  generation: {
    tasks: TASKS.map((task) => ({
      name: task,
      description: `Task ${task}.`,
      data: { source: sources[task] ?? `/data/${task}.jsonl`, prompt: '{q}\n', completion: ' {answer}' },
    })),
    heldOutRows: 2,
    topK: 1,
  },
  figures: [
    {
      id: 'loss',
      title: 'Held-out loss',
      x: { axis: 'task' },
      series: {
        metrics: [
          { generation: 'sg-lora' },
          { generation: 'merge' },
          { generation: 'best-expert' },
          { generation: 'mean-expert' },
          { generation: 'own-expert' },
          { generation: 'base' },
        ],
      },
    },
  ],
  ...over,
});

function invalidFields(raw: unknown): string[] {
  try {
    parseRecipe(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(WorkbenchError);
    return ((error as WorkbenchError).details as { issues: { path: string }[] }).issues.map((i) => i.path);
  }
  throw new Error('expected the recipe to be refused');
}

describe('generation recipes', () => {
  it('expand into the experts (every task and seed) first, then one generation cell per held-out task and seed', () => {
    const cells = expandGrid(parseRecipe(recipe({}, { seeds: [1, 2] })));
    expect(cells.map((c) => [c.kind, c.key])).toEqual([
      ['expert', 'expert=a seed=1'],
      ['expert', 'expert=a seed=2'],
      ['expert', 'expert=b seed=1'],
      ['expert', 'expert=b seed=2'],
      ['expert', 'expert=c seed=1'],
      ['expert', 'expert=c seed=2'],
      ['generate', 'task=a seed=1'],
      ['generate', 'task=a seed=2'],
      ['generate', 'task=b seed=1'],
      ['generate', 'task=b seed=2'],
      ['generate', 'task=c seed=1'],
      ['generate', 'task=c seed=2'],
    ]);
    expect(cells[7]!.levels).toEqual({ task: 'a' });
    expect(RunConfigSchema.parse(cells[1]!.config)).toMatchObject({ method: 'lora', training: { seed: 2, maxSteps: 4 } });
    // One row in five is held out unless the task says otherwise.
    expect(cells[0]!.data).toMatchObject({ heldOut: 5, source: '/data/a.jsonl' });
    const scaled = scaleRecipe(parseRecipe(recipe({})), { rows: 7, steps: 9 });
    expect(scaled.generation).toMatchObject({ heldOutRows: 7, tasks: [{ data: { rows: 7 } }, { data: { rows: 7 } }, { data: { rows: 7 } }] });
    expect(expandGrid(scaled)[0]!.config).toMatchObject({ training: { maxSteps: 9 } });
  });

  it('names the field of every mistake', () => {
    const base = recipe({});
    expect(invalidFields({ ...base, axes: [{ name: 'rank', path: 'lora.r', values: [2] }] })).toContain('axes');
    expect(invalidFields({ ...base, evaluations: [{ id: 'q', suite: 'qqp', datasets: { qqp: '/q' } }] })).toContain('evaluations');
    expect(invalidFields({ ...base, data: { source: '/x', prompt: '', completion: 'c' } })).toContain('data');
    expect(invalidFields({ ...base, generation: { ...base.generation!, topK: 3 } })).toContain('generation.topK');
    expect(invalidFields({ ...base, generation: { ...base.generation!, tasks: base.generation!.tasks.slice(0, 2) } })).toContain('generation.tasks');
    const twice = [...base.generation!.tasks.slice(0, 2), { ...base.generation!.tasks[0]! }];
    expect(invalidFields({ ...base, generation: { ...base.generation!, tasks: twice } })).toContain('generation.tasks.2.name');
    expect(invalidFields({ ...base, figures: [{ id: 'f', title: 't', x: { axis: 'rank' }, metric: { generation: 'merge' } }] })).toContain('figures.0.x.axis');
    const plain = { name: 'p', title: 'p', figures: [{ id: 'f', title: 't', x: { values: [1], label: 'l' }, metric: { generation: 'merge' } }] };
    expect(invalidFields(plain)).toContain('figures.0.metric.generation');
  });

  it('never trains on the held-out rows, and scores exactly them', () => {
    const rows = Array.from({ length: 10 }, (_, i) => ({ q: `q${i}`, answer: `x${i}` }));
    const spec = { prompt: '{q}:', completion: ' {answer}', values: {}, rows: null, heldOut: 5 };
    expect(studyTrainingRows(spec, rows).map((r) => r.prompt)).toEqual(['q1:', 'q2:', 'q3:', 'q4:', 'q6:', 'q7:', 'q8:', 'q9:']);
    expect(studyHeldOutRows(spec, rows, 40)).toEqual([
      { prompt: 'q0:', completion: ' x0' },
      { prompt: 'q5:', completion: ' x5' },
    ]);
    expect(studyHeldOutRows(spec, rows, 1)).toEqual([{ prompt: 'q0:', completion: ' x0' }]);
  });
});

/** The loss the stand-in "measures": an expert is best on its own task, the generated adapter between. */
function fakeLoss(adapter: string, task: string): number {
  if (adapter === 'base') return 3;
  if (adapter.startsWith('sg-lora')) return 1.5;
  if (adapter.startsWith('merge')) return 1.8;
  const expert = adapter.slice('expert-'.length);
  return expert === task ? 1 : 2 + Math.abs(TASKS.indexOf(expert as 'a') - TASKS.indexOf(task as 'a')) / 10;
}

/** Runs, evaluations and the bank as store rows, finished at once; `freezeAtEval` n: the n-th evals.start never returns, nor does anything after it. */
function standIn(options: { freezeAtEval?: number } = {}) {
  const started: string[] = [];
  const generated: AdapterGenerateRequestInput[] = [];
  const evaluationsStarted: string[] = [];
  let frozen = false;
  const hang = <T>(): Promise<T> => new Promise<T>(() => undefined);
  const now = () => new Date().toISOString();
  const addAdapter = (runId: string, name: string, method: string) =>
    store.adapters.create({ id: `ad-${runId}`, runId, name, method, baseModel: 'default', path: `/x/${runId}`, step: 1, trainableParams: 1, createdAt: now() });
  const jobs: StudyJobs = {
    runs: {
      start: async (input) => {
        if (frozen) return hang();
        const config = RunConfigSchema.parse(input);
        const run = store.runs.create({ id: `run-${store.runs.list().length + 1}`, name: config.name, config, createdAt: now(), ownerPid: process.pid });
        started.push(run.id);
        // The expert's task, as the adapter's name, from the data it trains on (the rows start with the task).
        const task = (JSON.parse(readFileSync(config.dataset, 'utf8').split('\n')[0]!) as { prompt: string }).prompt.split(' ')[0]!;
        addAdapter(run.id, `expert-${task}`, 'lora');
        return store.runs.update(run.id, { status: 'completed', finishedAt: now(), lastCheckpointStep: 1 });
      },
      get: async (id) => (frozen ? hang() : store.runs.require(id)),
      stop: async (id) => store.runs.require(id),
      resume: async (id) => store.runs.require(id),
    },
    adapters: {
      describe: async (input) => store.adapters.describe(input.adapterId, input.description),
      generate: async (input) => {
        if (frozen) return hang();
        for (const id of input.expertIds!) expect(store.adapters.require(id).description).not.toBeNull();
        generated.push(input);
        const runId = `gen-${store.runs.list().length + 1}`;
        const topConfig = store.runs.require(store.adapters.require(input.expertIds![0]!).runId).config;
        store.runs.create({ id: runId, name: input.name, config: topConfig, createdAt: now(), ownerPid: null });
        const kind = input.topK === input.expertIds!.length ? 'merge' : 'sg-lora';
        const adapter = addAdapter(runId, `${kind}-${generated.length}`, 'sg-lora');
        return { adapterId: adapter.id, path: adapter.path, generator: 'semantic-merge', experts: [], truncationError: 0, durationMs: 1 };
      },
    },
    evals: {
      stop: async (id) => store.evaluations.update(id, { status: 'stopped' }),
      start: async (input: EvalStartRequestInput): Promise<Evaluation> => {
        if (frozen) return hang();
        if (options.freezeAtEval === evaluationsStarted.length + 1) return ((frozen = true), hang());
        const adapter = input.adapterId ? store.adapters.require(input.adapterId) : null;
        const task = (JSON.parse(readFileSync(input.datasets.text!, 'utf8').split('\n')[0]!) as { prompt: string }).prompt.split(' ')[0]!;
        const id = `ev-${evaluationsStarted.length + 1}-${Math.random().toString(36).slice(2, 6)}`;
        evaluationsStarted.push(id);
        store.evaluations.create({
          id,
          runId: adapter?.runId ?? null,
          adapterId: adapter?.id ?? null,
          suite: input.suite,
          model: 'default',
          backendChoice: 'auto',
          seed: 0,
          limit: input.limit ?? null,
          datasets: input.datasets,
          createdAt: now(),
          ownerPid: process.pid,
        });
        return store.evaluations.update(id, {
          status: 'completed',
          summary: { [HELD_OUT_LOSS_KEY]: fakeLoss(adapter?.name ?? 'base', task) },
          finishedAt: now(),
        });
      },
      get: async (id) => (frozen ? hang() : store.evaluations.require(id)),
    },
  };
  return { jobs, started, generated, evaluationsStarted };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('a generation study', () => {
  it('trains the experts, then generates and merges from the other experts and scores each on the held-out rows', async () => {
    const { jobs, started, generated, evaluationsStarted } = standIn();
    const service = new StudyService({ store, paths, pollMs: 1 });
    service.connect(jobs);
    const study = await service.start({ recipe: recipe(writeSources()) });
    expect((await service.waitFor(study.id)).status).toBe('completed');
    expect(started).toHaveLength(3);
    // Per held-out task: SG-LoRA (top 1 of the bank of 2) and the merge (all 2), never from the task's own expert.
    expect(generated.map((g) => [g.description, g.topK, g.expertIds!.map((id) => store.adapters.require(id).name)])).toEqual([
      ['Task a.', 1, ['expert-b', 'expert-c']],
      ['Task a.', 2, ['expert-b', 'expert-c']],
      ['Task b.', 1, ['expert-a', 'expert-c']],
      ['Task b.', 2, ['expert-a', 'expert-c']],
      ['Task c.', 1, ['expert-a', 'expert-b']],
      ['Task c.', 2, ['expert-a', 'expert-b']],
    ]);
    // Base, the three experts, the generated and the merged adapter, for each of the three tasks.
    expect(evaluationsStarted).toHaveLength(18);
    const heldOut = store.evaluations.require(store.studies.cells(study.id)[3]!.evaluations.base!);
    expect(readFileSync(heldOut.datasets.text!, 'utf8').trim().split('\n')).toEqual([
      JSON.stringify({ prompt: 'a question 0\n', completion: ' a0' }),
      JSON.stringify({ prompt: 'a question 5\n', completion: ' a5' }),
    ]);

    const figure = service.detail(study.id).figures[0]!;
    expect(figure.xs).toEqual(['a', 'b', 'c']);
    const at = (series: string, task: number) => figure.series.find((s) => s.label === series)!.points[task]!;
    for (const [i, task] of TASKS.entries()) {
      const cell = store.studies.cells(study.id).find((c) => c.key === `task=${task} seed=1`)!;
      const stored = (subject: string) => store.evaluations.require(cell.evaluations[subject]!).summary![HELD_OUT_LOSS_KEY]!;
      const others = TASKS.filter((t) => t !== task).map((t) => stored(`expert:${t}`));
      expect(at('sg-lora', i).mean).toBe(stored('sg-lora'));
      expect(at('merge', i).mean).toBe(stored('merge'));
      expect(at('base', i).mean).toBe(stored('base'));
      expect(at('own-expert', i).mean).toBe(stored(`expert:${task}`));
      expect(at('best-expert', i).mean).toBe(Math.min(...others));
      expect(at('mean-expert', i).mean).toBeCloseTo((others[0]! + others[1]!) / 2, 12);
    }
    expect(at('best-expert', 0).mean).toBeCloseTo(2.1, 12);
    expect(at('own-expert', 1).mean).toBe(1);
  });

  it('killed mid-way, continues without retraining an expert or rescoring a finished adapter', async () => {
    const sources = writeSources();
    // Evaluation 8 is the second of held-out task b's (base, then expert a): the process dies as it starts.
    const first = standIn({ freezeAtEval: 8 });
    const killed = new StudyService({ store, paths, pollMs: 1 });
    killed.connect(first.jobs);
    const study = await killed.start({ recipe: recipe(sources) });
    await until(() => first.evaluationsStarted.length === 7 && killed.get(study.id).progress.current?.evaluation === 'base', 'the cut');
    await new Promise((r) => setTimeout(r, 20));
    const before = store.studies.cells(study.id);
    expect(before.map((c) => c.status)).toEqual(['completed', 'completed', 'completed', 'completed', 'evaluating', 'pending']);
    expect(Object.keys(before[4]!.evaluations)).toEqual(['base']);

    const second = standIn();
    const restarted = new StudyService({ store, paths, pollMs: 1 });
    restarted.connect(second.jobs);
    expect(restarted.get(study.id).status).toBe('interrupted');
    await restarted.start({ recipe: recipe(sources) });
    const ended = await restarted.waitFor(study.id);
    expect(ended.error).toBeNull();
    expect(ended.status).toBe('completed');
    expect(second.started).toEqual([]);
    // Cell b: the three experts, SG-LoRA and the merge (its base score is kept); cell c: all six.
    expect(second.evaluationsStarted).toHaveLength(5 + 6);
    expect(second.generated).toHaveLength(4);
    const after = store.studies.cells(study.id);
    expect(after[3]!.evaluations).toEqual(before[3]!.evaluations);
    expect(after[4]!.evaluations.base).toBe(before[4]!.evaluations.base);
  });
});
