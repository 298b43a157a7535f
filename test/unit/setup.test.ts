import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ensurePythonEnv, findPython, PythonEnvError, venvPython } from '../../src-main/engines/python-env.ts';
import { findChromium } from '../../scripts/setup/chromium.ts';

const saved = { ...process.env };
afterEach(() => {
  process.env = { ...saved };
});

/** A stand-in interpreter: answers the version probe, and the describe probe with a fixed report. */
function fakePython(dir: string, version: string): string {
  const file = path.join(dir, 'python');
  const report = JSON.stringify({ pythonVersion: version, torch: '9.9.9', transformers: '5.0', peft: '0.1', accelerator: 'cpu', deviceName: null });
  writeFileSync(
    file,
    `#!/bin/sh\ncase "$2" in\n  *torch*) echo '${report}' ;;\n  *version_info*) echo ${version} ;;\n  *python_version*) echo ${version} ;;\n  *) echo "unexpected: $*" >&2; exit 3 ;;\nesac\n`,
  );
  chmodSync(file, 0o755);
  return file;
}

describe('set-up of outside tools', () => {
  it('takes the browser from CHROMIUM_PATH, and says so when that path does not exist', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'chromium-'));
    const browser = path.join(dir, 'chrome');
    writeFileSync(browser, '');
    process.env.CHROMIUM_PATH = browser;
    expect(findChromium()).toEqual({ path: browser, source: 'CHROMIUM_PATH' });
    process.env.CHROMIUM_PATH = path.join(dir, 'absent');
    expect(() => findChromium()).toThrow(/CHROMIUM_PATH is .*absent, which does not exist/);
  });

  it('refuses a Python older than 3.9 with what to install', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'python-'));
    process.env.LORA_WORKBENCH_PYTHON = fakePython(dir, '3.8.10');
    process.env.PATH = dir; // no python3 or python beside the old one
    expect(() => findPython()).toThrow(PythonEnvError);
    expect(() => findPython()).toThrow(/No Python 3\.9 or newer was found .*3\.8\.10.*Install Python 3/);
  });

  it('installs nothing when the environment already holds what the requirement files ask for', () => {
    const venv = mkdtempSync(path.join(os.tmpdir(), 'venv-'));
    mkdirSync(path.dirname(venvPython(venv)), { recursive: true });
    fakePython(path.dirname(venvPython(venv)), '3.11.7');
    const requirements = path.join(venv, 'requirements.txt');
    writeFileSync(requirements, 'torch\n');
    const lines: string[] = [];
    // The first call finds no stamp and must run pip, which the stand-in refuses: it is an error.
    expect(() => ensurePythonEnv({ dir: venv, requirements: [{ file: requirements }], log: (l) => lines.push(l) })).toThrow(/no pip/);
    // A stamp for exactly these files and this interpreter: up to date, no install line logged.
    const digest = createHash('sha256').update('3.11.7').update(`deps\0torch\n\0`).digest('hex');
    writeFileSync(path.join(venv, '.workbench-requirements.sha256'), `${digest}\n`);
    lines.length = 0;
    const report = ensurePythonEnv({ dir: venv, requirements: [{ file: requirements }], log: (l) => lines.push(l) });
    expect(report).toMatchObject({ installed: false, torch: '9.9.9', accelerator: 'cpu' });
    expect(lines).toEqual([]);
    // Another requirement: the stamp no longer matches, so the install runs again.
    writeFileSync(requirements, 'torch\npeft\n');
    expect(() => ensurePythonEnv({ dir: venv, requirements: [{ file: requirements }], log: (l) => lines.push(l) })).toThrow(/no pip/);
  });
});
