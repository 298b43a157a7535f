// `lora-workbench engine setup pytorch` and `engine status`: the pytorch engine's Python environment
// under the data folder (src-main/engines/python-env.ts makes it from pip's configured index), its torch
// version and accelerator, and which methods each engine trains.
import path from 'node:path';
import { engineMethods, engineNames } from '../../src-shared/config.ts';
import { describePythonEnv, ensurePythonEnv, PythonEnvError, type PythonEnvReport } from '../engines/python-env.ts';
import { enginePackageRoot, pytorchEnvDir } from '../engines/pytorch-engine.ts';
import { resolvePaths } from '../paths.ts';
import { DATA_DIR_HELP, parse, UsageError, type CliIo } from './common.ts';

const ENGINE_HELP = `Usage: lora-workbench engine setup pytorch | engine status

  setup pytorch   create (or bring up to date) the pytorch engine's Python environment under the data
                  folder, with torch, transformers, peft, accelerate and safetensors from pip's
                  configured index, then print the torch version and the accelerator it found
  status          print each engine, the methods it trains, and the pytorch environment's state

The environment needs Python 3.9+ with venv and pip; LORA_WORKBENCH_PYTHON names the interpreter to use.
Runs choose their engine with "engine": "tfjs" | "pytorch" in the run configuration.

Options:
  --json            print the result as JSON
${DATA_DIR_HELP}
  -h, --help        show this help`;

function describe(report: Omit<PythonEnvReport, 'installed'>): string {
  const device = report.deviceName ? ` (${report.deviceName})` : '';
  return `torch ${report.torch}, transformers ${report.transformers ?? '?'}, peft ${report.peft ?? '?'} on Python ${report.pythonVersion}; accelerator: ${report.accelerator}${device}`;
}

export async function engineCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' } }, 2);
  if (values.help) return io.out(ENGINE_HELP), 0;
  const paths = resolvePaths({ dataDir: values['data-dir'] as string | undefined });
  const dir = pytorchEnvDir(paths);
  const [action, engine] = positionals;
  if (action === 'setup') {
    if (engine !== 'pytorch') throw new UsageError(`engine setup needs the engine to set up: pytorch (tfjs is built in)${engine ? `, not "${engine}"` : ''}`);
    try {
      const report = ensurePythonEnv({ dir, requirements: [{ file: path.join(enginePackageRoot(paths.appRoot), 'requirements.txt') }], log: (line) => io.err(line) });
      if (values.json) return io.out(JSON.stringify(report, null, 2)), 0;
      io.out(`pytorch engine ${report.installed ? 'set up' : 'already up to date'} at ${dir}: ${describe(report)}.`);
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
    if (values.json) return io.out(JSON.stringify({ engines: engineNames.map((name) => ({ name, methods: engineMethods[name] })), pytorch }, null, 2)), 0;
    io.out(`tfjs: built in; trains ${engineMethods.tfjs.join(', ')}.`);
    io.out(`pytorch: trains ${engineMethods.pytorch.join(', ')}; ${'error' in pytorch ? pytorch.error : `ready at ${dir}: ${describe(pytorch)}.`}`);
    return 0;
  }
  throw new UsageError(action ? `Unknown engine action "${action}"; use setup pytorch or status` : 'engine needs an action: setup pytorch or status');
}
