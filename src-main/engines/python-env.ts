// The Python environments the workbench makes for itself: the pytorch engine's (under the data folder,
// `lora-workbench engine setup pytorch`) and the repository's test environment (`.venv`, made by
// `npm test`'s set-up step for the interop and engine suites). One implementation for both, so that
// what a user installs and what the tests run on cannot drift apart.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';

/** A requirements file, installed with or without its packages' own dependencies. */
export interface RequirementFile {
  file: string;
  /**
   * Installs the listed packages without resolving their dependencies: for packages whose declared
   * dependencies include optional extras missing from the configured index (lm_eval's `evaluate`),
   * while the dependencies the workbench uses are listed in another file.
   */
  noDeps?: boolean;
}

export interface PythonEnvOptions {
  /** The virtual environment's folder. */
  dir: string;
  requirements: RequirementFile[];
  /** Progress lines for the person waiting: what is installed, and where. */
  log: (line: string) => void;
  /** The interpreter that creates the environment; found on PATH when absent. */
  python?: string;
}

export interface PythonEnvReport {
  dir: string;
  python: string;
  pythonVersion: string;
  torch: string;
  transformers: string | null;
  peft: string | null;
  accelerator: 'cuda' | 'rocm' | 'mps' | 'cpu';
  deviceName: string | null;
  /** False when the environment was already up to date and nothing was installed. */
  installed: boolean;
}

/** Missing Python, venv or pip: the message says what to install on this platform. */
export class PythonEnvError extends Error {}

const MIN_PYTHON: [number, number] = [3, 9];
const STAMP = '.workbench-requirements.sha256';

export function venvPython(dir: string): string {
  return process.platform === 'win32' ? path.join(dir, 'Scripts', 'python.exe') : path.join(dir, 'bin', 'python');
}

function installHint(): string {
  if (process.platform === 'darwin') return 'Install Python 3 (`brew install python`, or python.org), then try again.';
  if (process.platform === 'win32') return 'Install Python 3 from python.org (tick "Add python.exe to PATH"), then try again.';
  return 'Install Python 3 with venv and pip (Debian/Ubuntu: `sudo apt-get install python3 python3-venv python3-pip`), then try again.';
}

function run(command: string, args: string[], env?: NodeJS.ProcessEnv) {
  return spawnSync(command, args, { encoding: 'utf8', env: env ?? process.env, maxBuffer: 64 * 1024 * 1024 });
}

interface Finished {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** `run` without blocking the event loop; each line the command prints on stdout also goes to `onLine` as it comes. */
function runAsync(command: string, args: string[], onLine?: (line: string) => void): Promise<Finished> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: string[] = [];
    let stderr = '';
    createInterface({ input: child.stdout }).on('line', (line) => {
      out.push(line);
      if (line.trim()) onLine?.(line);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (error) => resolve({ status: null, stdout: '', stderr: error.message }));
    child.on('close', (status) => resolve({ status, stdout: out.join('\n'), stderr }));
  });
}

/** The first interpreter that is Python >= 3.9: $LORA_WORKBENCH_PYTHON, python3, python. */
export function findPython(): { python: string; version: string } {
  const candidates = [process.env.LORA_WORKBENCH_PYTHON, 'python3', 'python'].filter((c): c is string => !!c);
  const seen: string[] = [];
  for (const candidate of candidates) {
    const probe = run(candidate, ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])']);
    if (probe.status !== 0) continue;
    const version = probe.stdout.trim();
    const [major, minor] = version.split('.').map(Number);
    if (major > MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor >= MIN_PYTHON[1])) return { python: candidate, version };
    seen.push(`${candidate} is Python ${version}`);
  }
  const found = seen.length ? ` (${seen.join('; ')})` : '';
  throw new PythonEnvError(`No Python ${MIN_PYTHON.join('.')} or newer was found${found}. ${installHint()} Or point LORA_WORKBENCH_PYTHON at one.`);
}

/** What the requirement files ask for, with the interpreter's version: the environment is current while this is unchanged. */
function requirementsDigest(requirements: RequirementFile[], pythonVersion: string): string {
  const hash = createHash('sha256').update(pythonVersion);
  for (const requirement of requirements) hash.update(`${requirement.noDeps ? 'no-deps' : 'deps'}\0${readFileSync(requirement.file, 'utf8')}\0`);
  return hash.digest('hex');
}

const DESCRIBE = `
import json, platform, importlib.metadata as md
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None
import torch
accelerator, device = 'cpu', None
if torch.cuda.is_available():
    accelerator = 'rocm' if getattr(torch.version, 'hip', None) else 'cuda'
    device = torch.cuda.get_device_name(0)
elif getattr(torch.backends, 'mps', None) is not None and torch.backends.mps.is_available():
    accelerator, device = 'mps', 'Apple GPU'
print(json.dumps({'pythonVersion': platform.python_version(), 'torch': torch.__version__,
                  'transformers': version('transformers'), 'peft': version('peft'),
                  'accelerator': accelerator, 'deviceName': device}))
`;

/** The torch version and accelerator of an existing environment; throws when torch does not import. */
export function describePythonEnv(dir: string): Omit<PythonEnvReport, 'installed'> {
  return readDescription(dir, run(environmentPython(dir), ['-c', DESCRIBE]));
}

/** describePythonEnv without blocking the event loop (importing torch takes seconds). */
export async function describePythonEnvAsync(dir: string): Promise<Omit<PythonEnvReport, 'installed'>> {
  return readDescription(dir, await runAsync(environmentPython(dir), ['-c', DESCRIBE]));
}

