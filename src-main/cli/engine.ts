// `lora-workbench engine setup pytorch` and `engine status`, `export-job` and `import-run`: the pytorch engine's Python environment
// under the data folder (src-main/engines/python-env.ts makes it from pip's configured index), its torch
// version and accelerator, and which methods each engine trains.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_MODEL, engineMethods, engineNames, RunConfigSchema, SAMPLE_DATASET } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { isDatasetId } from '../datasets.ts';
import { exportJobFolder, importRunFolder, jobLaunchers, LAUNCH_SCRIPT, type JobLauncher } from '../engines/job-folder.ts';
import { newId } from '../jobs.ts';
import { Store } from '../store/index.ts';
import { describePythonEnv, ensurePythonEnv, PythonEnvError, type PythonEnvReport } from '../engines/python-env.ts';
import { enginePackageRoot, pytorchEnvDir } from '../engines/pytorch-engine.ts';
import { ensureDataDirs, resolvePaths } from '../paths.ts';
import { DATA_DIR_HELP, parse, UsageError, type CliIo } from './common.ts';

const ENGINE_HELP = `Usage: lora-workbench engine setup pytorch | engine status

  setup pytorch   create (or bring up to date) the pytorch engine's Python environment under the data
                  folder, with torch, transformers, peft, accelerate and safetensors from pip's
                  configured index, then print the torch version and the accelerator it found
  status          print each engine, the methods it trains, and the pytorch environment's state

The environment needs Python 3.9+ with venv and pip; LORA_WORKBENCH_PYTHON names the interpreter to use.
QLoRA on the pytorch engine needs bitsandbytes (NVIDIA GPUs with CUDA only), which setup does not install:
on a CUDA machine, install engine-torch/requirements-cuda.txt into the environment as setup prints.
Runs choose their engine with "engine": "tfjs" | "pytorch" in the run configuration.

Options:
  --json            print the result as JSON
${DATA_DIR_HELP}
  -h, --help        show this help`;

function environmentSummary(report: Omit<PythonEnvReport, 'installed'>): string {
  const device = report.deviceName ? ` (${report.deviceName})` : '';
  return `torch ${report.torch}, transformers ${report.transformers ?? '?'}, peft ${report.peft ?? '?'} on Python ${report.pythonVersion}; accelerator: ${report.accelerator}${device}`;
}

export async function engineCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' } }, 2);
  if (values.help) return (io.out(ENGINE_HELP), 0);
  const paths = resolvePaths({ dataDir: values['data-dir'] as string | undefined });
  const dir = pytorchEnvDir(paths);
  const [action, engine] = positionals;
  if (action === 'setup') {
    if (engine !== 'pytorch') throw new UsageError(`engine setup needs the engine to set up: pytorch (tfjs is built in)${engine ? `, not "${engine}"` : ''}`);
    try {
      const report = ensurePythonEnv({
        dir,
        requirements: [{ file: path.join(enginePackageRoot(paths.appRoot), 'requirements.txt') }],
        log: (line) => io.err(line),
      });
      if (values.json) return (io.out(JSON.stringify(report, null, 2)), 0);
      io.out(`pytorch engine ${report.installed ? 'set up' : 'already up to date'} at ${dir}: ${environmentSummary(report)}.`);
      // bitsandbytes is not on every index and runs on CUDA only: QLoRA's extra is installed on request.
      if (report.accelerator === 'cuda')
        io.out(
          `QLoRA on this engine needs bitsandbytes: ${report.python} -m pip install -r ${path.join(enginePackageRoot(paths.appRoot), 'requirements-cuda.txt')}`,
        );
      return 0;
    } catch (error) {
      if (!(error instanceof PythonEnvError)) throw error;
      io.err(`lora-workbench: ${error.message}`);
      return 1;
    }
  }
  if (action === 'status') {
    let pytorch: Omit<PythonEnvReport, 'installed'> | { error: string };
    try {
      pytorch = describePythonEnv(dir);
    } catch (error) {
      if (!(error instanceof PythonEnvError)) throw error;
      pytorch = { error: `${error.message} Run \`lora-workbench engine setup pytorch\`.` };
    }
    if (values.json) return (io.out(JSON.stringify({ engines: engineNames.map((name) => ({ name, methods: engineMethods[name] })), pytorch }, null, 2)), 0);
    io.out(`tfjs: built in; trains ${engineMethods.tfjs.join(', ')}.`);
    io.out(`pytorch: trains ${engineMethods.pytorch.join(', ')}; ${'error' in pytorch ? pytorch.error : `ready at ${dir}: ${environmentSummary(pytorch)}.`}`);
    return 0;
  }
  throw new UsageError(action ? `Unknown engine action "${action}"; use setup pytorch or status` : 'engine needs an action: setup pytorch or status');
}

