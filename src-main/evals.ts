// EvalManager: runs evaluation jobs in engine workers beside the RunManager's training workers,
// stores each evaluation's row and its full result file, and fans its progress out as events.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_MODEL } from '../src-shared/config.ts';
import { validate, WorkbenchError } from '../src-shared/errors.ts';
import {
  EvalJobSchema,
  EvalResultSchema,
  EvalStartRequestSchema,
  type EvalDatasets,
  type EvalJob,
  type EvalResult,
  type EvalStartRequestInput,
  type Evaluation,
  type EvaluationStatus,
} from '../src-shared/eval.ts';
import type { WorkerToMain } from '../src-shared/worker-protocol.ts';
import { resolveAdapterAndModel } from './model-resolution.ts';
import { isOrphanedOwner, JobManager, type JobManagerOptions, newId, nowIso, type TrackedJob } from './jobs.ts';
import type { Store } from './store/index.ts';

export interface EvalManagerOptions extends JobManagerOptions {
  /** Progress is written to the row at most this often (events go out on every message). */
  progressWriteMs?: number;
}

interface ActiveEval extends TrackedJob {
  progress: { done: number; total: number } | null;
  /** The row says 'running' (set by the first progress message). */
  running: boolean;
  progressWrittenAt: number;
}

const INTERRUPTED_AT_START = 'Interrupted: the process running this evaluation ended before it finished. Start it again.';
const INTERRUPTED_AT_CLOSE = 'Interrupted: the workbench closed while this evaluation was running. Start it again.';

/** Per-item arrays stay in the result file; the summary holds only aggregate figures. */
const PER_ITEM = new Set(['items', 'changes']);

function flatten(value: unknown, prefix: string, into: Record<string, number>): void {
  if (typeof value === 'number' && Number.isFinite(value)) into[prefix] = value;
  else if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(value)) {
      if (!PER_ITEM.has(key)) flatten(child, prefix ? `${prefix}.${key}` : key, into);
    }
  }
}

/**
 * The headline figures of a result, flat: "crowsPairs.byBiasType.gender.stereoPercent",
 * "stereoSet.intrasentence.overall.icat", "bbq.overall.ambig.biasScore", "qqp.scores.f1",
 * "robustness.curves.typo@0.1.base.accuracy", "perplexity.text.perplexity". The last segment is the figure, the rest its row.
 */
export function summarize(result: EvalResult): Record<string, number> {
  const summary: Record<string, number> = {};
  const figures = result[result.suite];
  if (result.suite === 'robustness' && result.robustness) {
    const r = result.robustness;
    flatten(r.original, 'robustness.original', summary);
    for (const c of r.curves) flatten({ base: c.base, adapter: c.adapter }, `robustness.curves.${c.family}@${c.level}`, summary);
    for (const w of r.worstCase) {
      summary[`robustness.worstCase@${w.level}.base`] = w.base.value;
      if (w.adapter) summary[`robustness.worstCase@${w.level}.adapter`] = w.adapter.value;
    }
  } else if (result.suite === 'qqp' || result.suite === 'hotpotqa' || result.suite === 'perplexity') flatten(figures, result.suite, summary);
  else flatten(figures, '', summary);
  return summary;
}

export class EvalManager extends JobManager<ActiveEval, Evaluation> {
  private readonly progressWriteMs: number;
  readonly evalsDir: string;

  constructor(options: EvalManagerOptions) {
    super(options, {
      noun: 'evaluation',
      afterCrash: 'Start the evaluation again.',
      defaultStopTimeoutMs: 30_000,
      shuttingDown: 'The evaluation manager is shutting down; no new evaluation can start.',
    });
    this.progressWriteMs = options.progressWriteMs ?? 1000;
    this.evalsDir = path.join(this.paths.dataDir, 'evals');
    mkdirSync(this.evalsDir, { recursive: true });
    this.store.evaluations.markInterrupted(isOrphanedOwner, INTERRUPTED_AT_START, nowIso());
  }

  list(): Evaluation[] {
    return this.store.evaluations.list().map((e) => this.withLiveProgress(e));
  }

  get(id: string): Evaluation {
    return this.withLiveProgress(this.store.evaluations.require(id));
  }

