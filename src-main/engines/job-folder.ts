// A pytorch run as a folder that trains anywhere Python and torch are (a cluster node, another
// machine), and back: exportJobFolder writes the engine package, the job, the data plan (so the far side
// needs no Node: every batch is already tokenized and ordered), a copy of the dataset, a launch script
// for torchrun, accelerate or SLURM and a README; importRunFolder reads what the job wrote (its
// protocol messages in run/messages.jsonl, its checkpoints and adapter in run/) into the store as a run.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { RunConfigSchema, type RunConfig } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { MetricPoint, Run } from '../../src-shared/runs.ts';
import { DATA_PLAN_FILE, TrainJobSchema, WorkerToMainSchema, type TrainJob, type WorkerToMain } from '../../src-shared/worker-protocol.ts';
import type { WorkbenchPaths } from '../paths.ts';
import type { Store } from '../store/index.ts';
import { writeDataPlanInWorker } from './data-plan.ts';
import { enginePackageRoot, JOB_FILE } from './pytorch-engine.ts';

export const jobLaunchers = ['torchrun', 'accelerate', 'slurm'] as const;
export type JobLauncher = (typeof jobLaunchers)[number];
export const LAUNCH_SCRIPT = 'launch.sh';
/** The job's stdout: the protocol messages, one JSON object a line, as the app would have received them. */
export const MESSAGES_FILE = 'messages.jsonl';
const RUN_DIR = 'run';
const PACKAGE_FILES = ['pyproject.toml', 'requirements.txt', 'requirements-cuda.txt'];

function copyPackage(from: string, to: string): void {
  fs.cpSync(path.join(from, 'workbench_torch'), path.join(to, 'workbench_torch'), { recursive: true, filter: (src) => !src.includes('__pycache__') });
  for (const file of PACKAGE_FILES) fs.copyFileSync(path.join(from, file), path.join(to, file));
}

