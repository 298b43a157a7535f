// StudyService: runs a study's cells one at a time through the WorkbenchApi (runs.start / resume, then
// evals.start on the run's adapter), tags the runs and evaluations with the study, and survives restarts:
// a cell's run and evaluation ids are stored the moment they exist, so a study continued after its
// process died resumes the interrupted run from its checkpoint and never redoes a finished cell.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { validate, WorkbenchError } from '../src-shared/errors.ts';
import type { Evaluation } from '../src-shared/eval.ts';
import { resumableStatuses, type Run } from '../src-shared/runs.ts';
import { figureData, metricId, neededMetrics, type StudyCellResult, type StudyDetail } from '../src-shared/study-figures.ts';
import {
  BuiltInRecipeSchema,
  expandGrid,
  parseRecipe,
  recipeVariables,
  scaleRecipe,
  StudyStartRequestSchema,
  substituteVariables,
  type BuiltInRecipe,
  type Study,
  type StudyCell,
  type StudyCellPlan,
  type StudyProgress,
  type StudyRecipe,
  type StudyStartRequestInput,
} from '../src-shared/studies.ts';
import type { WorkbenchPaths } from './paths.ts';
import { isProcessAlive, newId } from './jobs.ts';
import { prepareStudyData } from './studies-data.ts';
import { generationValues, HELD_OUT_LOSS_KEY, runGenerationCell } from './studies-generation.ts';
import type { Store } from './store/index.ts';
import type { StoredStudy } from './store/studies-repo.ts';
import type { StudyJobs } from './study-jobs.ts';

export type { StudyJobs };

export interface StudyServiceOptions {
  store: Store;
  paths: WorkbenchPaths;
  /** How often a running run or evaluation is looked at (its status and progress). */
  pollMs?: number;
  /** Built-in recipes (resources/studies by default). */
  recipesDir?: string;
}

interface ActiveStudy {
  id: string;
  stopping: boolean;
  /** The process is closing: the study becomes 'interrupted', its run is left to the RunManager. */
  closing: boolean;
  current: {
    cell: string;
    phase: 'training' | 'evaluating';
    runId: string | null;
    evaluationId: string | null;
    evaluation: string | null;
    step: number | null;
    maxSteps: number | null;
  } | null;
  done: Promise<void>;
}

const INTERRUPTED =
  'Interrupted: the process running this study ended. Continue it (study run RECIPE again, or Continue on the Studies page): finished cells are kept.';
const nowIso = () => new Date().toISOString();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** JSON with sorted keys: the same recipe always has the same digest. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object')
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(value);
}

const finishedEval = (e: Evaluation) => e.status !== 'queued' && e.status !== 'running';
const finishedRun = (r: Run) => r.status !== 'queued' && r.status !== 'running';

export class StudyService {
  private readonly store: Store;
  private readonly paths: WorkbenchPaths;
  private readonly pollMs: number;
  private readonly recipesDir: string;
  private jobs: StudyJobs | null = null;
  private readonly active = new Map<string, ActiveStudy>();
  /** Studies run one after another: a second one waits its turn as 'queued'. */
  private queue: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(options: StudyServiceOptions) {
    this.store = options.store;
    this.paths = options.paths;
    this.pollMs = options.pollMs ?? 500;
    this.recipesDir = options.recipesDir ?? path.join(options.paths.resourcesDir, 'studies');
    this.store.studies.markInterrupted((pid) => pid === null || pid === process.pid || !isProcessAlive(pid), INTERRUPTED);
  }

  /** The API the cells run through (set once the WorkbenchApi that holds this service exists). */
  connect(jobs: StudyJobs): void {
    this.jobs = jobs;
  }

  list(): Study[] {
    return this.store.studies.list().map((s) => this.toStudy(s));
  }

  get(id: string): Study {
    return this.toStudy(this.store.studies.require(id));
  }

  detail(id: string): StudyDetail {
    const stored = this.store.studies.require(id);
    const cells = this.store.studies.cells(id);
    const results = this.cellResults(stored.recipe, cells);
    return { study: this.toStudy(stored), cells, figures: stored.recipe.figures.map((f) => figureData(stored.recipe, f, results)) };
  }

