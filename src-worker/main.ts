// The training worker's entry (a worker_threads Worker; the main process starts it with tsx's loader).
// Protocol (src-shared/worker-protocol.ts): main posts one job (train, export, eval, …: see `handlers`) and may post
// `stop`; the worker answers with typed messages and exits when the job ends (after the short jobs
// in REUSABLE it waits for the next one instead). Both directions are
// validated here, so a bug on either side shows up as a named error, not as a confused run.
import { parentPort, workerData } from 'node:worker_threads';
import { WorkbenchError } from '../src-shared/errors.ts';
import type { EvalJob } from '../src-shared/eval.ts';
import type { CheckRunJob, ImportModelJob, InspectDatasetJob, WriteDataPlanJob, WriteHeldoutJob } from '../src-shared/worker-protocol.ts';
import { writeDataPlanJob } from './data/data-plan.ts';
import { writeHeldout } from './data/heldout.ts';
import { checkRun } from './preflight.ts';
import {
  MainToWorkerSchema,
  WorkerToMainSchema,
  type ExportJob,
  type GenerateAdapterJob,
  type MainToWorker,
  type TrainJob,
  type WorkerToMain,
} from '../src-shared/worker-protocol.ts';
import { runEvalJob, ScoringStopped } from './eval/job.ts';
import { exportAdapter } from './export/index.ts';
import { inspectDataset } from './data/inspect-dataset.ts';
import { runTraining } from './train/loop.ts';
import { serveReplica } from './train/replica.ts';
import { isReplicaWorker } from './train/data-parallel.ts';
import { importModel, inspectModel } from './inspect-model.ts';
import { runGenerateJob } from './playground.ts';
import type { GenerateJob, InspectModelJob } from '../src-shared/worker-protocol.ts';
import { generateAdapter } from './sg-lora/generate.ts';
import type { ImportAdapterJob } from '../src-shared/worker-protocol.ts';
import { importPeftAdapter } from './adapters/import-peft.ts';

if (!parentPort)
  throw new Error(
    'src-worker/main.ts must run as a worker thread (new Worker(...)); every front door (the app, the server, the CLI) starts it through src-main/worker-thread.ts.',
  );
const port = parentPort;

const TERMINAL: ReadonlySet<WorkerToMain['type']> = new Set([
  'trained',
  'stopped',
  'exported',
  'evaluated',
  'failed',
  'model-inspected',
  'model-imported',
  'generated',
  'dataset-inspected',
  'adapter-generated',
  'run-checked',
  'heldout-written',
  'data-plan-written',
]);
/** Jobs after which the worker waits for the next one instead of exiting (POOLED_JOB_TYPES in src-main/worker-pool.ts). */
const REUSABLE: ReadonlySet<Job['type']> = new Set(['inspect-dataset', 'inspect-model', 'generate', 'check-run', 'write-heldout']);
let state: 'idle' | 'running' | 'ending' = 'idle';
let stopRequested = false;

function post(message: WorkerToMain): void {
  const checked = WorkerToMainSchema.safeParse(message);
  if (checked.success) {
    port.postMessage(checked.data);
    return;
  }
  const problem = `The worker produced an invalid "${(message as { type?: string }).type}" message: ${checked.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`;
  // A broken terminal message would leave the run hanging: turn it into a failure. Others are dropped and reported.
  if (TERMINAL.has(message.type)) port.postMessage({ type: 'failed', error: { code: 'internal', message: problem } });
  else port.postMessage({ type: 'log', level: 'error', message: problem });
}

function fail(error: unknown, code: 'worker_failed' | 'internal' = 'internal'): void {
  const e = WorkbenchError.from(error);
  post({ type: 'failed', error: { code: e.code === 'internal' ? code : e.code, message: e.message, details: e.details } });
}

function finish(exitCode: number): void {
  if (state === 'ending') return;
  state = 'ending';
  // Messages already posted are queued on the main side; closing the port lets the thread end, and the
  // exit call ends it even if a backend keeps a handle (a wasm thread pool) alive.
  port.close();
  setTimeout(() => process.exit(exitCode), 50);
}

