// The set-up step that `npm test` (and the suites that need Python) run first: each outside tool is
// taken from what is installed, else installed the way this machine allows, else named with the exact
// command to run. Idempotent: a second run finds everything and installs nothing.
//   node --import tsx scripts/setup/index.ts chromium python
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensurePythonEnv, PythonEnvError } from '../../src-main/engines/python-env.ts';
import { chromiumVersion, findChromium, installChromium, manualInstallCommand } from './chromium.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const log = (line: string) => console.log(`[setup] ${line}`);

/** The test environment: $LORA_WORKBENCH_TEST_VENV, else .venv in the repository. */
export const testVenvDir = () => process.env.LORA_WORKBENCH_TEST_VENV ?? path.join(root, '.venv');

function setUpChromium(): boolean {
  let browser = findChromium();
  if (!browser) {
    log('No Chromium or Chrome found for the end-to-end tests.');
    browser = installChromium(log);
    if (!browser) {
      console.error(`[setup] Could not install a browser. Run \`${manualInstallCommand()}\`, or set CHROMIUM_PATH to a Chromium or Chrome you have.`);
      return false;
    }
  }
  log(`Chromium: ${browser.path} (${chromiumVersion(browser.path)}, from ${browser.source})`);
  return true;
}

function setUpPython(): boolean {
  const requirements = [
    { file: path.join(root, 'engine-torch', 'requirements.txt') },
    { file: path.join(root, 'engine-torch', 'requirements-test.txt') },
    { file: path.join(root, 'engine-torch', 'requirements-test-nodeps.txt'), noDeps: true },
  ];
  try {
    const started = Date.now();
    const env = ensurePythonEnv({ dir: testVenvDir(), requirements, log });
    const took = env.installed ? `, installed in ${((Date.now() - started) / 1000).toFixed(0)} s` : ', up to date';
    log(
      `Python: ${env.python} (Python ${env.pythonVersion}, torch ${env.torch}, transformers ${env.transformers}, peft ${env.peft}, ${env.accelerator}${took})`,
    );
    return true;
  } catch (error) {
    if (!(error instanceof PythonEnvError)) throw error;
    console.error(`[setup] ${error.message}`);
    return false;
  }
}

const steps: Record<string, () => boolean> = { chromium: setUpChromium, python: setUpPython };
const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !Object.hasOwn(steps, name));
if (wanted.length === 0 || unknown.length) {
  console.error(
    `Usage: node --import tsx scripts/setup/index.ts ${Object.keys(steps).join('|')} [...]${unknown.length ? ` (unknown: ${unknown.join(', ')})` : ''}`,
  );
  process.exit(2);
}
for (const name of wanted) if (!steps[name]()) process.exit(1);