  /** The recipes in resources/studies, as written. */
  recipes(): BuiltInRecipe[] {
    let files: string[];
    try {
      files = readdirSync(this.recipesDir)
        .filter((f) => f.endsWith('.json'))
        .sort();
    } catch {
      return [];
    }
    return files.map((file) => {
      const full = path.join(this.recipesDir, file);
      const recipe = JSON.parse(readFileSync(full, 'utf8')) as Record<string, unknown>;
      const paper = recipe.paper as { redraws?: string } | undefined;
      return validate(
        BuiltInRecipeSchema,
        {
          file: full,
          name: recipe.name,
          title: recipe.title,
          redraws: paper?.redraws ?? null,
          recipe,
          variables: recipeVariables(recipe),
        },
        `built-in recipe ${full}`,
      );
    });
  }

  /**
   * Starts a study, or takes up the newest study of the same grid (after variables and scale): an unfinished
   * one continues, a completed one is redrawn with the recipe's figures; `fresh` measures again from scratch.
   */
  async start(input: StudyStartRequestInput): Promise<Study> {
    this.assertOpen();
    const request = validate(StudyStartRequestSchema, input, 'studies.start input');
    const recipe = scaleRecipe(parseRecipe(substituteVariables(request.recipe, request.variables, ['recipe']), 'recipe'), request.scale);
    const plan = expandGrid(recipe);
    // The grid alone (what is trained and evaluated): editing a figure, a title or a claim keeps the study.
    const { base, data, axes, seeds, evaluations, generation } = recipe;
    const grid = { base, data, axes, seeds, evaluations, ...(generation ? { generation } : {}) };
    const digest = createHash('sha256').update(canonical(grid)).digest('hex');
    const existing = request.fresh ? undefined : this.store.studies.latestWithDigest(digest);
    if (existing) {
      if (!this.active.has(existing.id)) this.store.studies.update(existing.id, { recipe, title: recipe.title });
      return existing.status === 'completed' ? this.get(existing.id) : this.resume(existing.id);
    }
    const stored = this.store.studies.create(
      { id: newId('st-'), name: recipe.name, title: recipe.title, recipe, digest, source: request.source ?? null, ownerPid: process.pid, createdAt: nowIso() },
      plan.map((c) => ({ key: c.key, position: c.position, levels: c.levels, seed: c.seed })),
    );
    this.enqueue(stored.id);
    return this.get(stored.id);
  }

  /** Continues a stopped, interrupted or failed study: finished cells stay, the rest run. */
  async resume(id: string): Promise<Study> {
    this.assertOpen();
    const study = this.store.studies.require(id);
    if (this.active.has(id)) return this.get(id);
    if (study.status === 'completed') return this.get(id);
    if (
      (study.status === 'running' || study.status === 'queued') &&
      study.ownerPid !== null &&
      study.ownerPid !== process.pid &&
      isProcessAlive(study.ownerPid)
    ) {
      throw new WorkbenchError('conflict', `Study ${id} is being run by process ${study.ownerPid}; stop it there first.`, { ownerPid: study.ownerPid });
    }
    this.store.studies.update(id, { status: 'queued', error: null, finishedAt: null, ownerPid: process.pid });
    this.enqueue(id);
    return this.get(id);
  }

  /** Stops after stopping the current run (with a checkpoint) or evaluation; continue it later. */
  async stop(id: string): Promise<Study> {
    const active = this.active.get(id);
    if (!active) {
      const study = this.store.studies.require(id);
      if (study.status === 'running' && study.ownerPid !== null && study.ownerPid !== process.pid) {
        throw new WorkbenchError(
          'conflict',
          `Study ${id} is being run by another process (${study.ownerPid}, e.g. lora-workbench study run); stop it there (Ctrl-C).`,
          { ownerPid: study.ownerPid },
        );
      }
      throw new WorkbenchError('conflict', `Study ${id} is not running (it is ${study.status}); there is nothing to stop.`);
    }
    active.stopping = true;
    const current = active.current;
    if (current?.phase === 'training' && current.runId) await this.jobs?.runs.stop(current.runId).catch(() => undefined);
    if (current?.phase === 'evaluating' && current.evaluationId) await this.jobs?.evals.stop(current.evaluationId).catch(() => undefined);
    await active.done;
    return this.get(id);
  }

