// One capped pool of engine workers for the short jobs the view asks for while the user clicks around
// (dataset previews and registrations, model inspections, Playground generation). Each engine worker
// costs ~130 MB; starting one per request let 30 quick previews take the server to 4 GB. The pool keeps
// at most `size` workers, queues the rest, reuses an idle worker for the next job (the engine goes back
// to idle after these jobs, answered or failed: src-worker/main.ts), and replaces a worker after
// `jobsPerWorker` jobs, so whatever a job leaves behind in a backend does not pile up.
//
// A job that runs past its timeout, or whose caller went away (the signal of the API call: a closed
// WebSocket), is ended by terminating its worker: the only way to stop a read that never returns.
import type { Worker } from 'node:worker_threads';
import { WorkbenchError } from '../src-shared/errors.ts';
import { MainToWorkerSchema, WorkerToMainSchema, type MainToWorker, type WorkerToMain } from '../src-shared/worker-protocol.ts';
import { callSignal } from './call-context.ts';
import { startEngineWorker } from './worker-thread.ts';

/** The jobs the engine answers without exiting, ready for the next one. */
export const POOLED_JOB_TYPES = ['inspect-dataset', 'inspect-model', 'generate', 'check-run', 'write-heldout'] as const;
export type PooledJob = Extract<MainToWorker, { type: (typeof POOLED_JOB_TYPES)[number] }>;

export interface WorkerPoolOptions {
  createWorker?: () => Worker;
  /** Workers alive at once; further jobs wait in line. */
  size?: number;
  /** A worker is replaced after this many jobs. */
  jobsPerWorker?: number;
  /** An idle worker is ended after this long, so an idle workbench gives its memory back. */
  idleMs?: number;
}

export interface PoolRunOptions {
  onLog?: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** Ends the job when aborted; defaults to the signal of the API call being answered (call-context.ts). */
  signal?: AbortSignal;
  /** The job fails with a message naming this limit after it. */
  timeoutMs: number;
}

interface PooledWorker {
  worker: Worker;
  jobs: number;
  busy: boolean;
  /** Being terminated: never handed a job, though it counts against the cap until it has exited. */
  retiring: boolean;
  idleTimer: NodeJS.Timeout | null;
  /** Set while a job runs: called with each message, and once with null when the worker exits. */
  onMessage: ((message: WorkerToMain | null, exitCode?: number) => void) | null;
  crash: string | null;
}

interface Waiter {
  start: (slot: PooledWorker) => void;
  fail: (error: WorkbenchError) => void;
}

/** Test doubles of Worker have no ref/unref; a real worker parked idle must not keep the CLI running. */
function keepProcessAlive(worker: Worker, keep: boolean): void {
  const method = keep ? worker.ref : worker.unref;
  if (typeof method === 'function') method.call(worker);
}

const cancelled = (type: string) => new WorkbenchError('conflict', `The ${type} job was cancelled: the window or connection that asked for it went away.`);

export class WorkerPool {
  private readonly createWorker: () => Worker;
  private readonly size: number;
  private readonly jobsPerWorker: number;
  private readonly idleMs: number;
  private readonly workers = new Set<PooledWorker>();
  private readonly queue: Waiter[] = [];
  private closed = false;

  constructor(options: WorkerPoolOptions = {}) {
    this.createWorker = options.createWorker ?? startEngineWorker;
    this.size = options.size ?? 2;
    this.jobsPerWorker = options.jobsPerWorker ?? 25;
    this.idleMs = options.idleMs ?? 60_000;
  }

  /** Workers alive now (busy or idle). */
  get workerCount(): number {
    return this.workers.size;
  }

