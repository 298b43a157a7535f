// The renderer's behaviour in every state a run can be in, against the in-page fake API (fake-workbench.ts):
// fast and independent of the engine. workbench.spec.ts does the same journey against the real server.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { defaultRunConfig } from '../../src-shared/config.ts';
import { methodDescriptors } from '../../src-shared/methods.ts';
import type { Adapter, Run } from '../../src-shared/runs.ts';
import { installFakeWorkbench, type FakeSeed } from './fake-workbench.ts';

const rendererDir = path.join(import.meta.dirname, '..', '..', 'out', 'renderer');
const ORIGIN = 'http://workbench.test';

test.beforeAll(() => {
  if (!existsSync(path.join(rendererDir, 'index.html'))) throw new Error('Build the renderer first: npm run build:renderer');
});

// Any uncaught exception or console error in the page fails the test that caused it.
let pageErrors: string[] = [];
test.beforeEach(({ page }) => {
  pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text());
  });
});
test.afterEach(() => expect(pageErrors).toEqual([]));

/** Serves out/renderer at a made-up origin: module scripts do not load from file:// in a plain browser. */
async function serveRenderer(page: Page): Promise<void> {
  await page.route(`${ORIGIN}/**`, (route) => {
    const pathname = new URL(route.request().url()).pathname;
    const file = path.join(rendererDir, pathname === '/' ? 'index.html' : pathname);
    if (!file.startsWith(rendererDir) || !existsSync(file)) return route.fulfill({ status: 404, body: 'not found' });
    return route.fulfill({ path: file });
  });
}

function makeRun(id: string, patch: Partial<Run>): Run {
  const config = defaultRunConfig();
  return {
    id,
    name: id,
    config,
    status: 'completed',
    backend: { name: 'cpu', adapter: 'JavaScript' },
    createdAt: '2025-01-02T10:00:00.000Z',
    startedAt: '2025-01-02T10:00:01.000Z',
    finishedAt: '2025-01-02T10:05:00.000Z',
    error: null,
    progress: { step: 60, maxSteps: config.training.maxSteps, tokensPerSecond: 900, stepTimeMs: 120, etaSeconds: 0 },
    lastCheckpointStep: 60,
    adapterId: null,
    ...patch,
  };
}

async function open(page: Page, seed: Partial<FakeSeed> = {}, hash = '#/runs'): Promise<void> {
  const full: FakeSeed = {
    defaults: defaultRunConfig(),
    methods: methodDescriptors,
    installedBackends: ['wasm', 'cpu'],
    runs: [],
    adapters: [],
    stepMs: 40,
    ...seed,
  };
  await serveRenderer(page);
  await page.addInitScript(installFakeWorkbench, full);
  await page.goto(`${ORIGIN}/${hash}`);
}

const counts = async (page: Page, testid: string) =>
  ((await page.getByTestId(testid).getAttribute('data-counts')) ?? '').split(',').filter(Boolean).map(Number);