async function runEval(job: EvalJob): Promise<number> {
  try {
    let lastPost = 0;
    const result = await runEvalJob(job, {
      // At most ~10 messages a second: a fast backend scores thousands of items.
      onProgress: (done, total) => {
        const now = Date.now();
        if (done < total && now - lastPost < 100) return;
        lastPost = now;
        post({ type: 'eval-progress', done, total });
      },
      log: (message) => post({ type: 'log', level: 'info', message }),
      shouldStop: () => stopRequested,
    });
    post({ type: 'evaluated', result });
    return 0;
  } catch (error) {
    // An evaluation keeps nothing half-done: a stop ends it with `stopped` at step 0.
    if (error instanceof ScoringStopped) {
      post({ type: 'stopped', step: 0 });
      return 0;
    }
    fail(error);
    return 1;
  }
}

type Job = Exclude<MainToWorker, { type: 'stop' }>;
type Handler<J> = (job: J) => Promise<number>;

/** Runs a job whose whole answer is one message: the result, or `failed`. */
function oneShot<J>(work: (job: J, log: (message: string) => void) => Promise<WorkerToMain>): Handler<J> {
  return async (job) => {
    try {
      post(await work(job, (message) => post({ type: 'log', level: 'info', message })));
      return 0;
    } catch (error) {
      fail(error);
      return 1;
    }
  };
}

async function train(job: TrainJob): Promise<number> {
  let failed = false;
  try {
    await runTraining(job, {
      emit: (message) => {
        if (message.type === 'failed') failed = true;
        post(message);
      },
      shouldStop: () => stopRequested,
    });
  } catch (error) {
    fail(error);
    return 1;
  }
  return failed ? 1 : 0;
}

/** One entry per job type: adding a job is a schema in worker-protocol.ts and a line here. */
const handlers: { [T in Job['type']]: Handler<Extract<Job, { type: T }>> } = {
  train,
  export: oneShot(async (job: ExportJob, log) => ({ type: 'exported', report: await exportAdapter(job, log) })),
  eval: runEval,
  'inspect-model': oneShot(async (job: InspectModelJob) => ({ type: 'model-inspected', inspection: await inspectModel(job) })),
  'import-model': oneShot(async (job: ImportModelJob, log) => ({ type: 'model-imported', result: await importModel(job, log) })),
  generate: oneShot(async (job: GenerateJob, log) => ({ type: 'generated', result: await runGenerateJob(job, log) })),
  'generate-adapter': oneShot(async (job: GenerateAdapterJob, log) => generateAdapter(job, log)),
  'import-adapter': oneShot(async (job: ImportAdapterJob, log) => importPeftAdapter(job, log)),
  'inspect-dataset': oneShot(async (job: InspectDatasetJob, log) => ({ type: 'dataset-inspected', ...(await inspectDataset(job, log)) })),
  'check-run': oneShot(async (job: CheckRunJob) => ({ type: 'run-checked', problems: await checkRun(job) })),
  'write-heldout': oneShot(async (job: WriteHeldoutJob) => ({ type: 'heldout-written', rows: await writeHeldout(job) })),
  'write-data-plan': oneShot(async (job: WriteDataPlanJob) => ({ type: 'data-plan-written', steps: await writeDataPlanJob(job) })),
};

function run(job: Job): Promise<number> {
  return (handlers[job.type] as Handler<Job>)(job);
}

// A training run's replica (train/data-parallel.ts) answers its lead, not the main process.
if (isReplicaWorker(workerData)) serveReplica(port);
else port.on('message', onJobMessage);

function onJobMessage(raw: unknown): void {
  const parsed = MainToWorkerSchema.safeParse(raw);
  if (!parsed.success) {
    const summary = parsed.error.issues.map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ');
    post({
      type: 'failed',
      error: {
        code: 'invalid_input',
        message: `The worker received an invalid message: ${summary}`,
        details: { issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
      },
    });
    if (state === 'idle') finish(1);
    return;
  }
  const message = parsed.data;
  if (message.type === 'stop') {
    stopRequested = true;
    // Stopped before a job arrived: there is nothing to save.
    if (state === 'idle') finish(0);
    return;
  }
  if (state !== 'idle') {
    post({ type: 'log', level: 'warn', message: `A ${message.type} job arrived while another job runs; it was ignored (one job per worker).` });
    return;
  }
  state = 'running';
  const job = message;
  void run(job).then((exitCode) => {
    // The main process's pool (src-main/worker-pool.ts) reuses the worker for its short jobs: it stays, idle.
    if (REUSABLE.has(job.type)) {
      state = 'idle';
      stopRequested = false;
    } else {
      finish(exitCode);
    }
  });
}

process.on('uncaughtException', (error) => {
  fail(error, 'worker_failed');
  finish(1);
});
process.on('unhandledRejection', (reason) => {
  fail(reason, 'worker_failed');
  finish(1);
});
