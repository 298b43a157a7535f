// Issue 15, findings 4 and 6 in the renderer, against the in-page fake API (fake-workbench.ts): every page
// fits a 1280 x 800 window (Electron's default) without horizontal scrolling, Start stays in view on
// New run, and runs and adapters are deleted after a confirmation; "New run from this one" starts from a
// run's settings. Screenshots of each page at that size go to test-results/e2e/screens/.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { defaultRunConfig } from '../../src-shared/config.ts';
import { methodDescriptors } from '../../src-shared/methods.ts';
import type { Adapter, Run } from '../../src-shared/runs.ts';
import { installFakeWorkbench, type FakeSeed } from './fake-workbench.ts';

const rendererDir = path.join(import.meta.dirname, '..', '..', 'out', 'renderer');
const screens = path.join(import.meta.dirname, '..', '..', 'test-results', 'e2e', 'screens');
const ORIGIN = 'http://workbench.test';

test.use({ viewport: { width: 1280, height: 800 } });

test.beforeAll(() => {
  if (!existsSync(path.join(rendererDir, 'index.html'))) throw new Error('Build the renderer first: npm run build:renderer');
});

let pageErrors: string[] = [];
test.beforeEach(({ page }) => {
  pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
});
test.afterEach(() => expect(pageErrors).toEqual([]));

function makeRun(id: string, name: string, patch: Partial<Run> = {}): Run {
  const config = { ...defaultRunConfig(), name, model: '/home/someone/models/a-rather-long-model-folder-name/TinyLlama-1.1B-Chat-v1.0' };
  return {
    id, name, config, status: 'completed', backend: { name: 'wasm', adapter: 'XNNPACK (wasm SIMD)' },
    createdAt: '2025-01-02T10:00:00.000Z', startedAt: '2025-01-02T10:00:01.000Z', finishedAt: '2025-01-02T10:05:00.000Z', error: null,
    progress: { step: 120, maxSteps: 120, tokensPerSecond: 900, stepTimeMs: 120, etaSeconds: 0 }, lastCheckpointStep: 120, adapterId: `ad-${id}`,
    ...patch,
  };
}

function makeAdapter(run: Run): Adapter {
  return {
    id: `ad-${run.id}`, runId: run.id, name: run.name, method: 'bias-aware', baseModel: run.config.model, path: `/data/runs/${run.id}/adapter`, step: 120,
    trainableParams: 294_912, createdAt: '2025-01-02T10:05:00.000Z',
    description: 'Answers questions about colours of everyday objects, politely, in full sentences, with a short justification',
  };
}

async function open(page: Page, hash: string): Promise<void> {
  const runs = [makeRun('run-1', 'colour questions with a long descriptive run name'), makeRun('run-2', 'second run')];
  const seed: FakeSeed = {
    defaults: defaultRunConfig(), methods: methodDescriptors, installedBackends: ['wasm', 'cpu'], runs, adapters: runs.map(makeAdapter), stepMs: 40,
  };
  await page.route(`${ORIGIN}/**`, (route) => {
    const pathname = new URL(route.request().url()).pathname;
    const file = path.join(rendererDir, pathname === '/' ? 'index.html' : pathname);
    if (!file.startsWith(rendererDir) || !existsSync(file)) return route.fulfill({ status: 404, body: 'not found' });
    return route.fulfill({ path: file });
  });
  await page.addInitScript(installFakeWorkbench, seed);
  await page.goto(`${ORIGIN}/${hash}`);
}

const pages: [string, string, string][] = [
  ['runs', '#/runs', 'Runs'],
  ['new-run', '#/runs/new', 'New run'],
  ['run', '#/runs/run-1', 'colour questions with a long descriptive run name'],
  ['adapters', '#/adapters', 'Adapters'],
  ['datasets', '#/datasets', 'Datasets'],
  ['evaluations', '#/evals', 'Evaluations'],
  ['playground', '#/playground', 'Playground'],
  ['compare', '#/compare?runs=run-1,run-2', 'Compare'],
];

for (const [name, hash, heading] of pages) {
  test(`${name} fits 1280 x 800 without horizontal scrolling`, async ({ page }) => {
    await open(page, hash);
    await expect(page.locator('h1').first()).toContainText(heading);
    await page.waitForLoadState('networkidle');
    const { scrollWidth, clientWidth } = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth }));
    await page.screenshot({ path: path.join(screens, `${name}.png`) });
    expect(scrollWidth, `${name} is ${scrollWidth} px wide`).toBeLessThanOrEqual(clientWidth);
  });
}

test('Start is in view on New run before any scrolling', async ({ page }) => {
  await open(page, '#/runs/new');
  await expect(page.getByTestId('start-run')).toBeInViewport();
});

test('a run is deleted after a confirmation, and "New run from this one" starts from its settings', async ({ page }) => {
  await open(page, '#/runs/run-2');
  await page.getByTestId('new-run-from').click();
  await expect(page.getByTestId('field-name')).toHaveValue('second run (again)');

  await page.goto(`${ORIGIN}/#/runs/run-2`);
  // Dismissed: nothing happens.
  page.once('dialog', (dialog) => void dialog.dismiss());
  await page.getByTestId('delete-run').click();
  await expect(page.getByTestId('run-name')).toHaveText('second run');
  page.once('dialog', (dialog) => {
    expect(dialog.message()).toMatch(/Delete run "second run" with its folder/);
    void dialog.accept();
  });
  await page.getByTestId('delete-run').click();
  await expect(page).toHaveURL(/#\/runs$/);
  await expect(page.getByText('second run', { exact: true })).toHaveCount(0);
  await expect(page.getByTestId('data-usage')).toContainText('Data folder /data takes 11.8 MiB');

  await page.goto(`${ORIGIN}/#/adapters`);
  await expect(page.getByTestId('delete-adapter')).toHaveCount(1);
  page.once('dialog', (dialog) => void dialog.accept());
  await page.getByTestId('delete-adapter').click();
  await expect(page.getByTestId('delete-adapter')).toHaveCount(0);
});
