// EvalManager: runs evaluation jobs in engine workers beside the RunManager's training workers,
// stores each evaluation's row and its full result file, and fans its progress out as events.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import type { RunEvent, RunEventListener } from '../src-shared/api.ts';
import { DEFAULT_MODEL } from '../src-shared/config.ts';
import { validate, WorkbenchError } from '../src-shared/errors.ts';
import {
  EvalJobSchema, EvalResultSchema, EvalStartRequestSchema,
  type EvalDatasets, type EvalJob, type EvalResult, type EvalStartRequestInput, type Evaluation, type EvaluationStatus,
} from '../src-shared/eval.ts';
import { WorkerToMainSchema, type MainToWorker, type WorkerToMain } from '../src-shared/worker-protocol.ts';
import { ensureDataDirs, type WorkbenchPaths } from './paths.ts';
import { resolveAdapterAndModel } from './model-resolution.ts';
import { isProcessAlive, newId } from './runs.ts';
import type { Store } from './store/index.ts';
import { startEngineWorker, stopWorkerJob, type WorkerJob } from './worker-thread.ts';

export interface EvalManagerOptions {
  store: Store;
  paths: WorkbenchPaths;
  /** How long stop() waits for the worker's `stopped` before terminating it. */
  stopTimeoutMs?: number;
  /** Progress is written to the row at most this often (events go out on every message). */
  progressWriteMs?: number;
  createWorker?: () => Worker;
}

interface ActiveEval extends WorkerJob {
  id: string;
  progress: { done: number; total: number } | null;
  /** The row says 'running' (set by the first progress message). */
  running: boolean;
  progressWrittenAt: number;
}

const INTERRUPTED_AT_START = 'Interrupted: the process running this evaluation ended before it finished. Start it again.';
const INTERRUPTED_AT_CLOSE = 'Interrupted: the workbench closed while this evaluation was running. Start it again.';

const nowIso = () => new Date().toISOString();

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

export class EvalManager {
  private readonly store: Store;
  private readonly paths: WorkbenchPaths;
  private readonly stopTimeoutMs: number;
  private readonly progressWriteMs: number;
  private readonly createWorker: () => Worker;
  private readonly listeners = new Set<RunEventListener>();
  private readonly active = new Map<string, ActiveEval>();
  readonly evalsDir: string;
  private closed = false;

  constructor(options: EvalManagerOptions) {
    this.store = options.store;
    this.paths = options.paths;
    this.stopTimeoutMs = options.stopTimeoutMs ?? 30_000;
    this.progressWriteMs = options.progressWriteMs ?? 1000;
    this.createWorker = options.createWorker ?? startEngineWorker;
    this.evalsDir = path.join(this.paths.dataDir, 'evals');
    ensureDataDirs(this.paths);
    mkdirSync(this.evalsDir, { recursive: true });
    // Same rule as runs: this pid's leftovers (a manager that never closed) and dead pids' are orphans.
    this.store.evaluations.markInterrupted((pid) => pid === null || pid === process.pid || !isProcessAlive(pid), INTERRUPTED_AT_START, nowIso());
  }