test('the New run form is generated from the method descriptor and checked with the run schema', async ({ page }) => {
  await open(page);
  await expect(page.getByTestId('runs-empty')).toBeVisible();
  await page.getByTestId('new-run-button').click();
  await expect(page).toHaveURL(/#\/runs\/new$/);

  // One input per descriptor field, bound to config.lora, showing the catalog defaults.
  for (const field of methodDescriptors[0]!.fields) await expect(page.getByTestId(`field-lora.${field.key}`)).toBeVisible();
  await expect(page.getByTestId('field-lora.r')).toHaveValue(String(defaultRunConfig().lora.r));
  await expect(page.getByTestId('field-lora.targetModules')).toHaveValue(defaultRunConfig().lora.targetModules.join(', '));
  await expect(page.getByTestId('backend-select').locator('option[value="webgpu"]')).toBeDisabled();

  const maxSteps = page.getByTestId('field-training.maxSteps');
  const start = page.getByTestId('start-run');
  await maxSteps.fill('0');
  await expect(page.getByTestId('field-training.maxSteps-error')).toHaveText('Must be at least 1.');
  await expect(start).toBeDisabled();
  await maxSteps.fill('2.5');
  await expect(page.getByTestId('field-training.maxSteps-error')).toHaveText('Enter a whole number.');
  await maxSteps.fill('');
  await expect(page.getByTestId('field-training.maxSteps-error')).toHaveText('Enter a number.');
  await maxSteps.fill('12');
  await expect(page.getByTestId('field-training.maxSteps-error')).toHaveCount(0);

  await page.getByTestId('field-lora.targetModules').fill(' , ');
  await expect(page.getByTestId('field-lora.targetModules-error')).toHaveText('Give at least 1.');
  await page.getByTestId('field-lora.targetModules').fill('c_attn, c_proj, c_fc');
  await page.getByTestId('field-lora.useRslora').check();
  await page.getByTestId('field-lora.dropout').fill('0.95');
  await expect(page.getByTestId('field-lora.dropout-error')).toHaveText('Must be at most 0.9.');
  await page.getByTestId('field-lora.dropout').fill('0.1');
  await expect(start).toBeEnabled();

  await start.click();
  await expect(page).toHaveURL(/#\/runs\/run-1$/);
  const config = JSON.parse((await page.getByTestId('run-config').textContent())!);
  expect(config.lora).toMatchObject({ targetModules: ['c_attn', 'c_proj', 'c_fc'], useRslora: true, dropout: 0.1 });
  expect(config.training.maxSteps).toBe(12);
});

test('a run trains live, stops, resumes from its checkpoint and exports', async ({ page }) => {
  await open(page, {}, '#/runs/new');
  await page.getByTestId('field-training.maxSteps').fill('40');
  await page.getByTestId('field-training.evalEvery').fill('10');
  await page.getByTestId('field-training.checkpointEvery').fill('10');
  await page.getByTestId('start-run').click();

  await expect(page.getByTestId('run-status')).toHaveText('running');
  await expect.poll(async () => (await counts(page, 'loss-chart'))[0] ?? 0).toBeGreaterThan(12);
  await expect(page.getByTestId('backend')).toContainText('cpu');
  await expect(page.getByTestId('tokens-per-second')).not.toHaveText('—');
  await page.getByTestId('stop-run').click();
  await expect(page.getByTestId('run-status')).toHaveText('stopped');
  await expect(page.getByTestId('stop-run')).toHaveCount(0);

  const resume = page.getByTestId('resume-run');
  await expect(resume).toHaveText(/Resume from step (10|20|30)/);
  await expect(page.getByTestId('export-run')).toHaveText('Export checkpoint');
  await resume.click();
  await expect(page.getByTestId('run-status')).toHaveText('completed', { timeout: 20_000 });

  // Steps redone after the resume replace the old points: 40 train points, validation at 10/20/30/40.
  await expect.poll(() => counts(page, 'loss-chart')).toEqual([40, 4]);
  await expect.poll(() => counts(page, 'lr-chart')).toEqual([40]);
  await expect(page.getByTestId('metric-chart-grad_norm')).toBeVisible();
  await expect(page.getByTestId('step')).toContainText('40 / 40');

  await page.getByTestId('export-run').click();
  const report = page.getByTestId('export-report');
  await expect(report).toBeVisible();
  await expect(page.getByTestId('export-verification')).toHaveText('Verification passed');
  await expect(report.getByTestId('export-file')).toHaveCount(2);

  // The list shows the run with its last training loss, kept current from events.
  await page.getByTestId('nav-runs').click();
  const row = page.getByTestId('run-row');
  await expect(row).toHaveCount(1);
  await expect(row.getByText('completed')).toBeVisible();
  await expect(row.locator('td').nth(5)).not.toHaveText('—');
});

test('failed and interrupted runs show the whole error and what to do', async ({ page }) => {
  const failed = makeRun('failed-run', {
    status: 'failed',
    error: 'Out of memory while allocating 512 MiB on webgpu. Lower the batch size or the sequence length.',
    lastCheckpointStep: 20,
  });
  const interrupted = makeRun('interrupted-run', { status: 'interrupted', lastCheckpointStep: null, createdAt: '2025-01-01T09:00:00.000Z' });
  await open(page, { runs: [failed, interrupted] });

  await expect(page.getByTestId('run-row')).toHaveCount(2);
  await page.getByTestId('run-row').filter({ hasText: 'failed-run' }).click();
  await expect(page.getByTestId('run-error-message')).toHaveText(failed.error!);
  await expect(page.getByTestId('run-error')).toContainText('training continues from the checkpoint at step 20');
  await expect(page.getByTestId('resume-run')).toHaveText('Resume from step 20');

  await page.goto(`${ORIGIN}/#/runs/interrupted-run`);
  await expect(page.getByTestId('run-interrupted')).toContainText('saved no checkpoint');
  await expect(page.getByTestId('resume-run')).toHaveCount(0);
  await expect(page.getByTestId('export-run')).toHaveCount(0);

  await page.goto(`${ORIGIN}/#/runs/no-such-run`);
  await expect(page.getByTestId('error')).toContainText('No run with id no-such-run.');
});

test('a rejected start shows the error code, message and hint', async ({ page }) => {
  await open(page, {}, '#/runs/new');
  await page.getByTestId('field-training.batchSize').fill('128');
  await page.getByTestId('start-run').click();
  const panel = page.getByTestId('start-error');
  await expect(panel).toContainText('out_of_memory');
  await expect(panel).toContainText('Out of memory at batch size 128. Lower the batch size.');
  await expect(panel).toContainText('What to do:');
  await expect(page).toHaveURL(/#\/runs\/new$/);
});

test('the adapters page lists adapters and exports one', async ({ page }) => {
  const adapter: Adapter = {
    id: 'adapter-1',
    runId: 'done',
    name: 'qa-lora',
    method: 'lora',
    baseModel: '/models/gpt2',
    path: '/data/runs/done/adapter',
    step: 60,
    trainableParams: 294912,
    createdAt: '2025-01-02T10:05:00.000Z',
    description: null,
  };
  await open(page, { runs: [makeRun('done', { adapterId: 'adapter-1' })], adapters: [adapter] }, '#/adapters');
  const table = page.getByTestId('adapters-table');
  await expect(table).toContainText('qa-lora');
  await expect(table).toContainText('294,912');
  await expect(table).toContainText('gpt2');
  await table.getByTestId('export-adapter').click();
  await expect(page.getByTestId('export-outdir')).toHaveText('/data/exports/qa-lora');
  await expect(page.getByTestId('export-verification')).toHaveText('Verification passed');
});

test('the adapters page describes an adapter and generates one from a description (SG-LoRA)', async ({ page }) => {
  const adapter: Adapter = {
    id: 'adapter-1',
    runId: 'done',
    name: 'speller',
    method: 'lora',
    baseModel: '/models/gpt2',
    path: '/data/runs/done/adapter',
    step: 60,
    trainableParams: 294912,
    createdAt: '2025-01-02T10:05:00.000Z',
    description: null,
  };
  await open(page, { runs: [makeRun('done', { adapterId: 'adapter-1' })], adapters: [adapter] }, '#/adapters');
  const row = page.getByTestId('adapter-row').filter({ hasText: 'speller' });
  await row.getByTestId('description-edit').click();
  await row.getByTestId('description-input').fill('Spell a word letter by letter.');
  await row.getByTestId('description-save').click();
  await expect(row.getByTestId('description-text')).toHaveText('Spell a word letter by letter.');

  const form = page.getByTestId('generate-adapter');
  await form.getByTestId('generate-name').fill('speller-2');
  await form.getByTestId('generate-description').fill('Spell words.');
  await form.getByTestId('generate-topk').fill('1');
  await form.getByTestId('generate-generator').selectOption('cvae');
  await form.getByTestId('generate-samples').fill('2');
  await form.getByTestId('generate-submit').click();
  const report = page.getByTestId('generate-report');
  await expect(report.getByTestId('generate-expert')).toHaveCount(1);
  await expect(report.getByTestId('generate-expert')).toContainText('speller');
  await expect(report).toContainText('(kept)');
  await expect(page.getByTestId('adapter-row').filter({ hasText: 'speller-2' })).toContainText('sg-lora');

  const generated = page.getByTestId('adapter-row').filter({ hasText: 'speller-2' });
  await generated.getByTestId('export-format').selectOption('merged');
  await generated.getByTestId('export-adapter').click();
  await expect(page.getByTestId('export-verification')).toHaveText('Verification passed');
  await page.screenshot({ path: 'test-results/adapters-sg-lora.png', fullPage: true });
});

test('browser mode without a token says which URL to open', async ({ page }) => {
  await serveRenderer(page);
  await page.goto(`${ORIGIN}/#/runs`);
  const banner = page.getByTestId('connection-banner');
  await expect(banner).toHaveAttribute('data-reason', 'no-token');
  await expect(banner).toContainText('lora-workbench serve');
});
