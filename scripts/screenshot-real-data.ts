// README screenshots from real data: a default run of the embedded model, then from the Evaluations page a
// bias evaluation of that adapter and the base model on the whole CrowS-Pairs, StereoSet and BBQ files kept
// in a shared data folder (its SOURCE.md files say what each is), and the bias panel at 1280 x 800.
// Everything goes through the product: `lora-workbench serve`, its API for the run, its UI for the rest.
//
//   nice node --import tsx scripts/screenshot-real-data.ts ../shared [--backend wasm] [--out docs]
//
// Writes docs/real-bias-panel.png, docs/real-bias-panel-bbq.png and docs/real-evaluations.png, and prints
// the run, the evaluations and their durations (the README quotes them).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { chromium, type Page } from 'playwright-core';
import { apiClient } from '../test/e2e/api-client.ts';
import type { Run } from '../src-shared/runs.ts';
import { findChromium, manualInstallCommand } from './setup/chromium.ts';

const repo = path.resolve(import.meta.dirname, '..');
const VIEWPORT = { width: 1280, height: 800 };

function usage(message: string): never {
  console.error(`${message}\nUsage: node --import tsx scripts/screenshot-real-data.ts SHARED_DIR [--backend wasm|cpu] [--out DIR]`);
  process.exit(2);
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { backend: { type: 'string', default: 'wasm' }, out: { type: 'string', default: 'docs' } },
});
const shared = positionals[0] ? path.resolve(positionals[0]) : usage('Name the shared folder (the one holding data/crows-pairs, data/stereoset, data/bbq).');
const data = {
  crowsPairs: path.join(shared, 'data', 'crows-pairs', 'crows_pairs_anonymized.csv'),
  stereoSet: path.join(shared, 'data', 'stereoset'),
  bbq: path.join(shared, 'data', 'bbq'),
};
for (const file of Object.values(data)) if (!existsSync(file)) usage(`Missing ${file}.`);
if (!existsSync(path.join(repo, 'out', 'renderer', 'index.html'))) usage('Build the renderer first: npm run build:renderer');
const browserPath = findChromium()?.path ?? usage(`No Chromium found: ${manualInstallCommand()}, or set CHROMIUM_PATH.`);
const outDir = path.resolve(repo, values.out!);
const backend = values.backend!;

/** `lora-workbench serve` on a fresh data folder; resolves with its URL once it prints it. */
async function serve(dataDir: string) {
  const child = spawn(process.execPath, [path.join(repo, 'bin', 'lora-workbench.mjs'), 'serve', '--port', '0', '--no-open', '--data-dir', dataDir], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const match = /^Workbench: (\S+)/.exec(line);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`lora-workbench serve exited (${code}) before it was ready`)));
  });
  return { child, url };
}

/** The default run (the embedded model and sample dataset, every setting at its default) to completion. */
async function trainDefaultRun(url: string): Promise<Run> {
  const api = await apiClient(url);
  try {
    const started = await api.call<Run>('runs.start', { name: 'default-run', backend });
    for (;;) {
      const run = await api.call<Run>('runs.get', started.id);
      if (run.status === 'completed' && run.adapterId) return run;
      if (run.status !== 'running' && run.status !== 'queued') throw new Error(`The run ended ${run.status}: ${run.error}`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  } finally {
    api.close();
  }
}

/** Waits until the Evaluations page lists `count` completed rows, printing progress each minute. */
async function waitForEvaluations(page: Page, count: number): Promise<void> {
  const rows = page.getByTestId('eval-row');
  let lastReport = 0;
  for (;;) {
    const statuses = await rows.evaluateAll((els) => els.map((el) => el.getAttribute('data-status')));
    if (statuses.some((s) => s === 'failed' || s === 'stopped'))
      throw new Error(`An evaluation did not complete: ${(await rows.allTextContents()).join('\n')}`);
    if (statuses.length === count && statuses.every((s) => s === 'completed')) return;
    if (Date.now() - lastReport > 60_000) {
      lastReport = Date.now();
      const progress = await page
        .getByTestId('eval-progress')
        .evaluateAll((els) => els.map((el) => `${(el as HTMLProgressElement).value}/${(el as HTMLProgressElement).max}`));
      console.log(`${new Date().toISOString()} evaluations: ${statuses.join(', ')} ${progress.join(' ')}`);
    }
    await page.waitForTimeout(2000);
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(0)} s`;
const dataDir = mkdtempSync(path.join(tmpdir(), 'lora-workbench-screenshots-'));
const server = await serve(dataDir);
const browser = await chromium.launch({ executablePath: browserPath, args: ['--no-sandbox', '--disable-gpu'] });
try {
  const began = Date.now();
  const run = await trainDefaultRun(server.url);
  const trained = Date.now();
  console.log(`Run ${run.id} (${run.name}): ${run.config.training.maxSteps} steps on ${backend} in ${seconds(trained - began)}`);

  const page = await browser.newPage({ viewport: VIEWPORT });
  await page.goto(server.url);
  await page.getByTestId('nav-evals').click();
  await page.getByTestId('new-eval-button').click();
  await page.getByTestId('eval-suite').selectOption('bias');
  await page.getByTestId('eval-subject').selectOption({ label: `${run.name} (lora) + base model` });
  await page.getByTestId('eval-path-crowsPairs').fill(data.crowsPairs);
  await page.getByTestId('eval-path-stereoSet').fill(data.stereoSet);
  await page.getByTestId('eval-path-bbq').fill(data.bbq);
  // No limit: every row of every file.
  await page.getByTestId('eval-limit').fill('');
  await page.getByTestId('eval-backend').selectOption(backend);
  await page.getByTestId('start-eval').click();
  await page.getByTestId('eval-form').waitFor({ state: 'detached', timeout: 60_000 });
  await waitForEvaluations(page, 2);
  const evaluated = Date.now();
  console.log(`Bias evaluations of the adapter and the base model on ${Object.values(data).join(', ')}: ${seconds(evaluated - trained)}`);

  mkdirSync(outDir, { recursive: true });
  await page.screenshot({ path: path.join(outDir, 'real-evaluations.png') });
  const adapterRow = page.locator(`[data-testid="eval-row"][data-suite="bias"][data-adapter-id="${run.adapterId}"]`);
  await adapterRow.getByTestId('open-panel').click();
  await page.getByTestId('bias-panel').waitFor();
  await page.getByTestId('chart-crows').locator('canvas').waitFor();
  // Charts animate in: the picture waits for them to settle.
  await page.waitForTimeout(1500);
  await page.screenshot({ path: path.join(outDir, 'real-bias-panel.png') });
  await page.getByTestId('chart-bbq-acc-ambig').scrollIntoViewIfNeeded();
  await page.waitForTimeout(1000);
  await page.screenshot({ path: path.join(outDir, 'real-bias-panel-bbq.png') });
  console.log(`Summary:\n${await page.getByTestId('bias-summary').innerText()}`);
  console.log(`Screenshots in ${outDir}: real-evaluations.png, real-bias-panel.png, real-bias-panel-bbq.png`);
} finally {
  await browser.close();
  server.child.kill('SIGTERM');
  await new Promise((resolve) => server.child.once('exit', resolve));
  rmSync(dataDir, { recursive: true, force: true });
}
