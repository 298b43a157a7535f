// Data parallel inside the tfjs engine. The wasm and cpu backends compute on one core (bench/RESULTS.md,
// "Threads": tfjs-backend-wasm's threaded build cannot start in Node), so a run on a machine with
// more cores starts replicas: worker threads of the same engine (train/replica.ts), each holding the
// model and the adapter. Every step, the lead sends each replica its rows of the batch with the
// adapter's current values; all compute their rows' gradients at once; the lead adds them up and
// steps the optimizer (train/accumulate.ts trainStep). Only the adapter's values and gradients cross
// threads (1.8 MB a step for GPT-2's LoRA r 8), never activations or the base weights.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { BackendName } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { GradientReplicas, GradientShare } from './accumulate.ts';
import { type ReplicaInit, type ReplicaToLead, ReplicaToLeadSchema } from './replica-protocol.ts';

/** What the main process tells the engine's worker threads (src-main/worker-thread.ts startEngineWorker). */
export interface EngineWorkerData {
  /** The URL the engine's thread was started from, so that a run can start its replicas the same way. */
  engineEntry?: string;
  role?: 'replica';
}

export function isReplicaWorker(data: unknown): boolean {
  return (data as EngineWorkerData | null)?.role === 'replica';
}

/** Starts a replica from the entry this engine thread was started from; null where it was not started by startEngineWorker. */
export function replicaSpawner(data: unknown): (() => Worker) | null {
  const entry = (data as EngineWorkerData | null)?.engineEntry;
  if (!entry) return null;
  return () => new Worker(new URL(entry), { workerData: { engineEntry: entry, role: 'replica' } satisfies EngineWorkerData });
}

/**
 * Below this many base parameters a step takes milliseconds to a second, and a replica's start
 * (loading tfjs and the model, ~1-3 s) and the per-step messages cost more than a second core saves.
 */
export const AUTO_MIN_PARAMETERS = 20e6;

/** The random streams of replica k start this far from the lead's: disjoint dropout masks, replayed exactly on resume. */
export const REPLICA_RANDOM_STRIDE = 2 ** 26;

export interface WorkerChoice {
  workers: number;
  /** Why, for the run's log. */
  reason: string;
}

/**
 * How many workers (the lead and its replicas) train each step: training.workers when set, else one
 * per core on wasm and cpu for a model large enough that it pays, no more than the batch's rows or
 * than the machine's RAM holds. Refuses a setting the backend or the RAM cannot honour.
 */
export function chooseWorkers(req: {
  requested: number | null;
  backend: BackendName;
  batchSize: number;
  parameterCount: number;
  trainsBaseParameters: boolean;
  /** What one worker holds (its backend's pool as planned, plus the process's share). */
  bytesPerWorker: number;
  ramBytes: number;
  cores: number;
}): WorkerChoice {
  const singleCore = req.backend === 'wasm' || req.backend === 'cpu';
  const byRam = Math.max(1, Math.floor(req.ramBytes / req.bytesPerWorker));
  const gb = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;
  if (req.requested !== null) {
    if (req.requested > 1 && !singleCore) {
      throw new WorkbenchError(
        'invalid_input',
        `training.workers ${req.requested}: the ${req.backend} backend already computes in parallel on its device; workers apply to the wasm and cpu backends, which compute on one core each. Leave training.workers unset.`,
        { field: 'training.workers' },
      );
    }
    const workers = Math.min(req.requested, req.batchSize);
    if (workers > byRam) {
      throw new WorkbenchError(
        'out_of_memory',
        `training.workers ${req.requested}: each worker holds the model and a micro-batch's activations (${gb(req.bytesPerWorker)}), and the machine has ${gb(req.ramBytes)} available: set training.workers to ${byRam} or less, or leave it unset.`,
        { field: 'training.workers', bytesPerWorker: req.bytesPerWorker, ramBytes: req.ramBytes },
      );
    }
    return { workers, reason: workers === req.requested ? 'training.workers' : `training.workers, at most one per row of the batch of ${req.batchSize}` };
  }
  if (!singleCore) return { workers: 1, reason: `the ${req.backend} backend computes in parallel itself` };
  if (req.parameterCount < AUTO_MIN_PARAMETERS)
    return { workers: 1, reason: `a model under ${AUTO_MIN_PARAMETERS / 1e6}M parameters steps too fast for a second worker to pay` };
  if (req.trainsBaseParameters) return { workers: 1, reason: 'the method trains the base weights, which would cross threads every step' };
  const workers = Math.max(1, Math.min(req.cores, req.batchSize, byRam));
  const limit =
    workers === req.cores
      ? `one per core (${req.cores})`
      : workers === req.batchSize
        ? `one per row of the batch of ${req.batchSize}`
        : `as many as the RAM holds (${gb(req.bytesPerWorker)} each)`;
  return { workers, reason: limit };
}