function environmentPython(dir: string): string {
  const python = venvPython(dir);
  if (!existsSync(python)) throw new PythonEnvError(`No Python environment at ${dir}.`);
  return python;
}

function readDescription(dir: string, probe: Finished): Omit<PythonEnvReport, 'installed'> {
  const python = venvPython(dir);
  if (probe.status !== 0) {
    const reason = probe.stderr.trim().split('\n').at(-1) ?? `exit code ${probe.status}`;
    throw new PythonEnvError(`The Python environment at ${dir} cannot import torch: ${reason}`);
  }
  return { dir, python, ...(JSON.parse(probe.stdout.trim().split('\n').at(-1) ?? '{}') as Omit<PythonEnvReport, 'installed' | 'dir' | 'python'>) };
}

/** One `pip install -r` of a requirement file: the line that tells the user, and pip's arguments. */
interface PipInstall {
  requirement: RequirementFile;
  announce: string;
  args: string[];
}

/**
 * What is left to do: nothing (the environment already holds what the files ask for: a digest of their
 * text and the interpreter's version, written after a successful install), or the pip installs, after
 * making the environment if it does not exist and checking that it has pip.
 */
function planPythonEnv(options: PythonEnvOptions): { upToDate: true } | { upToDate: false; python: string; installs: PipInstall[] } {
  const { dir, requirements, log } = options;
  const stampFile = path.join(dir, STAMP);
  const python = venvPython(dir);
  if (existsSync(python) && existsSync(stampFile)) {
    const current = run(python, ['-c', 'import platform; print(platform.python_version())']);
    if (current.status === 0 && readFileSync(stampFile, 'utf8').trim() === requirementsDigest(requirements, current.stdout.trim())) {
      return { upToDate: true };
    }
  }

  const base = options.python ? { python: options.python, version: '' } : findPython();
  if (!existsSync(python)) {
    log(`Creating a Python virtual environment at ${dir} (with ${base.python})`);
    const made = run(base.python, ['-m', 'venv', dir]);
    if (made.status !== 0) {
      throw new PythonEnvError(`\`${base.python} -m venv ${dir}\` failed: ${made.stderr.trim().split('\n').at(-1)}. ${installHint()}`);
    }
  }
  const pipCheck = run(python, ['-m', 'pip', '--version']);
  if (pipCheck.status !== 0) throw new PythonEnvError(`The environment at ${dir} has no pip. ${installHint()}`);

  // pip retries an unreachable index five times per package with back-off; once is enough to move on
  // to the other configured indexes. PIP_RETRIES, when set, wins.
  const retries = process.env.PIP_RETRIES ? [] : ['--retries', '1'];
  const installs = requirements.map((requirement) => {
    const packages = readFileSync(requirement.file, 'utf8')
      .split('\n')
      .map((line) => line.replace(/#.*/, '').trim())
      .filter(Boolean);
    const args = ['-m', 'pip', 'install', '--disable-pip-version-check', '--progress-bar', 'off', ...retries, '-r', requirement.file];
    if (requirement.noDeps) args.push('--no-deps');
    return { requirement, args, announce: `Installing into ${dir}${requirement.noDeps ? ' (without their dependencies)' : ''}: ${packages.join(', ')}` };
  });
  return { upToDate: false, python, installs };
}

function pipFailure(install: PipInstall, dir: string, stderr: string): PythonEnvError {
  const missing = /No matching distribution found for ([^\s]+)/.exec(stderr)?.[1];
  const detail = missing
    ? `pip found no ${missing} on its configured index (pip config list shows which one)`
    : stderr
        .trim()
        .split('\n')
        .filter((l) => !/^WARNING/.test(l))
        .slice(-3)
        .join(' ');
  return new PythonEnvError(`Installing ${path.basename(install.requirement.file)} into ${dir} failed: ${detail}.`);
}

function stamped(options: PythonEnvOptions, report: Omit<PythonEnvReport, 'installed'>): PythonEnvReport {
  writeFileSync(path.join(options.dir, STAMP), `${requirementsDigest(options.requirements, report.pythonVersion)}\n`);
  return { ...report, installed: true };
}

/**
 * Makes (or brings up to date) a virtual environment with the requirement files installed from pip's
 * configured index. Idempotent: when the environment already holds what the files ask for, nothing is run.
 */
export function ensurePythonEnv(options: PythonEnvOptions): PythonEnvReport {
  const plan = planPythonEnv(options);
  if (plan.upToDate) return { ...describePythonEnv(options.dir), installed: false };
  for (const install of plan.installs) {
    options.log(install.announce);
    const result = spawnSync(plan.python, install.args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (result.status !== 0) throw pipFailure(install, options.dir, result.stderr ?? '');
  }
  return stamped(options, describePythonEnv(options.dir));
}

/**
 * ensurePythonEnv for a process that must keep answering while pip runs (the app's main process): pip and
 * the torch probe run as children, and every line pip prints (Collecting…, Downloading…) goes to `log` as it comes.
 */
export async function ensurePythonEnvAsync(options: PythonEnvOptions): Promise<PythonEnvReport> {
  const plan = planPythonEnv(options);
  if (plan.upToDate) return { ...(await describePythonEnvAsync(options.dir)), installed: false };
  for (const install of plan.installs) {
    options.log(install.announce);
    const result = await runAsync(plan.python, install.args, options.log);
    if (result.status !== 0) throw pipFailure(install, options.dir, result.stderr);
  }
  return stamped(options, await describePythonEnvAsync(options.dir));
}