  /**
   * Runs one job and resolves with its result message of type `expect`; `failed`, an invalid message,
   * a crash, the timeout or the caller's abort reject with a WorkbenchError.
   */
  async run<T extends WorkerToMain['type']>(job: PooledJob, expect: T, options: PoolRunOptions): Promise<Extract<WorkerToMain, { type: T }>> {
    if (this.closed) throw new WorkbenchError('conflict', 'The workbench is shutting down; try again after it restarts.');
    const signal = options.signal ?? callSignal();
    if (signal?.aborted) throw cancelled(job.type);
    const slot = await this.acquire(job.type, signal);
    slot.busy = true;
    slot.jobs++;
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (outcome: { message: Extract<WorkerToMain, { type: T }> } | { error: WorkbenchError }, reusable: boolean) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        slot.onMessage = null;
        slot.busy = false;
        if (reusable && slot.jobs < this.jobsPerWorker && !this.closed) this.release(slot);
        else this.retire(slot);
        if ('message' in outcome) resolve(outcome.message);
        else reject(outcome.error);
      };
      const timer = setTimeout(() => {
        finish(
          {
            error: new WorkbenchError(
              'worker_failed',
              `The ${job.type} job took longer than ${Math.round(options.timeoutMs / 1000)} s and was stopped. Try a smaller file or model.`,
            ),
          },
          false,
        );
      }, options.timeoutMs);
      const onAbort = () => finish({ error: cancelled(job.type) }, false);
      signal?.addEventListener('abort', onAbort, { once: true });
      slot.onMessage = (message, exitCode) => {
        if (message === null) {
          const crash = slot.crash ? `: ${slot.crash}` : '';
          return finish(
            { error: new WorkbenchError('worker_failed', `The ${job.type} worker exited without a result (exit code ${exitCode})${crash}.`) },
            false,
          );
        }
        if (message.type === 'log') options.onLog?.(message.level, message.message);
        else if (message.type === expect) finish({ message: message as Extract<WorkerToMain, { type: T }> }, true);
        // A job that failed (a bad file, a missing model) was caught by the engine, which is idle again.
        else if (message.type === 'failed') finish({ error: WorkbenchError.from(message.error) }, true);
      };
      slot.worker.postMessage(MainToWorkerSchema.parse(job));
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const waiter of this.queue.splice(0)) waiter.fail(new WorkbenchError('conflict', 'The workbench is shutting down; try again after it restarts.'));
    await Promise.allSettled([...this.workers].map((slot) => this.retire(slot)));
  }

  private acquire(type: string, signal: AbortSignal | undefined): Promise<PooledWorker> {
    for (const slot of this.workers) {
      if (!slot.busy && !slot.retiring) {
        if (slot.idleTimer) clearTimeout(slot.idleTimer);
        slot.idleTimer = null;
        slot.busy = true;
        keepProcessAlive(slot.worker, true);
        return Promise.resolve(slot);
      }
    }
    if (this.workers.size < this.size) return Promise.resolve(this.spawn());
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        start: (slot) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(slot);
        },
        fail: reject,
      };
      const onAbort = () => {
        this.queue.splice(this.queue.indexOf(waiter), 1);
        reject(cancelled(type));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  private spawn(): PooledWorker {
    let worker: Worker;
    try {
      worker = this.createWorker();
    } catch (error) {
      throw new WorkbenchError('worker_failed', `Could not start an engine worker: ${error instanceof Error ? error.message : String(error)}`);
    }
    const slot: PooledWorker = { worker, jobs: 0, busy: true, retiring: false, idleTimer: null, onMessage: null, crash: null };
    this.workers.add(slot);
    worker.on('message', (raw: unknown) => {
      const parsed = WorkerToMainSchema.safeParse(raw);
      if (!parsed.success) {
        slot.onMessage?.({ type: 'failed', error: { code: 'worker_failed', message: `The engine sent an invalid message: ${parsed.error.message}` } });
      } else {
        slot.onMessage?.(parsed.data);
      }
    });
    worker.on('error', (error) => {
      slot.crash = error.message;
    });
    worker.on('exit', (code) => {
      this.workers.delete(slot);
      if (slot.idleTimer) clearTimeout(slot.idleTimer);
      slot.onMessage?.(null, code);
      this.startWaiting();
    });
    return slot;
  }

  /** Hands an idle worker to the next job in line, or parks it (unref'd, so it keeps no process alive). */
  private release(slot: PooledWorker): void {
    const waiter = this.queue.shift();
    if (waiter) {
      // Marked busy now: the waiter's job starts a microtask later, and no other job may take it meanwhile.
      slot.busy = true;
      return waiter.start(slot);
    }
    keepProcessAlive(slot.worker, false);
    slot.idleTimer = setTimeout(() => void this.retire(slot), this.idleMs);
    slot.idleTimer.unref();
  }

  private async retire(slot: PooledWorker): Promise<void> {
    slot.retiring = true;
    if (slot.idleTimer) clearTimeout(slot.idleTimer);
    slot.idleTimer = null;
    // The exit handler removes it and lets a waiting job start a fresh worker.
    await slot.worker.terminate();
  }

  /** After a worker exits, a job waiting in line gets a fresh one. */
  private startWaiting(): void {
    if (this.closed || this.queue.length === 0 || this.workers.size >= this.size) return;
    const waiter = this.queue.shift()!;
    try {
      const slot = this.spawn();
      slot.busy = true;
      waiter.start(slot);
    } catch (error) {
      waiter.fail(WorkbenchError.from(error));
    }
  }
}
