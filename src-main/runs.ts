// RunManager: starts, stops and resumes training workers, persists what they report, and fans it out.
// The worker owns the tensors; this object owns the database rows of every run it started.
import { appendFileSync, existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { ExportRequestSchema, type ExportRequestInput, type RunEvent, type ExportRequest } from '../src-shared/api.ts';
import { DEFAULT_MODEL, RunConfigSchema, SAMPLE_DATASET, type RunConfig, type RunConfigInput } from '../src-shared/config.ts';
import { validate, WorkbenchError } from '../src-shared/errors.ts';
import { resumableStatuses, type Adapter, type ExportReport, type MetricPoint, type Run } from '../src-shared/runs.ts';
import type { ExportJob, TrainJob, WorkerToMain } from '../src-shared/worker-protocol.ts';
import { prepareExportDir } from './export-target.ts';
import { isOrphanedOwner, JobManager, type JobManagerOptions, newId, nowIso, type TrackedJob } from './jobs.ts';
import { OneShotJobs } from './worker-thread.ts';
import { engineWorkerFor, isKilledEngineCrash, pytorchEngineOptions } from './engines/pytorch-engine.ts';

/** stopTimeoutMs: how long stop() waits for the worker's checkpoint before terminating it. */
export interface RunManagerOptions extends JobManagerOptions {
  /** Metric points are buffered and written in one transaction per interval. */
  metricsFlushMs?: number;
}

interface ActiveRun extends TrackedJob {
  runDir: string;
}

const INTERRUPTED_AT_START = 'Interrupted: the process training this run ended before the run finished. Resume it to continue from its last checkpoint.';
const INTERRUPTED_AT_CLOSE = 'Interrupted: the workbench closed while this run was training. Resume it to continue from its last checkpoint.';
const INTERRUPTED_ENGINE_KILLED = 'Interrupted: the engine process was killed while this run was training. Resume it to continue from its last checkpoint.';

function slug(text: string): string {
  return text
    .trim()
    .replace(/[^\w.-]+/g, '-')
    .replace(/^[-.]+|-+$/g, '')
    .slice(0, 80);
}

export class RunManager extends JobManager<ActiveRun, Run> {
  private readonly oneShot: OneShotJobs;
  private readonly pendingMetrics = new Map<string, MetricPoint[]>();
  private readonly flushTimer: NodeJS.Timeout;

  constructor(options: RunManagerOptions) {
    super(options, {
      noun: 'training',
      afterCrash: 'Resume the run from its last checkpoint, or start it again.',
      defaultStopTimeoutMs: 120_000,
      shuttingDown: 'The run manager is shutting down; no new work can start.',
    });
    this.oneShot = new OneShotJobs(this.createWorker);
    this.store.runs.markInterrupted(isOrphanedOwner, INTERRUPTED_AT_START);
    this.flushTimer = setInterval(() => this.flushMetrics(), options.metricsFlushMs ?? 500);
    this.flushTimer.unref();
  }

  list(): Run[] {
    return this.store.runs.list();
  }

  get(id: string): Run {
    return this.store.runs.require(id);
  }

  metrics(id: string): MetricPoint[] {
    this.store.runs.require(id);
    // Points still in the buffer belong to the answer too: a chart opened mid-run must not miss them.
    return [...this.store.metrics.list(id), ...(this.pendingMetrics.get(id) ?? [])];
  }

  adapters(): Adapter[] {
    return this.store.adapters.list();
  }

  isActive(id: string): boolean {
    return this.jobs.active.has(id);
  }

  /** Resolves with the run once its worker is gone (completed, stopped, failed or interrupted). */
  async waitForRun(id: string): Promise<Run> {
    await this.jobs.active.get(id)?.done;
    return this.get(id);
  }

  async start(input: RunConfigInput): Promise<Run> {
    this.assertOpen();
    const parsed = RunConfigSchema.parse(input);
    const inputs = this.resolveInputs(parsed);
    // Stored with absolute paths, so a resume from another working directory finds the same files.
    const config: RunConfig = {
      ...parsed,
      model: parsed.model === DEFAULT_MODEL ? DEFAULT_MODEL : inputs.modelDir,
      // A registered dataset is kept by id: the run trains on its normalized file, and the id says which dataset it was.
      dataset: parsed.dataset === SAMPLE_DATASET || inputs.registered ? parsed.dataset : inputs.datasetPath,
    };
    const id = newId();
    const runDir = this.paths.runDir(id);
    mkdirSync(runDir, { recursive: true });
    const run = this.store.runs.create({ id, name: config.name.trim(), config, createdAt: nowIso(), ownerPid: process.pid });
    this.launch(run, null);
    this.emit({ kind: 'run', run });
    return run;
  }

  async resume(id: string): Promise<Run> {
    this.assertOpen();
    if (this.jobs.active.has(id)) throw new WorkbenchError('conflict', `Run ${id} is already training.`);
    const run = this.get(id);
    if (!resumableStatuses.includes(run.status)) {
      throw new WorkbenchError(
        'conflict',
        `Run ${id} is ${run.status}; only ${resumableStatuses.join(', ')} runs can be resumed.` +
          (run.status === 'completed' ? ' Start a new run to train further.' : ''),
        { status: run.status },
      );
    }
    const checkpoint = this.store.checkpoints.latest(id);
    if (!checkpoint) {
      throw new WorkbenchError(
        'conflict',
        `Run ${id} has no checkpoint to resume from: it ended before its first checkpoint (every ${run.config.training.checkpointEvery} steps). Start it again as a new run.`,
      );
    }
    if (!existsSync(checkpoint.dir)) {
      throw new WorkbenchError('not_found', `The checkpoint of run ${id} at step ${checkpoint.step} is missing from ${checkpoint.dir}.`, {
        dir: checkpoint.dir,
      });
    }
    this.resolveInputs(run.config);
    this.store.metrics.deleteAfter(id, checkpoint.step);
    const queued = this.store.runs.update(id, { status: 'queued', error: null, finishedAt: null, ownerPid: process.pid });
    this.launch(queued, checkpoint.dir);
    this.emit({ kind: 'run', run: queued });
    return queued;
  }

  /** Writes a PEFT adapter folder and verifies it by reading it back (in a worker, like training). */
  async exportAdapter(input: ExportRequestInput): Promise<ExportReport> {
    this.assertOpen();
    const request = validate(ExportRequestSchema, input, 'export request');
    const source = this.exportSource(request);
    const { modelDir } = this.resolveInputs(source.run.config, { datasetToo: false });
    const outDir = request.outDir
      ? prepareExportDir(request.outDir, request.overwrite)
      : this.freeExportDir(`${slug(source.run.name) || source.run.id}-step${source.step}`);
    const job: ExportJob = { type: 'export', sourceDir: source.dir, modelDir, outDir, backend: source.run.config.backend, format: request.format };
    const { report } = await this.oneShot.run(job, 'exported', (level, message) => this.emit({ kind: 'log', runId: source.run.id, level, message }));
    return report;
  }

  /** Ends every worker; their runs become 'interrupted' and can be resumed by the next process. */
  protected async shutDown(): Promise<void> {
    clearInterval(this.flushTimer);
    await Promise.allSettled([
      this.jobs.close((active) =>
        this.emit({ kind: 'run', run: this.store.runs.update(active.id, { status: 'interrupted', error: INTERRUPTED_AT_CLOSE, ownerPid: null }) }),
      ),
      this.oneShot.close(),
    ]);
    this.flushMetrics();
  }

  private resolveInputs(config: RunConfig, options: { datasetToo?: boolean } = {}): { modelDir: string; datasetPath: string; registered: boolean } {
    const modelDir = config.model === DEFAULT_MODEL ? this.paths.defaultModelDir : path.resolve(config.model);
    if (!existsSync(modelDir) || !statSync(modelDir).isDirectory()) {
      throw new WorkbenchError(
        'not_found',
        config.model === DEFAULT_MODEL
          ? `The embedded default model is missing (${modelDir}). Run \`npm run make:default-model\`, or choose a model folder.`
          : `Model folder ${modelDir} does not exist. Choose a Hugging Face model folder (config.json, *.safetensors, tokenizer.json).`,
        { field: 'model', path: modelDir },
      );
    }
    const registered = config.dataset === SAMPLE_DATASET ? undefined : this.store.datasets.get(config.dataset);
    const datasetPath =
      config.dataset === SAMPLE_DATASET ? this.paths.sampleDatasetPath : registered ? registered.normalizedPath : path.resolve(config.dataset);
    if (options.datasetToo !== false && (!existsSync(datasetPath) || !statSync(datasetPath).isFile())) {
      throw new WorkbenchError(
        'not_found',
        config.dataset === SAMPLE_DATASET
          ? `The sample dataset is missing (${datasetPath}). Run \`npm run make:sample-data\`, or choose a dataset file.`
          : registered
            ? `The normalized file of dataset "${registered.name}" is missing (${datasetPath}). Register ${registered.sourcePath} again and pick the new dataset.`
            : `Dataset file ${datasetPath} does not exist. Choose a JSONL or CSV file.`,
        { field: 'dataset', path: datasetPath },
      );
    }
    return { modelDir, datasetPath, registered: registered !== undefined };
  }

  private exportSource(request: ExportRequest): { run: Run; dir: string; step: number } {
    if (request.adapterId) {
      const adapter = this.store.adapters.require(request.adapterId);
      return { run: this.get(adapter.runId), dir: adapter.path, step: adapter.step };
    }
    const run = this.get(request.runId!);
    const adapter = run.status === 'completed' && run.adapterId ? this.store.adapters.get(run.adapterId) : undefined;
    const checkpoint = adapter ? undefined : this.store.checkpoints.latest(run.id);
    const source = adapter ? { dir: adapter.path, step: adapter.step } : checkpoint && { dir: checkpoint.dir, step: checkpoint.step };
    if (!source) {
      throw new WorkbenchError(
        'conflict',
        `Run ${run.id} has nothing to export yet: it has no adapter and no checkpoint. Export after its first checkpoint (every ${run.config.training.checkpointEvery} steps) or when it completes.`,
      );
    }
    if (!existsSync(source.dir)) {
      throw new WorkbenchError('not_found', `The adapter files of run ${run.id} are missing from ${source.dir}.`, { dir: source.dir });
    }
    return { run, ...source };
  }

  private freeExportDir(base: string): string {
    let candidate = path.join(this.paths.exportsDir, base);
    for (let n = 2; existsSync(candidate); n++) candidate = path.join(this.paths.exportsDir, `${base}-${n}`);
    return candidate;
  }

  private launch(run: Run, resumeFrom: string | null): void {
    const { modelDir, datasetPath } = this.resolveInputs(run.config);
    const runDir = this.paths.runDir(run.id);
    mkdirSync(runDir, { recursive: true });
    const job: TrainJob = { type: 'train', runId: run.id, config: run.config, modelDir, datasetPath, runDir, resumeFrom };
    // A pytorch run's engine is a Python child behind the same Worker surface (src-main/engines/pytorch-engine.ts).
    this.jobs.launch(
      (base) => ({ ...base, id: run.id, runDir }),
      job,
      (error) => {
        this.store.runs.update(run.id, { status: 'failed', error, finishedAt: nowIso(), ownerPid: null });
      },
      () => engineWorkerFor(run.config, this.createWorker, pytorchEngineOptions(this.paths)) as Worker,
    );
  }

  protected handle(active: ActiveRun, message: WorkerToMain): void {
    const { id } = active;
    switch (message.type) {
      case 'started': {
        const before = this.get(id);
        const run = this.store.runs.update(id, { status: 'running', backend: message.backend, startedAt: before.startedAt ?? nowIso() });
        this.log(
          active,
          'info',
          `Training on ${message.backend.name} (${message.backend.adapter}): ${message.trainableParams.toLocaleString('en-US')} trainable of ${message.totalParams.toLocaleString('en-US')} parameters.`,
        );
        this.emit({ kind: 'run', run });
        return;
      }
      case 'progress':
        this.emit({ kind: 'run', run: this.store.runs.update(id, { progress: message.progress }) });
        return;
      case 'metrics': {
        const buffer = this.pendingMetrics.get(id);
        if (buffer) buffer.push(...message.points);
        else this.pendingMetrics.set(id, [...message.points]);
        return;
      }
      case 'checkpoint':
        // Points up to the checkpoint are written first, so a resume never has a gap before it.
        this.flushMetrics();
        this.store.checkpoints.add({ runId: id, step: message.step, dir: message.dir, createdAt: nowIso() });
        // The engine keeps only its newest checkpoints; rows of the folders it removed would mislead.
        for (const old of this.store.checkpoints.list(id)) {
          if (old.step !== message.step && !existsSync(old.dir)) this.store.checkpoints.delete(id, old.step);
        }
        this.emit({ kind: 'run', run: this.get(id) });
        return;
      case 'log':
        this.log(active, message.level, message.message);
        return;
      case 'trained': {
        this.flushMetrics();
        const run = this.get(id);
        this.store.adapters.create({
          id: newId('ad-'),
          runId: id,
          name: run.name || run.id,
          method: run.config.method,
          baseModel: run.config.model,
          path: message.adapterDir,
          step: message.step,
          trainableParams: message.trainableParams,
          createdAt: nowIso(),
          // SG-LoRA's bank needs a task in words; the run's name is the best guess until the user edits it.
          description: run.name || null,
        });
        this.settle(active, { status: 'completed', error: null });
        return;
      }
      case 'stopped':
        this.settle(active, { status: 'stopped', error: null });
        return;
      case 'failed':
        this.log(active, 'error', message.error.message);
        this.settle(active, { status: 'failed', error: message.error.message });
        return;
      case 'exported':
        this.log(active, 'warn', 'The training worker sent an export report; ignored.');
        return;
    }
  }

  protected end(active: ActiveRun, outcome: { status: 'failed' | 'stopped'; error: string | null }): void {
    // A pytorch engine killed from outside (kill -9) leaves the run interrupted, as a workbench that died does.
    if (outcome.status === 'failed' && isKilledEngineCrash(active.crash))
      return this.record(active, { status: 'interrupted', error: INTERRUPTED_ENGINE_KILLED });
    if (outcome.status === 'failed') this.log(active, 'error', outcome.error!);
    this.record(active, outcome);
  }

  protected notRunning(id: string): WorkbenchError {
    const { status } = this.get(id);
    return new WorkbenchError('conflict', `Run ${id} is not training (it is ${status}); there is nothing to stop.`, { status });
  }

  /** Records the run's final state and ends its worker. */
  private settle(active: ActiveRun, outcome: { status: 'completed' | 'stopped' | 'failed'; error: string | null }): void {
    this.jobs.settle(active, () => this.record(active, outcome));
  }

  private record(active: ActiveRun, outcome: { status: 'completed' | 'stopped' | 'failed' | 'interrupted'; error: string | null }): void {
    this.flushMetrics();
    this.emit({ kind: 'run', run: this.store.runs.update(active.id, { ...outcome, finishedAt: nowIso(), ownerPid: null }) });
  }

  private log(active: ActiveRun, level: 'info' | 'warn' | 'error', message: string): void {
    try {
      appendFileSync(path.join(active.runDir, 'train.log'), `${nowIso()} ${level.toUpperCase()} ${message}\n`);
    } catch {
      // The log file is a convenience; the event below still reaches the view.
    }
    this.emit({ kind: 'log', runId: active.id, level, message });
  }

  private flushMetrics(): void {
    if (this.pendingMetrics.size === 0) return;
    const batches = [...this.pendingMetrics.entries()];
    this.pendingMetrics.clear();
    try {
      this.store.metrics.insertBatch(batches);
    } catch (error) {
      for (const [runId] of batches) {
        this.emit({ kind: 'log', runId, level: 'error', message: `Could not save metrics: ${error instanceof Error ? error.message : String(error)}` });
      }
      return;
    }
    for (const [runId, points] of batches) this.emit({ kind: 'metrics', runId, points });
  }

  private emit(event: RunEvent): void {
    this.listeners.emit(event);
  }
}
