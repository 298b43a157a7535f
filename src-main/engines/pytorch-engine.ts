// The pytorch engine as the RunManager sees it: an object with the Worker methods the manager uses
// (postMessage, on('message' | 'error' | 'exit'), terminate), backed by a Python child process
// (engine-torch/, `python -m workbench_torch train`). A `train` job is turned into a data plan here
// (data-plan.ts), written beside the job into <runDir>/engine/, and the child is started; every stdout
// line is parsed and validated with WorkerToMainSchema before it is relayed; stderr goes to the run's
// train.log; `stop` becomes a {"type":"stop"} line on the child's stdin. Several processes run under
// torchrun (or accelerate), with rank 0 alone speaking.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { engineMethods, type RunConfig } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { DATA_PLAN_FILE, MainToWorkerSchema, WorkerToMainSchema, type TrainJob, type WorkerToMain } from '../../src-shared/worker-protocol.ts';
import { findAppRoot, type WorkbenchPaths } from '../paths.ts';
import { writeDataPlanInWorker } from './data-plan.ts';

export const ENGINE_DIR = 'engine';
export const JOB_FILE = 'job.json';

/** The folder holding the Python package (engine-torch/), which the child imports from. */
export function enginePackageRoot(appRoot: string = findAppRoot()): string {
  return path.join(appRoot, 'engine-torch');
}

/**
 * The interpreter that runs the engine: LORA_WORKBENCH_TORCH_PYTHON, else the environment
 * `lora-workbench engine setup pytorch` made (`envPython`, when it exists), else the repository's
 * .venv (development and tests). None of them: a clear error saying what to run.
 */
export function resolveEnginePython(envPython: string | null = null, appRoot: string = findAppRoot()): string {
  const candidates = [process.env.LORA_WORKBENCH_TORCH_PYTHON, envPython, venvPython(path.join(appRoot, '.venv'))];
  for (const candidate of candidates) if (candidate && existsSync(candidate)) return candidate;
  throw new WorkbenchError(
    'backend_unavailable',
    'The pytorch engine has no Python environment yet. Run `lora-workbench engine setup pytorch` (or the Set up button on the New run page), then start the run again.',
  );
}

/** The argv that starts the engine for a run: one process, or `processes` of them under torchrun / accelerate. */
export function engineCommand(python: string, config: Pick<RunConfig, 'distributed'>, jobFile: string, planFile: string, extra: string[] = []): string[] {
  const entry = ['-m', 'workbench_torch', 'train', '--job', jobFile, '--plan', planFile, ...extra];
  const { processes, launcher } = config.distributed;
  if (processes <= 1) return [python, ...entry];
  if (launcher === 'torchrun') return [python, '-m', 'torch.distributed.run', '--standalone', `--nproc-per-node=${processes}`, ...entry];
  // --multi_gpu is accelerate's torch.distributed launcher (without it, several CPU processes need mpirun); the engine picks gloo on CPUs itself.
  return [
    python,
    '-m',
    'accelerate.commands.launch',
    '--multi_gpu',
    '--num_machines=1',
    `--num_processes=${processes}`,
    '--mixed_precision=no',
    '--dynamo_backend=no',
    ...entry,
  ];
}

type Listener = (...args: unknown[]) => void;

/** The exit code relayed for an engine killed by SIGKILL (as a shell reports 128 + 9). */
export const KILLED_EXIT_CODE = 137;

/** The crash the engine reports when its process was killed by SIGKILL (kill -9, the OOM killer). */
export const ENGINE_KILLED_MESSAGE = 'The pytorch engine process was killed (SIGKILL).';

/** True for the crash of an engine killed from outside: the run is interrupted, not failed. */
export function isKilledEngineCrash(crash: string | null): boolean {
  return crash === ENGINE_KILLED_MESSAGE;
}

/** Where `lora-workbench engine setup pytorch` puts the engine's virtual environment. */
export function pytorchEnvDir(paths: Pick<WorkbenchPaths, 'dataDir'>): string {
  return path.join(paths.dataDir, 'engines', 'pytorch');
}

export function pytorchEngineOptions(paths: Pick<WorkbenchPaths, 'dataDir' | 'appRoot'>): PytorchEngineOptions {
  return { appRoot: paths.appRoot, envPython: venvPython(pytorchEnvDir(paths)) };
}

/** The interpreter inside a virtual environment folder. */
export function venvPython(dir: string): string {
  return process.platform === 'win32' ? path.join(dir, 'Scripts', 'python.exe') : path.join(dir, 'bin', 'python');
}

/** The Worker surface RunManager uses; the tfjs worker_threads Worker has the same. */
export interface EngineWorker {
  postMessage(message: unknown): void;
  on(event: 'message' | 'error' | 'exit', listener: Listener): unknown;
  terminate(): Promise<number>;
}

export interface PytorchEngineOptions {
  /** The interpreter; absent: resolveEnginePython(envPython). */
  python?: string;
  /** The environment `engine setup pytorch` made, when it exists. */
  envPython?: string | null;
  appRoot?: string;
  /** Extra environment for the child (tests set the device, or CUDA_VISIBLE_DEVICES). */
  env?: NodeJS.ProcessEnv;
}

