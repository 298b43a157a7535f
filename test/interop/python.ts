// The Python environment the interop tests hand their referee work to: real PyTorch, transformers,
// PEFT and lm-evaluation-harness. LORA_WORKBENCH_PYTHON names its interpreter; otherwise the test
// environment that `npm run setup:python` makes (pretest:interop runs it; src-main/engines/python-env.ts). Absent or incomplete, the tests fail naming
// what is missing rather than skipping: a referee that silently stays home proves nothing.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { venvPython } from '../../src-main/engines/python-env.ts';
import { findAppRoot } from '../../src-main/paths.ts';

export const repoRoot = findAppRoot(import.meta.dirname);

/** $LORA_WORKBENCH_PYTHON, else the test environment the set-up step makes ($LORA_WORKBENCH_TEST_VENV or .venv). */
export function interopPython(): string {
  return process.env.LORA_WORKBENCH_PYTHON || venvPython(process.env.LORA_WORKBENCH_TEST_VENV ?? path.join(repoRoot, '.venv'));
}

/**
 * The interpreter, once every module in `modules` imports; otherwise an Error naming the interpreter
 * and each missing module (import name and the error Python gave).
 */
export function requirePython(modules: string[]): string {
  const python = interopPython();
  if (!fs.existsSync(python)) {
    throw new Error(
      `No Python environment at ${python}. The interop tests need ${modules.join(', ')}: set LORA_WORKBENCH_PYTHON to an interpreter that has them, or run "npm run setup:python" to make the repo's .venv.`,
    );
  }
  const probe = `import importlib, json\nmissing = {}\nfor m in ${JSON.stringify(modules)}:\n    try:\n        importlib.import_module(m)\n    except Exception as e:\n        missing[m] = f"{type(e).__name__}: {e}"\nprint(json.dumps(missing))`;
  const missing = JSON.parse(execFileSync(python, ['-c', probe], { encoding: 'utf8' })) as Record<string, string>;
  const names = Object.keys(missing);
  if (names.length) {
    throw new Error(
      `${python} lacks the Python package${names.length > 1 ? 's' : ''} ${names.join(', ')} (${names.map((n) => `${n}: ${missing[n]}`).join('; ')}). Install ${names.join(' ')} into that environment.`,
    );
  }
  return python;
}

/** Runs a script of this folder with `args`; its stderr is passed through on failure. */
export function runPythonScript(python: string, script: string, args: string[], options: { cwd?: string; timeoutMs?: number } = {}): string {
  try {
    return execFileSync(python, [path.join(import.meta.dirname, script), ...args], {
      encoding: 'utf8',
      cwd: options.cwd ?? repoRoot,
      timeout: options.timeoutMs ?? 600_000,
      maxBuffer: 256 * 1024 * 1024,
      env: {
        ...process.env,
        HF_HUB_OFFLINE: '1',
        TRANSFORMERS_OFFLINE: '1',
        HF_DATASETS_OFFLINE: '1',
        TOKENIZERS_PARALLELISM: 'false',
        HF_HUB_DISABLE_PROGRESS_BARS: '1',
        TRANSFORMERS_VERBOSITY: 'error',
        TQDM_DISABLE: '1',
      },
    });
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`${script} failed: ${e.stderr?.split('\n').slice(-30).join('\n') || e.message}`);
  }
}