/** For a default inside "${VAR:-...}": the characters double quotes still expand are escaped. */
const inDoubleQuotes = (s: string) => s.replace(/([\\"$`])/g, '\\$1');

function launchScript(launcher: JobLauncher, name: string, modelDir: string, processes: number): string {
  const train = '-m workbench_torch train --job job.json --plan data-plan.json --model-dir "$MODEL_DIR" --no-stdin';
  const torchrun = `"$PYTHON" -m torch.distributed.run --standalone --nproc-per-node="$NPROC" ${train}`;
  const command = {
    torchrun,
    // --multi_gpu: accelerate's torch.distributed launcher (it needs NPROC >= 2); one process needs no launcher.
    accelerate: `if [ "$NPROC" -gt 1 ]; then "$PYTHON" -m accelerate.commands.launch --multi_gpu --num_machines=1 --num_processes="$NPROC" --mixed_precision=no --dynamo_backend=no ${train}; else "$PYTHON" ${train}; fi`,
    // One node, one task that starts NPROC processes (one per GPU) with torchrun.
    slurm: `srun ${torchrun}`,
  }[launcher];
  const slurmHeader =
    launcher === 'slurm'
      ? [
          `#SBATCH --job-name=${name.replace(/[^\w.-]+/g, '-').slice(0, 60) || 'lora-workbench'}`,
          '#SBATCH --nodes=1',
          '#SBATCH --ntasks-per-node=1',
          `#SBATCH --gpus-per-node=${processes}`,
          '#SBATCH --cpus-per-task=8',
          '#SBATCH --time=24:00:00',
          '#SBATCH --output=run/slurm-%j.out',
          '',
        ]
      : [];
  return [
    '#!/usr/bin/env bash',
    ...slurmHeader,
    `# Trains this lora-workbench job with ${launcher}${launcher === 'slurm' ? ' (submit with: sbatch launch.sh)' : ''}; see README.md.`,
    '# PYTHON: an interpreter with requirements.txt installed; MODEL_DIR: the base model folder on this machine; NPROC: processes (GPUs).',
    'set -euo pipefail',
    'cd "$(dirname "$0")"',
    'PYTHON="${PYTHON:-python3}"',
    `MODEL_DIR="\${MODEL_DIR:-${inDoubleQuotes(modelDir)}}"`,
    `NPROC="\${NPROC:-${processes}}"`,
    `mkdir -p ${RUN_DIR}`,
    'export PYTHONPATH="$PWD/engine-torch${PYTHONPATH:+:$PYTHONPATH}"',
    `${command} > ${RUN_DIR}/${MESSAGES_FILE} 2>> ${RUN_DIR}/train.log`,
    '',
  ].join('\n');
}

function readme(launcher: JobLauncher, config: RunConfig, modelDir: string): string {
  return `# lora-workbench job: ${config.name || config.method}

A pytorch-engine run exported by \`lora-workbench export-job\`: ${config.method} on ${path.basename(modelDir)},
${config.training.maxSteps} steps of batch ${config.training.batchSize}, ${config.distributed.processes} process(es) with ${launcher}.

- \`engine-torch/\`: the engine (Python package); \`engine-torch/requirements.txt\` lists what it needs.
- \`job.json\`: the run configuration as a TrainJob; \`data-plan.json\`: every batch, tokenized and in order
  (the same batches the workbench would train on); \`data/\`: the dataset it was made from, for the record.
- \`launch.sh\`: the launch script. Rank 0 writes the protocol messages to \`run/messages.jsonl\`, checkpoints to
  \`run/checkpoints/\` and the adapter to \`run/adapter/\`; stderr goes to \`run/train.log\`.

Run it:

    python3 -m venv .venv && .venv/bin/pip install -r engine-torch/requirements.txt${config.method === 'qlora' ? ' -r engine-torch/requirements-cuda.txt' : ''}
    PYTHON=.venv/bin/python MODEL_DIR=/path/to/${path.basename(modelDir)} ${launcher === 'slurm' ? 'sbatch' : 'bash'} launch.sh

MODEL_DIR defaults to the folder it was exported with (${modelDir}); NPROC overrides the number of processes
(the batch of ${config.training.batchSize} must split evenly over them). Bring the results back into the workbench with:

    lora-workbench import-run /path/to/this/folder
`;
}

export interface ExportJobOptions {
  config: RunConfig;
  modelDir: string;
  datasetPath: string;
  outDir: string;
  launcher: JobLauncher;
  appRoot: string;
}

export async function exportJobFolder(options: ExportJobOptions): Promise<{ outDir: string; files: string[] }> {
  const outDir = path.resolve(options.outDir);
  if (fs.existsSync(outDir) && fs.readdirSync(outDir).length > 0) {
    throw new WorkbenchError('conflict', `${outDir} is not empty; export the job into a new folder.`, { field: 'out' });
  }
  const datasetName = path.basename(options.datasetPath);
  const config: RunConfig = RunConfigSchema.parse({ ...options.config, engine: 'pytorch', model: options.modelDir, dataset: path.join('data', datasetName) });
  const job: TrainJob = {
    type: 'train',
    runId: `job-${randomBytes(4).toString('hex')}`,
    config,
    modelDir: options.modelDir,
    datasetPath: path.join('data', datasetName),
    runDir: RUN_DIR,
    resumeFrom: null,
  };
  // First, so that a dataset or model the plan cannot read stops the export before anything is copied.
  await writeDataPlanInWorker({ config, modelDir: options.modelDir, datasetPath: options.datasetPath }, path.join(outDir, DATA_PLAN_FILE));
  fs.mkdirSync(path.join(outDir, 'data'), { recursive: true });
  fs.mkdirSync(path.join(outDir, 'engine-torch'), { recursive: true });
  copyPackage(enginePackageRoot(options.appRoot), path.join(outDir, 'engine-torch'));
  fs.copyFileSync(options.datasetPath, path.join(outDir, 'data', datasetName));
  fs.writeFileSync(path.join(outDir, JOB_FILE), `${JSON.stringify(job, null, 2)}\n`);
  fs.writeFileSync(path.join(outDir, LAUNCH_SCRIPT), launchScript(options.launcher, config.name, options.modelDir, config.distributed.processes), {
    mode: 0o755,
  });
  fs.writeFileSync(path.join(outDir, 'README.md'), readme(options.launcher, config, options.modelDir));
  return { outDir, files: [JOB_FILE, DATA_PLAN_FILE, LAUNCH_SCRIPT, 'README.md', path.join('data', datasetName), 'engine-torch/'] };
}

function readMessages(file: string): WorkerToMain[] {
  if (!fs.existsSync(file))
    throw new WorkbenchError('not_found', `${file} is missing: the job has not run yet, or ran elsewhere. Copy its run/ folder back first.`, { file });
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, i) => {
      const parsed = WorkerToMainSchema.safeParse(JSON.parse(line));
      if (!parsed.success)
        throw new WorkbenchError('format_invalid', `${file} line ${i + 1} is not an engine message: ${parsed.error.message}`, { file, line: i + 1 });
      return parsed.data;
    });
}

/**
 * Brings a job folder's results into the store as a run: its run/ folder is copied under the data
 * folder, every metric point inserted, its checkpoints and adapter registered. The run's status is what
 * the job's last message says (trained: completed, stopped, failed), else interrupted (resumable here).
 */
export function importRunFolder(dir: string, store: Store, paths: WorkbenchPaths, newId: (prefix?: string) => string): Run {
  const folder = path.resolve(dir);
  const jobFile = path.join(folder, JOB_FILE);
  if (!fs.existsSync(jobFile))
    throw new WorkbenchError('not_found', `${folder} has no ${JOB_FILE}: it is not a folder lora-workbench export-job wrote.`, { dir: folder });
  const job = TrainJobSchema.parse(JSON.parse(fs.readFileSync(jobFile, 'utf8')));
  const messages = readMessages(path.join(folder, RUN_DIR, MESSAGES_FILE));
  const id = newId();
  const runDir = paths.runDir(id);
  fs.mkdirSync(path.dirname(runDir), { recursive: true });
  fs.cpSync(path.join(folder, RUN_DIR), runDir, { recursive: true });
  const now = new Date().toISOString();
  const config: RunConfig = { ...job.config, dataset: path.join(folder, job.datasetPath) };
  store.runs.create({ id, name: job.config.name || `imported ${path.basename(folder)}`, config, createdAt: now, ownerPid: null });
  const points: MetricPoint[] = messages.flatMap((m) => (m.type === 'metrics' ? m.points : []));
  store.metrics.insertBatch([[id, points]]);
  const checkpointsDir = path.join(runDir, 'checkpoints');
  let lastCheckpointStep: number | null = null;
  for (const name of fs.existsSync(checkpointsDir) ? fs.readdirSync(checkpointsDir) : []) {
    const match = /^step-(\d+)$/.exec(name);
    if (!match || !fs.existsSync(path.join(checkpointsDir, name, 'trainer_state.json'))) continue;
    store.checkpoints.add({ runId: id, step: Number(match[1]), dir: path.join(checkpointsDir, name), createdAt: now });
    lastCheckpointStep = Math.max(lastCheckpointStep ?? 0, Number(match[1]));
  }
  const last = <T extends WorkerToMain['type']>(type: T) => messages.filter((m): m is Extract<WorkerToMain, { type: T }> => m.type === type).at(-1);
  const trained = last('trained');
  const failed = last('failed');
  if (trained) {
    store.adapters.create({
      id: newId('ad-'),
      runId: id,
      name: job.config.name || id,
      method: job.config.method,
      baseModel: job.config.model,
      path: path.join(runDir, 'adapter'),
      step: trained.step,
      trainableParams: trained.trainableParams,
      createdAt: now,
    });
  }
  const status = trained ? 'completed' : last('stopped') ? 'stopped' : failed ? 'failed' : 'interrupted';
  return store.runs.update(id, {
    status,
    backend: last('started')?.backend ?? null,
    progress: last('progress')?.progress ?? null,
    startedAt: now,
    finishedAt: now,
    error:
      failed?.error.message ??
      (status === 'interrupted' ? 'Interrupted: the job ended without a final message. Resume it to continue from its last checkpoint.' : null),
    lastCheckpointStep,
  });
}