export class PytorchEngineWorker extends EventEmitter implements EngineWorker {
  private child: ChildProcess | null = null;
  private exited = false;
  private exitCode = 0;
  private stopPending = false;
  private runDir: string | null = null;
  /** terminate() was called: a SIGKILL after it is ours, not a kill from outside. */
  private terminating = false;

  constructor(private readonly options: PytorchEngineOptions = {}) {
    super();
  }

  /** Exposed for tests (kill -9 of the engine): the child's pid once it runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  postMessage(raw: unknown): void {
    const message = MainToWorkerSchema.parse(raw);
    if (message.type === 'stop') {
      if (this.child?.stdin?.writable) this.child.stdin.write(`${JSON.stringify({ type: 'stop' })}\n`);
      else this.stopPending = true;
      return;
    }
    if (message.type !== 'train') {
      this.fail(new WorkbenchError('invalid_input', `The pytorch engine runs training jobs; ${message.type} jobs run on the tfjs engine.`));
      return;
    }
    void this.start(message).catch((error: unknown) => this.fail(WorkbenchError.from(error)));
  }

  private fail(error: WorkbenchError): void {
    this.emit('message', { type: 'failed', error: error.toJSON() } satisfies WorkerToMain);
    this.finish(1);
  }

  private finish(code: number): void {
    if (this.exited) return;
    this.exited = true;
    this.exitCode = code;
    // After the current event: listeners attached right after postMessage still hear it.
    setImmediate(() => this.emit('exit', code));
  }

  private async start(job: TrainJob): Promise<void> {
    if (!engineMethods.pytorch.includes(job.config.method)) {
      throw new WorkbenchError(
        'invalid_input',
        `The pytorch engine does not train ${job.config.method} yet; it offers ${engineMethods.pytorch.join(', ')}. Choose the tfjs engine for ${job.config.method}.`,
        { field: 'method' },
      );
    }
    const appRoot = this.options.appRoot ?? findAppRoot();
    const python = this.options.python ?? resolveEnginePython(this.options.envPython ?? null, appRoot);
    this.runDir = job.runDir;
    const folder = path.join(job.runDir, ENGINE_DIR);
    mkdirSync(folder, { recursive: true });
    const jobFile = path.join(folder, JOB_FILE);
    const planFile = path.join(folder, DATA_PLAN_FILE);
    writeFileSync(jobFile, JSON.stringify(job));
    await writeDataPlanInWorker({ config: job.config, modelDir: job.modelDir, datasetPath: job.datasetPath }, planFile);
    if (this.exited) return;
    const [command, ...args] = engineCommand(python, job.config, jobFile, planFile);
    const packageRoot = enginePackageRoot(appRoot);
    const child = spawn(command!, args, {
      cwd: packageRoot,
      env: {
        ...process.env,
        PYTHONPATH: [packageRoot, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter),
        PYTHONUNBUFFERED: '1',
        ...this.options.env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child = child;
    child.on('error', (error) => {
      this.emit('error', new Error(`Could not start the pytorch engine (${command}): ${error.message}`));
      this.finish(1);
    });
    child.stdin!.on('error', () => {
      // The child closed its stdin (it ended): a late stop has nothing to reach.
    });
    createInterface({ input: child.stdout! }).on('line', (line) => this.relay(line));
    createInterface({ input: child.stderr! }).on('line', (line) => this.toRunLog(line));
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL' && !this.terminating) this.emit('error', new Error(ENGINE_KILLED_MESSAGE));
      this.finish(code ?? (signal === 'SIGKILL' ? KILLED_EXIT_CODE : 1));
    });
    if (this.stopPending) child.stdin!.write(`${JSON.stringify({ type: 'stop' })}\n`);
  }

  private relay(line: string): void {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      // A library printing to stdout is not a protocol message: keep it in the log rather than failing the run.
      this.toRunLog(`stdout: ${line}`);
      return;
    }
    const parsed = WorkerToMainSchema.safeParse(value);
    // An invalid message is passed on as it is: the manager's own validation fails the run with its reason.
    this.emit('message', parsed.success ? parsed.data : value);
  }

  private toRunLog(line: string): void {
    if (!this.runDir) return;
    try {
      appendFileSync(path.join(this.runDir, 'train.log'), `${new Date().toISOString()} ENGINE ${line}\n`);
    } catch {
      // The run log is a convenience.
    }
  }

  async terminate(): Promise<number> {
    if (this.exited) return this.exitCode;
    const child = this.child;
    if (!child || child.exitCode !== null) {
      this.finish(1);
      return 1;
    }
    this.terminating = true;
    // torchrun ends its workers when it is terminated.
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    });
    return this.exitCode;
  }
}

/** RunManager's factory hook: the tfjs worker for tfjs runs, a Python child for pytorch runs. */
export function engineWorkerFor(config: Pick<RunConfig, 'engine'>, tfjsWorker: () => EngineWorker, options: PytorchEngineOptions = {}): EngineWorker {
  return config.engine === 'pytorch' ? new PytorchEngineWorker(options) : tfjsWorker();
}
