// Starts the engine (src-worker/main.ts) in a worker thread. From TypeScript source (dev, tests,
// the CLI) the worker loads the .ts entry through tsx; in the electron-vite build the engine is its
// own bundled entry, out/main/worker.js, next to the bundled main process.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { WorkbenchError } from '../src-shared/errors.ts';
import { MainToWorkerSchema, WorkerToMainSchema, type MainToWorker, type WorkerToMain } from '../src-shared/worker-protocol.ts';

// Kept in a variable so bundlers do not try to rewrite it as an asset URL.
const WORKER_SOURCE = '../src-worker/main.ts';
const WORKER_BUNDLE = './worker.js';

/** The file URL of tsx's ESM API (its `register()` installs the loader `node --import tsx` uses). */
export function tsxApiUrl(): string {
  try {
    return import.meta.resolve('tsx/esm/api');
  } catch {
    // Where import.meta.resolve is missing (some transforming runners), read the ESM entry from
    // tsx's exports map: require.resolve would pick its CommonJS flavour, which cannot register here.
    const manifest = createRequire(import.meta.url).resolve('tsx/package.json');
    const exportsMap = (JSON.parse(readFileSync(manifest, 'utf8')) as { exports: Record<string, { import: { default: string } }> }).exports;
    return pathToFileURL(path.join(path.dirname(manifest), exportsMap['./esm/api']!.import.default)).href;
  }
}

export function workerEntry(): { url: URL; typescript: boolean } {
  const source = new URL(WORKER_SOURCE, import.meta.url);
  if (existsSync(fileURLToPath(source))) return { url: source, typescript: true };
  return { url: new URL(WORKER_BUNDLE, import.meta.url), typescript: false };
}

/**
 * A worker module that registers tsx, then loads the TypeScript entry. Node 20 does not apply
 * `--import` hooks given in a worker's execArgv to the worker's own entry, so the hooks are
 * registered from inside the worker instead (this works on every Node version).
 */
function typescriptBootstrap(entry: URL): URL {
  const code = [`import { register } from ${JSON.stringify(tsxApiUrl())};`, 'register();', `await import(${JSON.stringify(entry.href)});`].join('\n');
  return new URL(`data:text/javascript,${encodeURIComponent(code)}`);
}

/** The parent's Node flags minus loaders: the bootstrap registers tsx itself, once. */
function inheritedExecArgv(): string[] {
  const kept: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (/^--(import|loader|experimental-loader|require)$/.test(arg) || arg === '-r') i++;
    else if (!/^--(import|loader|experimental-loader|require)=/.test(arg)) kept.push(arg);
  }
  return kept;
}

/** The engine in a worker thread; role 'replica' starts one as a training run's replica (the benchmarks' lead runs in the main thread). */
export function startEngineWorker(role?: 'replica'): Worker {
  const entry = workerEntry();
  if (!existsSync(fileURLToPath(entry.url))) {
    throw new Error(`The training engine is missing: neither ${WORKER_SOURCE} nor ${WORKER_BUNDLE} exists next to ${fileURLToPath(import.meta.url)}.`);
  }
  const url = entry.typescript ? typescriptBootstrap(entry.url) : entry.url;
  const worker = new Worker(url, {
    execArgv: inheritedExecArgv(),
    // A training run starts its replicas (src-worker/train/data-parallel.ts) from the same entry.
    workerData: { engineEntry: url.href, ...(role ? { role } : {}) },
    // The engine's console output goes to stderr: stdout belongs to the front door (the CLI's
    // progress lines, the one `Workbench: <url>` line of `serve`).
    stdout: true,
  });
  worker.stdout.pipe(process.stderr, { end: false });
  return worker;
}

/** What a manager tracks about the worker of one job (a training run or an evaluation). */
export interface WorkerJob {
  worker: Worker;
  /** A final message (trained, evaluated, stopped, failed) arrived. */
  settled: boolean;
  stopRequested: boolean;
  /** close() took the job down; its row is already marked. */
  closing: boolean;
  crash: string | null;
  done: Promise<void>;
  resolveDone: () => void;
}

/** Asks the job's worker to stop (once) and waits for it to finish; a worker that hangs past `timeoutMs` is terminated. */
export async function stopWorkerJob(job: WorkerJob, timeoutMs: number): Promise<void> {
  if (!job.stopRequested) {
    job.stopRequested = true;
    job.worker.postMessage({ type: 'stop' } satisfies MainToWorker);
  }
  const timer = setTimeout(() => void job.worker.terminate(), timeoutMs);
  try {
    await job.done;
  } finally {
    clearTimeout(timer);
  }
}

/** Workers of one-shot jobs (export, inspection, generation) still running, so a closing manager can end them. */
export class OneShotJobs {
  private readonly workers = new Set<Worker>();
  constructor(private readonly createWorker: () => Worker = startEngineWorker) {}

  /**
   * Runs one job in a fresh worker and resolves with its single result message of type `expect`;
   * a `failed` message, an invalid message or a crash rejects with a WorkbenchError. `log` lines are
   * passed to onLog as they come.
   */
  run<T extends WorkerToMain['type']>(
    job: Exclude<MainToWorker, { type: 'stop' }>,
    expect: T,
    onLog: (level: 'info' | 'warn' | 'error', message: string) => void = () => {},
  ): Promise<Extract<WorkerToMain, { type: T }>> {
    const worker = this.createWorker();
    this.workers.add(worker);
    return new Promise((resolve, reject) => {
      let result: { message: Extract<WorkerToMain, { type: T }> } | { error: WorkbenchError } | null = null;
      let crash: string | null = null;
      worker.on('message', (raw: unknown) => {
        const parsed = WorkerToMainSchema.safeParse(raw);
        if (!parsed.success) {
          result ??= { error: new WorkbenchError('worker_failed', `The ${job.type} worker sent an invalid message: ${parsed.error.message}`) };
        } else if (parsed.data.type === 'log') {
          onLog(parsed.data.level, parsed.data.message);
        } else if (parsed.data.type === expect) {
          result ??= { message: parsed.data as Extract<WorkerToMain, { type: T }> };
        } else if (parsed.data.type === 'failed') {
          result ??= { error: WorkbenchError.from(parsed.data.error) };
        }
        if (result) void worker.terminate();
      });
      worker.on('error', (error) => {
        crash = error.message;
      });
      worker.on('exit', (code) => {
        this.workers.delete(worker);
        if (result && 'message' in result) resolve(result.message);
        else if (result) reject(result.error);
        else reject(new WorkbenchError('worker_failed', `The ${job.type} worker exited without a result (exit code ${code})${crash ? `: ${crash}` : ''}.`));
      });
      worker.postMessage(MainToWorkerSchema.parse(job));
    });
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.workers].map((worker) => worker.terminate()));
  }
}