  /** The full result file of a completed evaluation, checked against the schema (it may have been edited or truncated). */
  result(id: string): EvalResult {
    const evaluation = this.store.evaluations.require(id);
    if (evaluation.status !== 'completed' || !evaluation.resultPath) {
      throw new WorkbenchError('conflict', `Evaluation ${id} is ${evaluation.status}; only a completed evaluation has a result.`, {
        id,
        status: evaluation.status,
      });
    }
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(evaluation.resultPath, 'utf8'));
    } catch (error) {
      throw new WorkbenchError('not_found', `The result file of evaluation ${id} cannot be read (${(error as Error).message}); run the evaluation again.`, {
        path: evaluation.resultPath,
      });
    }
    return validate(EvalResultSchema, raw, `result file ${evaluation.resultPath}`);
  }

  /** Resolves with the evaluation once its worker is gone. */
  async waitFor(id: string): Promise<Evaluation> {
    await this.jobs.active.get(id)?.done;
    return this.get(id);
  }

  async start(input: EvalStartRequestInput): Promise<Evaluation> {
    this.assertOpen();
    const request = validate(EvalStartRequestSchema, input, 'evals.start input');
    // An adapter is evaluated on the model it was trained on unless the caller names another.
    const { adapter, model, modelDir } = resolveAdapterAndModel(this.store, this.paths, request);
    const datasets: EvalDatasets = {};
    for (const [key, file] of Object.entries(request.datasets) as [keyof EvalDatasets, string | undefined][]) {
      if (!file) continue;
      const resolved = path.resolve(file);
      if (!existsSync(resolved)) {
        throw new WorkbenchError(
          'not_found',
          `The ${key} dataset ${resolved} does not exist. Download it (EVALUATION.md lists the sources) and pass its path.`,
          {
            field: `datasets.${key}`,
            path: resolved,
          },
        );
      }
      datasets[key] = resolved;
    }
    const job: EvalJob = validate(
      EvalJobSchema,
      {
        type: 'eval',
        modelDir,
        adapterDir: adapter?.path ?? null,
        suite: request.suite,
        datasets,
        limit: request.limit ?? null,
        seed: request.seed,
        backend: request.backend,
        robustness: request.robustness,
        encoderDir: request.encoderDir ? path.resolve(request.encoderDir) : undefined,
      },
      'evaluation',
    );
    const evaluation = this.store.evaluations.create({
      id: newId('ev-'),
      runId: adapter?.runId ?? null,
      adapterId: adapter?.id ?? null,
      suite: job.suite,
      model: model === DEFAULT_MODEL ? DEFAULT_MODEL : modelDir,
      backendChoice: job.backend,
      seed: job.seed,
      limit: job.limit,
      datasets,
      createdAt: nowIso(),
      ownerPid: process.pid,
    });
    this.launch(evaluation, job);
    this.emit(evaluation);
    return evaluation;
  }

  /** Ends every worker; their evaluations are marked failed (an evaluation cannot be resumed). */
  protected async shutDown(): Promise<void> {
    await this.jobs.close((active) =>
      this.emit(this.store.evaluations.update(active.id, { status: 'failed', error: INTERRUPTED_AT_CLOSE, finishedAt: nowIso(), ownerPid: null })),
    );
  }

  protected end(active: ActiveEval, outcome: { status: 'failed' | 'stopped'; error: string | null }): void {
    this.record(active, outcome.status, { error: outcome.error });
  }

  protected notRunning(id: string): WorkbenchError {
    const { status } = this.get(id);
    return new WorkbenchError('conflict', `Evaluation ${id} is not running (it is ${status}); there is nothing to stop.`, { status });
  }

  private withLiveProgress(evaluation: Evaluation): Evaluation {
    const progress = this.jobs.active.get(evaluation.id)?.progress;
    return progress ? { ...evaluation, progress } : evaluation;
  }

  private launch(evaluation: Evaluation, job: EvalJob): void {
    this.jobs.launch(
      (base) => ({ ...base, id: evaluation.id, progress: null, running: false, progressWrittenAt: 0 }),
      job,
      (error) => {
        this.store.evaluations.update(evaluation.id, { status: 'failed', error, finishedAt: nowIso(), ownerPid: null });
      },
    );
  }

  protected handle(active: ActiveEval, message: WorkerToMain): void {
    switch (message.type) {
      case 'eval-progress': {
        active.progress = { done: message.done, total: message.total };
        const now = Date.now();
        if (!active.running || now - active.progressWrittenAt >= this.progressWriteMs) {
          active.running = true;
          active.progressWrittenAt = now;
          this.emit(this.store.evaluations.update(active.id, { status: 'running', progress: active.progress }));
        } else {
          this.emit(this.get(active.id));
        }
        return;
      }
      case 'log':
        this.emit(this.get(active.id), { level: message.level, message: message.message });
        return;
      case 'evaluated': {
        const resultPath = path.join(this.evalsDir, `${active.id}.json`);
        writeFileSync(resultPath, JSON.stringify(message.result, null, 2));
        this.settle(active, 'completed', {
          backend: message.result.backend,
          slices: message.result.slices,
          summary: summarize(message.result),
          resultPath,
          error: null,
        });
        return;
      }
      case 'stopped':
        this.settle(active, 'stopped', { error: null });
        return;
      case 'failed':
        this.emit(this.get(active.id), { level: 'error', message: message.error.message });
        this.settle(active, 'failed', { error: message.error.message });
        return;
      default:
        this.emit(this.get(active.id), { level: 'warn', message: `The evaluation worker sent a ${message.type} message; ignored.` });
    }
  }

  private settle(active: ActiveEval, status: Exclude<EvaluationStatus, 'queued' | 'running'>, patch: Parameters<Store['evaluations']['update']>[1]): void {
    this.jobs.settle(active, () => this.record(active, status, patch));
  }

  private record(active: ActiveEval, status: Exclude<EvaluationStatus, 'queued' | 'running'>, patch: Parameters<Store['evaluations']['update']>[1]): void {
    this.emit(this.store.evaluations.update(active.id, { ...patch, status, progress: active.progress, finishedAt: nowIso(), ownerPid: null }));
  }

  private emit(evaluation: Evaluation, log?: { level: 'info' | 'warn' | 'error'; message: string }): void {
    this.listeners.emit({ kind: 'eval', evaluation, ...(log ? { log } : {}) });
  }
}