  subscribe(listener: RunEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
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
      throw new WorkbenchError('conflict', `Evaluation ${id} is ${evaluation.status}; only a completed evaluation has a result.`, { id, status: evaluation.status });
    }
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(evaluation.resultPath, 'utf8'));
    } catch (error) {
      throw new WorkbenchError('not_found', `The result file of evaluation ${id} cannot be read (${(error as Error).message}); run the evaluation again.`, { path: evaluation.resultPath });
    }
    return validate(EvalResultSchema, raw, `result file ${evaluation.resultPath}`);
  }

  /** Resolves with the evaluation once its worker is gone. */
  async waitFor(id: string): Promise<Evaluation> {
    await this.active.get(id)?.done;
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
        throw new WorkbenchError('not_found', `The ${key} dataset ${resolved} does not exist. Download it (EVALUATION.md lists the sources) and pass its path.`, {
          field: `datasets.${key}`, path: resolved,
        });
      }
      datasets[key] = resolved;
    }
    const job: EvalJob = validate(
      EvalJobSchema,
      {
        type: 'eval', modelDir, adapterDir: adapter?.path ?? null, suite: request.suite, datasets,
        limit: request.limit ?? null, seed: request.seed, backend: request.backend, robustness: request.robustness,
        encoderDir: request.encoderDir ? path.resolve(request.encoderDir) : undefined,
      },
      'evaluation',
    );
    const evaluation = this.store.evaluations.create({
      id: newId('ev-'), runId: adapter?.runId ?? null, adapterId: adapter?.id ?? null, suite: job.suite,
      model: model === DEFAULT_MODEL ? DEFAULT_MODEL : modelDir, backendChoice: job.backend, seed: job.seed, limit: job.limit,
      datasets, createdAt: nowIso(), ownerPid: process.pid,
    });
    this.launch(evaluation, job);
    this.emit(evaluation);
    return evaluation;
  }

  async stop(id: string): Promise<Evaluation> {
    const active = this.active.get(id);
    if (!active) {
      const evaluation = this.get(id);
      throw new WorkbenchError('conflict', `Evaluation ${id} is not running (it is ${evaluation.status}); there is nothing to stop.`, { status: evaluation.status });
    }
    await stopWorkerJob(active, this.stopTimeoutMs);
    return this.get(id);
  }

  /** Ends every worker; their evaluations are marked failed (an evaluation cannot be resumed). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const terminations: Promise<unknown>[] = [];
    for (const active of this.active.values()) {
      active.closing = true;
      this.emit(this.store.evaluations.update(active.id, { status: 'failed', error: INTERRUPTED_AT_CLOSE, finishedAt: nowIso(), ownerPid: null }));
      terminations.push(active.worker.terminate(), active.done);
    }
    await Promise.allSettled(terminations);
  }

  private assertOpen(): void {
    if (this.closed) throw new WorkbenchError('conflict', 'The evaluation manager is shutting down; no new evaluation can start.');
  }

  private withLiveProgress(evaluation: Evaluation): Evaluation {
    const progress = this.active.get(evaluation.id)?.progress;
    return progress ? { ...evaluation, progress } : evaluation;
  }

  private launch(evaluation: Evaluation, job: EvalJob): void {
    let worker: Worker;
    try {
      worker = this.createWorker();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.store.evaluations.update(evaluation.id, { status: 'failed', error: message, finishedAt: nowIso(), ownerPid: null });
      throw new WorkbenchError('worker_failed', message);
    }
    let resolveDone!: () => void;
    const done = new Promise<void>((resolve) => (resolveDone = resolve));
    const active: ActiveEval = {
      id: evaluation.id, worker, settled: false, stopRequested: false, closing: false, crash: null, progress: null, running: false, progressWrittenAt: 0, done, resolveDone,
    };
    this.active.set(evaluation.id, active);
    worker.on('message', (raw: unknown) => this.onWorkerMessage(active, raw));
    worker.on('error', (error) => {
      active.crash = error.message;
    });
    worker.on('exit', (code) => this.onWorkerExit(active, code));
    this.post(worker, job);
  }

  private post(worker: Worker, message: MainToWorker): void {
    worker.postMessage(message);
  }

  private onWorkerMessage(active: ActiveEval, raw: unknown): void {
    if (active.closing || active.settled) return;
    const parsed = WorkerToMainSchema.safeParse(raw);
    if (!parsed.success) {
      this.settle(active, 'failed', { error: `The evaluation worker sent an invalid message (${parsed.error.message}). This is a bug in the engine.` });
      return;
    }
    try {
      this.handle(active, parsed.data);
    } catch (error) {
      this.settle(active, 'failed', { error: `Could not record the evaluation: ${error instanceof Error ? error.message : String(error)}` });
    }
  }

  private handle(active: ActiveEval, message: WorkerToMain): void {
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
          backend: message.result.backend, slices: message.result.slices, summary: summarize(message.result), resultPath, error: null,
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
    if (active.settled) return;
    active.settled = true;
    const evaluation = this.store.evaluations.update(active.id, {
      ...patch, status, progress: active.progress, finishedAt: nowIso(), ownerPid: null,
    });
    this.emit(evaluation);
    void active.worker.terminate();
  }

  private onWorkerExit(active: ActiveEval, code: number): void {
    if (!active.settled && !active.closing) {
      try {
        if (active.stopRequested) this.settle(active, 'stopped', { error: null });
        else {
          this.settle(active, 'failed', {
            error: new WorkbenchError(
              'worker_failed',
              `The evaluation worker exited unexpectedly (exit code ${code})${active.crash ? `: ${active.crash}` : ''}. Start the evaluation again.`,
            ).message,
          });
        }
      } catch {
        // The store is already closed; the next start marks the evaluation failed.
      }
    }
    this.active.delete(active.id);
    active.resolveDone();
  }

  private emit(evaluation: Evaluation, log?: { level: 'info' | 'warn' | 'error'; message: string }): void {
    const event: RunEvent = { kind: 'eval', evaluation, ...(log ? { log } : {}) };
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // One broken subscriber must not starve the others.
      }
    }
  }
}
