// A generation recipe's second kind of cell (SG-LoRA leave-one-task-out): for one held-out task, an
// adapter generated from the other tasks' experts and the task's description alone, and a merge of those
// experts; then the perplexity suite scores each on the task's held-out rows, beside the base model, every
// other expert and the task's own expert. The experts are the recipe's expert cells, trained before.
// Like a run cell, every evaluation id is stored the moment it exists, so a continued study scores only
// what is missing; an adapter generated but not yet scored when the process died is generated again
// (generation trains nothing and takes seconds).
import path from 'node:path';
import { WorkbenchError } from '../src-shared/errors.ts';
import type { Evaluation } from '../src-shared/eval.ts';
import { metricId, type StudyCellResult } from '../src-shared/study-figures.ts';
import { expertCellKey, type StudyCell, type StudyCellPlan, type StudyGeneration, type StudyRecipe } from '../src-shared/studies.ts';
import type { StudyJobs } from './study-jobs.ts';
import { prepareHeldOutText } from './studies-data.ts';

/** The summary figure each adapter is compared on: mean loss per completion token of the held-out rows (nats). */
export const HELD_OUT_LOSS_KEY = 'perplexity.text.loss';
/** What a generation cell scores, as the keys of its stored evaluations. */
const BASE = 'base';
const SG_LORA = 'sg-lora';
const MERGE = 'merge';
const expertSubject = (task: string) => `expert:${task}`;

export interface GenerationCellContext {
  jobs: StudyJobs;
  studyId: string;
  studyName: string;
  generation: StudyGeneration;
  plan: StudyCellPlan;
  cell: StudyCell;
  /** Every cell of the study as stored now: the experts' runs. */
  cells: StudyCell[];
  dataDir: string;
  /** Stores the cell's evaluation ids as they grow. */
  saveEvaluations: (evaluations: Record<string, string>) => void;
  /** Starts the evaluation and waits for it to end, reporting it as the cell's current work. */
  evaluate: (subject: string, start: () => Promise<Evaluation>) => Promise<Evaluation>;
  stopping: () => boolean;
}

/** Returns null when the cell finished, or why it failed; throws only what its caller reports the same way. */
export async function runGenerationCell(ctx: GenerationCellContext): Promise<string | null> {
  const { jobs, generation, plan } = ctx;
  if (!jobs.adapters) throw new WorkbenchError('internal', 'The study service is not connected to the adapter bank (adapters.generate).');
  const heldOut = plan.levels.task!;
  const tasks = generation.tasks;
  const held = tasks.find((t) => t.name === heldOut)!;
  // The bank and the oracle: the adapters of the expert cells with this seed.
  const experts = new Map<string, string>();
  for (const task of tasks) {
    const key = expertCellKey(task.name, plan.seed);
    const cell = ctx.cells.find((c) => c.key === key);
    const run = cell?.status === 'completed' && cell.runId ? await jobs.runs.get(cell.runId) : null;
    if (!run?.adapterId) return `expert cell "${key}" has no finished adapter (${cell?.error ?? cell?.status ?? 'missing'}); continue the study to train it.`;
    experts.set(task.name, run.adapterId);
  }
  const bank = tasks.filter((t) => t.name !== heldOut);
  for (const task of bank) await jobs.adapters.describe({ adapterId: experts.get(task.name)!, description: task.description });

  const text = prepareHeldOutText(plan.data!, path.join(ctx.dataDir, 'studies', ctx.studyId, 'held-out'), generation.heldOutRows);
  const model = typeof plan.config.model === 'string' ? plan.config.model : undefined;
  const backend = plan.config.backend;
  const score = (adapterId: string | undefined) => () =>
    jobs.evals.start({ suite: 'perplexity', datasets: { text }, limit: generation.heldOutRows, ...(adapterId ? { adapterId } : { model }), backend });
  const generate = async (subject: typeof SG_LORA | typeof MERGE) => {
    const report = await jobs.adapters!.generate({
      name: `${ctx.studyName} ${plan.key} ${subject}`.slice(0, 200),
      description: held.description,
      expertIds: bank.map((t) => experts.get(t.name)!),
      r: generation.r,
      seed: plan.seed,
      backend,
      // The merge baseline weighs every expert of the bank alike: all of them, at the flattest softmax allowed.
      ...(subject === SG_LORA
        ? { generator: generation.generator, topK: generation.topK, temperature: generation.temperature }
        : { generator: 'semantic-merge', topK: bank.length, temperature: 10 }),
    });
    return report.adapterId;
  };

  const subjects: [string, () => Promise<() => Promise<Evaluation>>][] = [
    [BASE, async () => score(undefined)],
    ...tasks.map((t): [string, () => Promise<() => Promise<Evaluation>>] => [expertSubject(t.name), async () => score(experts.get(t.name))]),
    [SG_LORA, async () => score(await generate(SG_LORA))],
    [MERGE, async () => score(await generate(MERGE))],
  ];
  const evaluations = { ...ctx.cell.evaluations };
  for (const [subject, prepare] of subjects) {
    if (ctx.stopping()) return null;
    const previous = evaluations[subject] ? await jobs.evals.get(evaluations[subject]!).catch(() => null) : null;
    if (previous?.status === 'completed') continue;
    const start = await prepare();
    const finished = await ctx.evaluate(subject, async () => {
      const started = await start();
      evaluations[subject] = started.id;
      ctx.saveEvaluations(evaluations);
      return started;
    });
    if (ctx.stopping()) return null;
    if (finished.status !== 'completed') return `evaluation ${subject} (${finished.id}) ${finished.status}: ${finished.error ?? ''}`;
  }
  return null;
}

/**
 * A generation cell's figures: each adapter's held-out loss, the best and the mean of the other experts
 * (picking one expert by hand reaches the best at most), and the task's own expert (the oracle).
 */
export function generationValues(recipe: StudyRecipe, cell: StudyCell, lossOf: (evaluationId: string) => number | undefined): StudyCellResult['values'] {
  const heldOut = cell.levels.task;
  if (!recipe.generation || heldOut === undefined) return {};
  const loss = (subject: string) => (cell.evaluations[subject] ? lossOf(cell.evaluations[subject]!) : undefined);
  const values: Record<string, number> = {};
  const put = (name: string, value: number | undefined) => {
    if (value !== undefined && Number.isFinite(value)) values[metricId({ generation: name as 'base' })] = value;
  };
  put('base', loss(BASE));
  put('sg-lora', loss(SG_LORA));
  put('merge', loss(MERGE));
  put('own-expert', loss(expertSubject(heldOut)));
  const others = recipe.generation.tasks.filter((t) => t.name !== heldOut).map((t) => loss(expertSubject(t.name)));
  // Best and mean only once every other expert is scored: a partial bank would flatter them.
  if (others.every((v): v is number => v !== undefined)) {
    put('best-expert', Math.min(...others));
    put('mean-expert', others.reduce((a, b) => a + b, 0) / others.length);
  }
  return values;
}
