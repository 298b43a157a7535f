// The lifecycle every long worker job shares (a training run, an evaluation): start a worker, check
// each message against the protocol, record the job's end exactly once, tell a crash from a stop,
// and end every worker when the manager closes. RunManager and EvalManager keep only what differs:
// the rows they write and the messages they expect.
import { randomBytes } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import type { RunEvent, RunEventListener } from '../src-shared/api.ts';
import { WorkbenchError } from '../src-shared/errors.ts';
import { WorkerToMainSchema, type MainToWorker, type WorkerToMain } from '../src-shared/worker-protocol.ts';
import { ensureDataDirs, type WorkbenchPaths } from './paths.ts';
import type { Store } from './store/index.ts';
import { startEngineWorker, stopWorkerJob, type WorkerJob } from './worker-thread.ts';

export const nowIso = () => new Date().toISOString();

/** Sortable, readable and safe as a folder name: 20250101-120000-a1b2c3. */
export function newId(prefix = ''): string {
  const stamp = nowIso().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${prefix}${stamp}-${randomBytes(3).toString('hex')}`;
}

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A job row whose owner is gone: none recorded, this process (a manager in it that never closed), or a
 * dead process. Rows of another live process stay as they are.
 */
export const isOrphanedOwner = (pid: number | null): boolean => pid === null || pid === process.pid || !isProcessAlive(pid);

/** Listeners of a manager's events; one that throws (a closed socket) must not starve the others. */
export class Listeners<Event> {
  private readonly listeners = new Set<(event: Event) => void>();

  subscribe(listener: (event: Event) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: Event): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch {
        // See the class comment.
      }
    }
  }
}

export interface TrackedJob extends WorkerJob {
  id: string;
}

/** What differs between kinds of job. */
export interface JobKind<Job extends TrackedJob> {
  /** "training", "evaluation": named in the messages a user reads. */
  noun: string;
  /** What the user can do after the worker crashed, appended to the message. */
  afterCrash: string;
  /** Handles one valid message; a throw (the database) fails the job. */
  handle(job: Job, message: WorkerToMain): void;
  /** Records that the job ended without its final message: failed (crash, bad message) or stopped (terminated after a stop request). */
  end(job: Job, outcome: { status: 'failed' | 'stopped'; error: string | null }): void;
  /** The error for a stop of a job that is not running (it names the job's status). */
  notRunning(id: string): WorkbenchError;
}

export class WorkerJobs<Job extends TrackedJob> {
  readonly active = new Map<string, Job>();

  constructor(
    private readonly createWorker: () => Worker,
    private readonly kind: JobKind<Job>,
  ) {}

  /**
   * Starts a worker (`createWorker`, else the manager's) for the job `track` describes and posts `message` to it. When no worker can start,
   * `failedToStart` records it and a worker_failed error is thrown.
   */
  launch(track: (job: WorkerJob) => Job, message: MainToWorker, failedToStart: (message: string) => void, createWorker: () => Worker = this.createWorker): Job {
    let worker: Worker;
    try {
      worker = createWorker();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      failedToStart(reason);
      throw new WorkbenchError('worker_failed', reason);
    }
    let resolveDone!: () => void;
    const done = new Promise<void>((resolve) => (resolveDone = resolve));
    const job = track({ worker, settled: false, stopRequested: false, closing: false, crash: null, done, resolveDone });
    this.active.set(job.id, job);
    worker.on('message', (raw: unknown) => this.onMessage(job, raw));
    worker.on('error', (error) => {
      job.crash = error.message;
    });
    worker.on('exit', (code) => this.onExit(job, code));
    worker.postMessage(message);
    return job;
  }

  /** Records the job's end once (`record` writes its row) and ends its worker. */
  settle(job: Job, record: () => void): void {
    if (job.settled) return;
    job.settled = true;
    record();
    void job.worker.terminate();
  }

  /** Asks the job to stop and waits for its worker; a conflict when no such job is running. */
  async stop(id: string, timeoutMs: number): Promise<void> {
    const job = this.active.get(id);
    if (!job) throw this.kind.notRunning(id);
    // The worker answers `stopped` (a run after writing a checkpoint); a worker that hangs is ended anyway.
    await stopWorkerJob(job, timeoutMs);
  }

  /** Ends every worker; `markClosed` writes each job's row first. */
  async close(markClosed: (job: Job) => void): Promise<void> {
    const terminations: Promise<unknown>[] = [];
    for (const job of this.active.values()) {
      job.closing = true;
      // A settled job has its end recorded (completed, say) and only waits for its worker to exit.
      if (!job.settled) markClosed(job);
      terminations.push(job.worker.terminate(), job.done);
    }
    await Promise.allSettled(terminations);
  }

  private onMessage(job: Job, raw: unknown): void {
    if (job.closing || job.settled) return;
    const parsed = WorkerToMainSchema.safeParse(raw);
    if (!parsed.success) {
      this.settle(job, () =>
        this.kind.end(job, {
          status: 'failed',
          error: `The ${this.kind.noun} worker sent an invalid message (${parsed.error.message}). This is a bug in the engine.`,
        }),
      );
      return;
    }
    try {
      this.kind.handle(job, parsed.data);
    } catch (error) {
      // A database error here must not leave a worker computing into the void.
      this.settle(job, () =>
        this.kind.end(job, { status: 'failed', error: `Could not record the ${this.kind.noun}: ${error instanceof Error ? error.message : String(error)}` }),
      );
    }
  }

  private onExit(job: Job, code: number): void {
    if (!job.settled && !job.closing) {
      try {
        if (job.stopRequested) {
          // Terminated after not answering stop in time.
          this.settle(job, () => this.kind.end(job, { status: 'stopped', error: null }));
        } else {
          const message = new WorkbenchError(
            'worker_failed',
            `The ${this.kind.noun} worker exited unexpectedly (exit code ${code})${job.crash ? `: ${job.crash}` : ''}. ${this.kind.afterCrash}`,
          ).message;
          this.settle(job, () => this.kind.end(job, { status: 'failed', error: message }));
        }
      } catch {
        // The store is already closed (process shutting down); the next start marks the job interrupted.
      }
    }
    this.active.delete(job.id);
    job.resolveDone();
  }
}

export interface JobManagerOptions {
  store: Store;
  paths: WorkbenchPaths;
  /** How long stop() waits for the worker's `stopped` before terminating it. */
  stopTimeoutMs?: number;
  createWorker?: () => Worker;
}

/**
 * What RunManager and EvalManager share around their WorkerJobs: the store, the paths, the event
 * listeners, stop with its timeout, and the shutdown guard (close runs once; nothing starts after it).
 * A manager gives its rows (`get`), what it does with each message and with a job that ended
 * without its final message, and what closing ends besides its workers.
 */
export abstract class JobManager<Job extends TrackedJob, Row> {
  protected readonly store: Store;
  protected readonly paths: WorkbenchPaths;
  protected readonly createWorker: () => Worker;
  protected readonly listeners = new Listeners<RunEvent>();
  protected readonly jobs: WorkerJobs<Job>;
  private readonly stopTimeoutMs: number;
  private readonly shuttingDown: string;
  private closed = false;

  protected constructor(options: JobManagerOptions, kind: Pick<JobKind<Job>, 'noun' | 'afterCrash'> & { defaultStopTimeoutMs: number; shuttingDown: string }) {
    this.store = options.store;
    this.paths = options.paths;
    this.createWorker = options.createWorker ?? startEngineWorker;
    this.stopTimeoutMs = options.stopTimeoutMs ?? kind.defaultStopTimeoutMs;
    this.shuttingDown = kind.shuttingDown;
    this.jobs = new WorkerJobs<Job>(this.createWorker, {
      noun: kind.noun,
      afterCrash: kind.afterCrash,
      handle: (job, message) => this.handle(job, message),
      end: (job, outcome) => this.end(job, outcome),
      notRunning: (id) => this.notRunning(id),
    });
    ensureDataDirs(this.paths);
  }

  abstract get(id: string): Row;
  /** See JobKind. */
  protected abstract handle(job: Job, message: WorkerToMain): void;
  /** See JobKind. */
  protected abstract end(job: Job, outcome: { status: 'failed' | 'stopped'; error: string | null }): void;
  /** See JobKind. */
  protected abstract notRunning(id: string): WorkbenchError;
  /** Ends the workers (marking their rows) and whatever else the manager holds; called once. */
  protected abstract shutDown(): Promise<void>;

  subscribe(listener: RunEventListener): () => void {
    return this.listeners.subscribe(listener);
  }

  async stop(id: string): Promise<Row> {
    await this.jobs.stop(id, this.stopTimeoutMs);
    return this.get(id);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.shutDown();
  }

  protected assertOpen(): void {
    if (this.closed) throw new WorkbenchError('conflict', this.shuttingDown);
  }
}