  /** Resolves once the study's loop has ended (completed, stopped, failed or interrupted). */
  async waitFor(id: string): Promise<Study> {
    await this.active.get(id)?.done;
    return this.get(id);
  }

  /**
   * The process is ending: active studies become 'interrupted' now (the run managers interrupt their runs);
   * resolves when their loops have noticed.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const active of this.active.values()) {
      active.closing = true;
      active.stopping = true;
      this.store.studies.update(active.id, { status: 'interrupted', error: INTERRUPTED, ownerPid: null });
    }
    await Promise.allSettled([...this.active.values()].map((a) => a.done));
  }

  private assertOpen(): void {
    if (this.closed) throw new WorkbenchError('conflict', 'The workbench is shutting down; no study can start.');
    if (!this.jobs) throw new WorkbenchError('internal', 'The study service is not connected to the workbench API.');
  }

  private enqueue(id: string): void {
    let release!: () => void;
    const active: ActiveStudy = { id, stopping: false, closing: false, current: null, done: new Promise<void>((resolve) => (release = resolve)) };
    this.active.set(id, active);
    this.queue = this.queue
      .then(() => this.drive(active))
      .catch(() => undefined)
      .finally(() => {
        this.active.delete(id);
        release();
      });
  }

  private async drive(active: ActiveStudy): Promise<void> {
    const { id } = active;
    if (active.stopping) {
      if (!active.closing) this.store.studies.update(id, { status: 'stopped', ownerPid: null });
      return;
    }
    const study = this.store.studies.update(id, { status: 'running', ownerPid: process.pid, error: null });
    try {
      const plan = expandGrid(study.recipe);
      for (const cellPlan of plan) {
        if (active.stopping) break;
        const cell = this.store.studies.cells(id).find((c) => c.key === cellPlan.key);
        if (!cell || cell.status === 'completed') continue;
        if (cellPlan.kind === 'generate') await this.runGeneration(active, study, cellPlan, cell);
        else await this.runCell(active, study, cellPlan, cell);
      }
      if (active.closing) return;
      const failed = this.store.studies.cells(id).filter((c) => c.status === 'failed');
      this.store.studies.update(id, {
        status: active.stopping ? 'stopped' : failed.length > 0 ? 'failed' : 'completed',
        error:
          failed.length > 0
            ? `${failed.length} of ${plan.length} cells failed; the first: ${failed[0]!.key}: ${failed[0]!.error}. Continue the study to retry them.`
            : null,
        ownerPid: null,
        finishedAt: active.stopping ? null : nowIso(),
      });
    } catch (error) {
      if (!active.closing) this.store.studies.update(id, { status: 'failed', error: WorkbenchError.from(error).message, ownerPid: null });
    } finally {
      active.current = null;
    }
  }

  private async runCell(active: ActiveStudy, study: StoredStudy, plan: StudyCellPlan, cell: StudyCell): Promise<void> {
    const jobs = this.jobs!;
    const update = (patch: Parameters<Store['studies']['updateCell']>[2]) => this.store.studies.updateCell(study.id, plan.key, patch);
    update({ status: 'training', startedAt: nowIso(), finishedAt: null, error: null });
    active.current = { cell: plan.key, phase: 'training', runId: cell.runId, evaluationId: null, evaluation: null, step: null, maxSteps: null };
    const fail = (message: string) => update({ status: 'failed', error: message, finishedAt: nowIso() });
    // Stopped or closing mid-cell: the cell keeps its run and evaluation ids and continues from them.
    const interrupted = () => active.stopping && (update({ status: 'pending' }), true);
    try {
      let run = cell.runId ? await jobs.runs.get(cell.runId).catch(() => null) : null;
      if (run?.status !== 'completed') {
        // A run still going (in this process) is waited for; one that ended early resumes from its checkpoint.
        if (run && finishedRun(run) && resumableStatuses.includes(run.status) && run.lastCheckpointStep !== null) run = await jobs.runs.resume(run.id);
        else if (!run || finishedRun(run)) {
          const dataset = plan.data ? prepareStudyData(plan.data, path.join(this.paths.dataDir, 'studies', study.id, 'data')) : undefined;
          run = await jobs.runs.start({ ...plan.config, ...(dataset ? { dataset } : {}) });
          update({ runId: run.id });
        }
        active.current.runId = run.id;
        // Stop was asked while the run was being started: it could not reach the run yet.
        if (active.stopping) await jobs.runs.stop(run.id).catch(() => undefined);
        run = await this.poll(
          () => jobs.runs.get(run!.id),
          finishedRun,
          (r) => {
            active.current!.step = r.progress?.step ?? null;
            active.current!.maxSteps = r.config.training.maxSteps;
          },
        );
        if (interrupted()) return;
        if (run.status !== 'completed' || !run.adapterId) return void fail(`run ${run.id} ${run.status}: ${run.error ?? 'no adapter'}`);
      }
      update({ status: 'evaluating' });
      const evaluations = { ...cell.evaluations };
      for (const spec of study.recipe.evaluations) {
        if (active.stopping) return void interrupted();
        const previous = evaluations[spec.id] ? await jobs.evals.get(evaluations[spec.id]!).catch(() => null) : null;
        if (previous?.status === 'completed') continue;
        const { id: evaluationName, ...request } = spec;
        const started = await jobs.evals.start({ ...request, adapterId: run.adapterId! });
        evaluations[evaluationName] = started.id;
        update({ evaluations });
        active.current = { ...active.current, phase: 'evaluating', evaluationId: started.id, evaluation: evaluationName, step: null, maxSteps: null };
        if (active.stopping) await jobs.evals.stop(started.id).catch(() => undefined);
        const finished = await this.poll(
          () => jobs.evals.get(started.id),
          finishedEval,
          (e) => {
            active.current!.step = e.progress?.done ?? null;
            active.current!.maxSteps = e.progress?.total ?? null;
          },
        );
        if (interrupted()) return;
        if (finished.status !== 'completed') return void fail(`evaluation ${evaluationName} (${finished.id}) ${finished.status}: ${finished.error ?? ''}`);
      }
      update({ status: 'completed', finishedAt: nowIso() });
    } catch (error) {
      if (!interrupted()) fail(WorkbenchError.from(error).message);
    }
  }

  private async runGeneration(active: ActiveStudy, study: StoredStudy, plan: StudyCellPlan, cell: StudyCell): Promise<void> {
    const jobs = this.jobs!;
    const update = (patch: Parameters<Store['studies']['updateCell']>[2]) => this.store.studies.updateCell(study.id, plan.key, patch);
    update({ status: 'evaluating', startedAt: nowIso(), finishedAt: null, error: null });
    active.current = { cell: plan.key, phase: 'evaluating', runId: null, evaluationId: null, evaluation: null, step: null, maxSteps: null };
    try {
      const failure = await runGenerationCell({
        jobs,
        studyId: study.id,
        studyName: study.recipe.name,
        generation: study.recipe.generation!,
        plan,
        cell,
        cells: this.store.studies.cells(study.id),
        dataDir: this.paths.dataDir,
        saveEvaluations: (evaluations) => update({ evaluations }),
        stopping: () => active.stopping,
        evaluate: async (subject, start) => {
          const started = await start();
          active.current = { ...active.current!, evaluationId: started.id, evaluation: subject };
          if (active.stopping) await jobs.evals.stop(started.id).catch(() => undefined);
          return this.poll(
            () => jobs.evals.get(started.id),
            finishedEval,
            (e) => {
              active.current!.step = e.progress?.done ?? null;
              active.current!.maxSteps = e.progress?.total ?? null;
            },
          );
        },
      });
      if (active.stopping) update({ status: 'pending' });
      else if (failure) update({ status: 'failed', error: failure, finishedAt: nowIso() });
      else update({ status: 'completed', finishedAt: nowIso() });
    } catch (error) {
      update(active.stopping ? { status: 'pending' } : { status: 'failed', error: WorkbenchError.from(error).message, finishedAt: nowIso() });
    }
  }

  private async poll<T>(read: () => Promise<T>, isDone: (value: T) => boolean, onProgress: (value: T) => void): Promise<T> {
    for (;;) {
      const value = await read();
      onProgress(value);
      if (isDone(value)) return value;
      await sleep(this.pollMs);
    }
  }

  private toStudy(stored: StoredStudy): Study {
    const cells = this.store.studies.cells(stored.id);
    return {
      id: stored.id,
      name: stored.name,
      title: stored.title,
      status: stored.status,
      source: stored.source,
      recipe: stored.recipe,
      progress: this.progress(stored.id, cells),
      error: stored.error,
      createdAt: stored.createdAt,
      finishedAt: stored.finishedAt,
    };
  }

  /** Done cells, the current one, and an ETA from the mean time of the cells finished so far. */
  private progress(id: string, cells: StudyCell[]): StudyProgress {
    const done = cells.filter((c) => c.status === 'completed');
    const timed = done.filter((c) => c.startedAt && c.finishedAt).map((c) => Date.parse(c.finishedAt!) - Date.parse(c.startedAt!));
    const current = this.active.get(id)?.current ?? null;
    const remaining = cells.length - done.length;
    let etaSeconds: number | null = null;
    if (timed.length > 0 && remaining > 0) {
      const perCell = timed.reduce((a, b) => a + b, 0) / timed.length / 1000;
      const currentCell = current && cells.find((c) => c.key === current.cell);
      const elapsed = currentCell?.startedAt ? (Date.now() - Date.parse(currentCell.startedAt)) / 1000 : 0;
      etaSeconds = Math.max(0, perCell * remaining - Math.min(elapsed, perCell));
    } else if (remaining === 0) etaSeconds = 0;
    return {
      cellsDone: done.length,
      cellsTotal: cells.length,
      current: current && { key: current.cell, phase: current.phase, step: current.step, maxSteps: current.maxSteps, evaluation: current.evaluation },
      etaSeconds,
    };
  }