export function availableCores(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/** The lead's handle on its replicas: trainStep's GradientReplicas. */
export class ReplicaGroup implements GradientReplicas {
  private readonly pending = new Map<Worker, { expect: ReplicaToLead['type']; resolve: (m: ReplicaToLead) => void; reject: (e: Error) => void }>();
  private closed = false;

  private constructor(private readonly workers: Worker[]) {
    workers.forEach((worker, k) => {
      const settle = (outcome: ReplicaToLead | Error) => {
        const waiting = this.pending.get(worker);
        if (!waiting) return;
        this.pending.delete(worker);
        if (outcome instanceof Error) waiting.reject(outcome);
        else if (outcome.type === 'failed') waiting.reject(replicaError(k + 1, outcome.error.code, outcome.error.message));
        else if (outcome.type !== waiting.expect)
          waiting.reject(new WorkbenchError('internal', `Replica ${k + 1} answered ${outcome.type} where ${waiting.expect} was due.`));
        else waiting.resolve(outcome);
      };
      worker.on('message', (raw: unknown) => {
        const parsed = ReplicaToLeadSchema.safeParse(raw);
        settle(parsed.success ? parsed.data : new WorkbenchError('internal', `Replica ${k + 1} sent an invalid message: ${parsed.error.message}`));
      });
      worker.on('error', (error) => settle(replicaError(k + 1, 'internal', error.message)));
      worker.on('exit', (code) => {
        if (!this.closed) settle(new WorkbenchError('worker_failed', `Replica ${k + 1} of the training run exited (code ${code}) in the middle of a step.`));
      });
    });
  }

  /** Starts `count` replicas and waits until each holds the model and the adapter. */
  static async start(count: number, init: Omit<ReplicaInit, 'type'>, spawn: () => Worker): Promise<ReplicaGroup> {
    const group = new ReplicaGroup(Array.from({ length: count }, () => spawn()));
    try {
      await Promise.all(group.workers.map((worker) => group.request(worker, { type: 'init', ...init }, 'ready')));
    } catch (error) {
      await group.dispose();
      throw error;
    }
    return group;
  }

  get size(): number {
    return this.workers.length;
  }

  compute(request: Parameters<GradientReplicas['compute']>[0]): Promise<GradientShare[]> {
    const { batch, prompts, values, random, task } = request;
    return Promise.all(
      request.rows.map(async (rows, k) => {
        // Replica k + 1 draws its dropout masks from its own stretch of the lead's streams.
        const offset = Object.fromEntries(Object.entries(random).map(([name, position]) => [name, position + (k + 1) * REPLICA_RANDOM_STRIDE]));
        const answer = await this.request(this.workers[k]!, { type: 'step', batch, rows, prompts: prompts ?? null, values, random: offset, task }, 'gradients');
        if (answer.type !== 'gradients') throw new WorkbenchError('internal', `Replica ${k + 1} answered ${answer.type}.`);
        return { grads: answer.grads, task: answer.task, total: answer.total, terms: answer.terms };
      }),
    );
  }

  private request(worker: Worker, message: object, expect: ReplicaToLead['type']): Promise<ReplicaToLead> {
    return new Promise((resolve, reject) => {
      this.pending.set(worker, { expect, resolve, reject });
      worker.postMessage(message);
    });
  }

  async dispose(): Promise<void> {
    this.closed = true;
    for (const waiting of this.pending.values()) waiting.reject(new WorkbenchError('internal', 'The training run ended while a replica computed.'));
    this.pending.clear();
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }
}

/**
 * A replica's failure as the lead reports it: the backend's own message stays an Error so that the
 * lead's classifyStepError can turn a wasm abort into out_of_memory with the plan's figures.
 */
function replicaError(replica: number, code: string, message: string): Error {
  return code === 'internal'
    ? new Error(`replica ${replica}: ${message}`)
    : new WorkbenchError(code as WorkbenchError['code'], `Replica ${replica}: ${message}`);
}
