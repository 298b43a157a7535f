// Issue 12, item 1: engines.pytorch, the New run page's view of the pytorch engine's environment and its
// "Set up" button, through the validated API. The environment's interpreter is a stand-in script (as in
// setup.test.ts): no real pip install runs here.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dispatch, type PytorchEnvironment, type RunEvent, type WorkbenchApi } from '../../src-shared/api.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { venvPython } from '../../src-main/engines/python-env.ts';
import { pytorchEnvDir } from '../../src-main/engines/pytorch-engine.ts';
import type { WorkbenchPaths } from '../../src-main/paths.ts';
import { openTestWorkbench, type TestWorkbench } from '../helpers/workbench.ts';

const saved = { ...process.env };
let workbench: TestWorkbench;
let root: string;
let paths: WorkbenchPaths;
let api: WorkbenchApi;
let events: RunEvent[];

beforeEach(() => {
  workbench = openTestWorkbench('lw-pytorch-env-');
  ({ root, paths, api } = workbench);
  events = [];
  api.onRunEvent((event) => events.push(event));
});
afterEach(async () => {
  process.env = { ...saved };
  await workbench.close();
});

const call = (setUp: boolean) => dispatch(api, 'engines.pytorch', { setUp }) as Promise<PytorchEnvironment>;

/**
 * A stand-in for the environment's interpreter. Its pip install prints "Collecting torch", then waits
 * (up to 5 s) for the file `go`, which the test writes when that line has reached it as an event: the
 * install only succeeds if its lines stream while pip runs and the main thread is free to hand them on.
 */
function fakeEnvironment(options: { pip: boolean }): { go: string; installs: string } {
  const dir = pytorchEnvDir(paths);
  const python = venvPython(dir);
  mkdirSync(path.dirname(python), { recursive: true });
  const go = path.join(root, 'go');
  const installs = path.join(root, 'installs');
  const report = JSON.stringify({ pythonVersion: '3.11.7', torch: '9.9.9', transformers: '5.0', peft: '0.21', accelerator: 'cpu', deviceName: null });
  writeFileSync(
    python,
    [
      '#!/bin/sh',
      'if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then',
      `  [ "$3" = "--version" ] && { ${options.pip ? 'echo "pip 24.0"; exit 0' : 'echo "No module named pip" >&2; exit 1'}; }`,
      `  echo install >> '${installs}'`,
      '  echo "Collecting torch"',
      '  i=0',
      `  while [ ! -f '${go}' ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done`,
      `  [ -f '${go}' ] || { echo "ERROR: nobody read the first line" >&2; exit 1; }`,
      '  echo "Successfully installed torch-9.9.9"',
      '  exit 0',
      'fi',
      'case "$2" in',
      `  *torch*) echo '${report}' ;;`,
      '  *version_info*|*python_version*) echo 3.11.7 ;;',
      '  *) echo "unexpected: $*" >&2; exit 3 ;;',
      'esac',
      '',
    ].join('\n'),
  );
  chmodSync(python, 0o755);
  process.env.LORA_WORKBENCH_PYTHON = python;
  return { go, installs };
}

describe.skipIf(process.platform === 'win32')('engines.pytorch', () => {
  it("says the environment is not set up, then sets it up streaming pip's lines, then reports torch and the accelerator", async () => {
    const missing = await call(false);
    expect(missing).toEqual({ ready: false, dir: pytorchEnvDir(paths), problem: `No Python environment at ${pytorchEnvDir(paths)}.` });

    const { go, installs } = fakeEnvironment({ pip: true });
    const lines = () => events.flatMap((e) => (e.kind === 'engine-setup' ? [e.line] : []));
    api.onRunEvent((event) => {
      if (event.kind === 'engine-setup' && event.line === 'Collecting torch') writeFileSync(go, '');
    });
    // A second click while pip runs waits for the same set-up rather than starting pip again.
    const [report, again] = await Promise.all([call(true), call(true)]);
    expect(report).toMatchObject({ ready: true, torch: '9.9.9', accelerator: 'cpu', pythonVersion: '3.11.7', installed: true });
    expect(again).toEqual(report);
    expect(readFileSync(installs, 'utf8').trim().split('\n')).toHaveLength(1);
    expect(lines()[0]).toMatch(/^Installing into .*engines.pytorch: torch>=[\d.]+, transformers>=[\d.]+, peft/);
    expect(lines()).toContain('Collecting torch');
    expect(lines()).toContain('Successfully installed torch-9.9.9');

    // Set up: the page's look, and another Set up, find it ready without running pip.
    expect(await call(false)).toMatchObject({ ready: true, torch: '9.9.9', installed: false });
    expect(await call(true)).toMatchObject({ ready: true, installed: false });
    expect(readFileSync(installs, 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('without pip: one error that says what to install', async () => {
    const { installs } = fakeEnvironment({ pip: false });
    await expect(call(true)).rejects.toMatchObject({ code: 'backend_unavailable', message: expect.stringMatching(/has no pip\. Install Python 3/) });
    expect(existsSync(installs)).toBe(false);
  });

  it('without Python: one error that says what to install', async () => {
    const empty = mkdtempSync(path.join(root, 'no-python-'));
    process.env.LORA_WORKBENCH_PYTHON = path.join(empty, 'python3');
    process.env.PATH = empty;
    await expect(call(true)).rejects.toMatchObject({
      code: 'backend_unavailable',
      message: expect.stringMatching(/No Python 3\.9 or newer was found\. Install Python 3/),
    });
  });

  it('refuses an input that is not the request', async () => {
    await expect(dispatch(api, 'engines.pytorch', { setUp: 'yes' })).rejects.toBeInstanceOf(WorkbenchError);
    await expect(dispatch(api, 'engines.pytorch', { setUp: 'yes' })).rejects.toMatchObject({ code: 'invalid_input' });
  });
});