  /** What each cell has stored: the evaluation summary figures and run metrics the recipe's figures read. */
  private cellResults(recipe: StudyRecipe, cells: StudyCell[]): StudyCellResult[] {
    const needed = neededMetrics(recipe);
    return cells.map((cell) => {
      const values: Record<string, number> = generationValues(recipe, cell, (id) => {
        const stored = this.store.evaluations.get(id);
        return stored?.status === 'completed' ? stored.summary?.[HELD_OUT_LOSS_KEY] : undefined;
      });
      const curves: StudyCellResult['curves'] = {};
      for (const [evaluation, keys] of needed.evalKeys) {
        const id = cell.evaluations[evaluation];
        const stored = id ? this.store.evaluations.get(id) : undefined;
        if (stored?.status !== 'completed' || !stored.summary) continue;
        for (const key of keys) if (key in stored.summary) values[`eval:${evaluation}:${key}`] = stored.summary[key]!;
      }
      if (cell.runId && this.store.runs.get(cell.runId)) {
        for (const name of needed.runMetrics) {
          const points = this.store.metrics.list(cell.runId, name);
          if (points.length === 0) continue;
          values[metricId({ run: name, reduce: 'last' })] = points[points.length - 1]!.value;
          values[metricId({ run: name, reduce: 'min' })] = Math.min(...points.map((p) => p.value));
        }
        for (const name of needed.curves) curves[name] = this.store.metrics.list(cell.runId, name).map((p) => ({ step: p.step, value: p.value }));
      }
      return { key: cell.key, levels: cell.levels, seed: cell.seed, values, curves };
    });
  }
}