const EXPORT_JOB_HELP = `Usage: lora-workbench export-job RUN_CONFIG --out DIR [--launcher torchrun|accelerate|slurm]

Writes a folder that trains the run on any machine with Python and torch (a cluster node): the pytorch
engine, the job, every batch already tokenized and ordered (data-plan.json: the far side needs no Node),
the dataset, a launch script for the launcher and a README. distributed.processes in the configuration
sets the processes (GPUs); NPROC overrides it at launch. Bring the results back with import-run.

Options:
  --out DIR         the new folder (it must not exist, or be empty)
  --launcher L      torchrun (default), accelerate, or slurm (an sbatch script running torchrun)
${DATA_DIR_HELP}
  -h, --help        show this help`;

export async function exportJobCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { out: { type: 'string' }, launcher: { type: 'string' } }, 1);
  if (values.help) return (io.out(EXPORT_JOB_HELP), 0);
  const [configArg] = positionals;
  if (!configArg) throw new UsageError('export-job needs the run configuration file');
  if (typeof values.out !== 'string') throw new UsageError('export-job needs --out DIR');
  const launcher = (values.launcher ?? 'torchrun') as JobLauncher;
  if (!jobLaunchers.includes(launcher)) throw new UsageError(`--launcher must be one of ${jobLaunchers.join(', ')}`);
  const paths = resolvePaths({ dataDir: values['data-dir'] as string | undefined });
  const configFile = path.resolve(configArg);
  const config = RunConfigSchema.parse(JSON.parse(readFileSync(configFile, 'utf8')));
  const base = path.dirname(configFile);
  const modelDir = config.model === DEFAULT_MODEL ? paths.defaultModelDir : path.resolve(base, config.model);
  let datasetPath = config.dataset === SAMPLE_DATASET ? paths.sampleDatasetPath : path.resolve(base, config.dataset);
  if (config.dataset !== SAMPLE_DATASET && isDatasetId(config.dataset)) {
    const store = Store.open(paths.dbFile);
    try {
      const registered = store.datasets.get(config.dataset);
      if (!registered) throw new WorkbenchError('not_found', `No registered dataset ${config.dataset} (lora-workbench datasets list).`, { field: 'dataset' });
      datasetPath = registered.normalizedPath;
    } finally {
      store.close();
    }
  }
  const result = await exportJobFolder({ config, modelDir, datasetPath, outDir: values.out, launcher, appRoot: paths.appRoot });
  io.out(
    `Wrote the job folder ${result.outDir} (${result.files.join(', ')}). Run it with: ${launcher === 'slurm' ? 'sbatch' : 'bash'} ${path.join(result.outDir, LAUNCH_SCRIPT)}`,
  );
  return 0;
}

const IMPORT_RUN_HELP = `Usage: lora-workbench import-run DIR

Brings a job folder written by export-job, after it ran, back into the workbench as a run: its metrics,
checkpoints and adapter (run/ is copied under the data folder). A job that did not finish can be resumed.

Options:
  --json            print the run as JSON
${DATA_DIR_HELP}
  -h, --help        show this help`;

export async function importRunCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' } }, 1);
  if (values.help) return (io.out(IMPORT_RUN_HELP), 0);
  const [dir] = positionals;
  if (!dir) throw new UsageError('import-run needs the job folder');
  const paths = resolvePaths({ dataDir: values['data-dir'] as string | undefined });
  ensureDataDirs(paths);
  const store = Store.open(paths.dbFile);
  try {
    const run = importRunFolder(dir, store, paths, newId);
    if (values.json) return (io.out(JSON.stringify(run, null, 2)), 0);
    io.out(`Imported ${path.resolve(dir)} as run ${run.id} (${run.status}, step ${run.progress?.step ?? 0}/${run.config.training.maxSteps}).`);
    return 0;
  } finally {
    store.close();
  }
}
