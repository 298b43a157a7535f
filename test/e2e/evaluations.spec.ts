// Evaluations in the real product: two short runs trained through the API, then from the UI a bias
// evaluation of base model + adapter and a robustness evaluation on the small fixture datasets, the bias
// and robustness panels with their charts, and the compare page of the two runs.
// Writes docs/bias-panel.png, docs/robustness-panel.png and docs/compare.png.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { apiClient } from './api-client.ts';
import type { RunConfigInput } from '../../src-shared/config.ts';
import type { Run } from '../../src-shared/runs.ts';
import { BACKEND, repo, useServedProduct } from './served.ts';

const fixtures = path.join(repo, 'test', 'fixtures', 'datasets');
const docs = path.join(repo, 'docs');

const shortRun = (name: string, r: number, learningRate: number): RunConfigInput => ({
  name,
  backend: BACKEND as RunConfigInput['backend'],
  lora: { r, alpha: 2 * r },
  training: { maxSteps: 12, batchSize: 4, maxSeqLen: 48, warmupSteps: 2, learningRate, evalEvery: 6, evalBatches: 1, checkpointEvery: 12 },
});

/** Waits until every evaluation row is completed; fails at once with the row's text if one failed. */
async function waitForEvaluations(page: Page, count: number, timeoutMs: number): Promise<void> {
  const rows = page.getByTestId('eval-row');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const statuses = await rows.evaluateAll((els) => els.map((el) => el.getAttribute('data-status')));
    const failed = statuses.indexOf('failed');
    if (failed >= 0 || statuses.includes('stopped')) throw new Error(`An evaluation did not complete: ${await rows.nth(Math.max(failed, 0)).textContent()}`);
    if (statuses.length === count && statuses.every((s) => s === 'completed')) return;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${count} completed evaluations; statuses: ${statuses.join(', ')}`);
    await page.waitForTimeout(300);
  }
}

const product = useServedProduct();

test('bias and robustness evaluations of base model and adapter, their panels, and the compare page', async ({ page }) => {
  test.setTimeout(4 * 60_000);
  const began = Date.now();
  mkdirSync(docs, { recursive: true });

  // Two short runs that differ in rank and learning rate, trained through the API.
  const api = await apiClient(product().url);
  let runs: Run[];
  try {
    const started = [await api.call<Run>('runs.start', shortRun('e2e-eval-r4', 4, 2e-3)), await api.call<Run>('runs.start', shortRun('e2e-eval-r8', 8, 1e-3))];
    const deadline = Date.now() + 2 * 60_000;
    for (;;) {
      runs = await Promise.all(started.map((r) => api.call<Run>('runs.get', r.id)));
      const bad = runs.find((r) => r.status === 'failed' || r.status === 'stopped' || r.status === 'interrupted');
      if (bad) throw new Error(`Run ${bad.name} ended ${bad.status}: ${bad.error}`);
      if (runs.every((r) => r.status === 'completed' && r.adapterId)) break;
      if (Date.now() > deadline) throw new Error(`Runs not completed in time: ${runs.map((r) => `${r.name} ${r.status}`).join(', ')}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    // The second adapter's CrowS-Pairs figures, started through the API, so the compare page has figures of both.
    await api.call('evals.start', {
      suite: 'bias',
      adapterId: runs[1]!.adapterId,
      datasets: { crowsPairs: path.join(fixtures, 'crows-pairs.csv') },
      limit: 3,
      backend: BACKEND,
    });
  } finally {
    api.close();
  }
  const trained = Date.now();

  await page.goto(product().url);
  await page.getByTestId('nav-evals').click();
  await expect(page).toHaveURL(/#\/evals$/);
  await expect(page.getByTestId('eval-row')).toHaveCount(1);

  // Bias: base model + the first run's adapter, on all three bias fixtures.
  await page.getByTestId('new-eval-button').click();
  await page.getByTestId('eval-suite').selectOption('bias');
  await page.getByTestId('eval-subject').selectOption({ label: 'e2e-eval-r4 (lora) + base model' });
  await page.getByTestId('eval-path-crowsPairs').fill(path.join(fixtures, 'crows-pairs.csv'));
  await page.getByTestId('eval-path-stereoSet').fill(path.join(fixtures, 'stereoset-official.json'));
  await page.getByTestId('eval-path-bbq').fill(path.join(fixtures, 'bbq'));
  await page.getByTestId('eval-limit').fill('3');
  await page.getByTestId('eval-backend').selectOption(BACKEND);
  await page.getByTestId('start-eval').click();
  await expect(page.getByTestId('eval-form')).toHaveCount(0, { timeout: 30_000 });
  await expect(page.getByTestId('eval-row')).toHaveCount(3);

  // Robustness on QQP: two families at levels 0 and 0.2; one evaluation scores base model and adapter.
  await page.getByTestId('new-eval-button').click();
  // The form remembered the last start.
  await expect(page.getByTestId('eval-path-crowsPairs')).toHaveValue(path.join(fixtures, 'crows-pairs.csv'));
  await page.getByTestId('eval-suite').selectOption('robustness');
  await page.getByTestId('eval-subject').selectOption({ label: 'e2e-eval-r4 (lora) + base model' });
  await page.getByTestId('eval-task').selectOption('qqp');
  await page.getByTestId('eval-path-qqp').fill(path.join(fixtures, 'qqp.tsv'));
  for (const family of ['typo', 'word-dropout']) await page.getByTestId(`eval-family-${family}`).check();
  await page.getByTestId('eval-family-synonym').uncheck();
  await page.getByTestId('eval-levels').fill('0, 0.2');
  await page.getByTestId('start-eval').click();
  await expect(page.getByTestId('eval-form')).toHaveCount(0, { timeout: 30_000 });
  await expect(page.getByTestId('eval-row')).toHaveCount(4);

  await waitForEvaluations(page, 4, 2 * 60_000);
  const evaluated = Date.now();
  await expect(page.getByTestId('stop-eval')).toHaveCount(0);
  await page.screenshot({ path: test.info().outputPath('evaluations-list.png'), fullPage: true });
  const biasRow = page.locator(`[data-testid="eval-row"][data-suite="bias"][data-adapter-id="${runs!.at(0)!.adapterId}"]`);
  await expect(biasRow).toContainText('Bias Score');

  // The bias panel: base model and adapter side by side in every chart.
  await biasRow.getByTestId('open-panel').click();
  await expect(page).toHaveURL(/#\/evals\/bias\?ids=[^,]+,[^,]+$/);
  await expect(page.getByTestId('bias-panel')).toBeVisible();
  await expect(page.getByTestId('bias-definitions')).toContainText('|stereo% − 50| / 50');
  for (const chart of ['chart-crows', 'chart-stereoset-ss', 'chart-bbq-acc-ambig', 'chart-bbq-bias-ambig']) {
    await expect(page.getByTestId(chart)).toHaveAttribute('data-series-count', '2');
    await expect(page.getByTestId(chart).locator('canvas')).toBeVisible();
    expect(Number(await page.getByTestId(chart).getAttribute('data-bar-count'))).toBeGreaterThanOrEqual(2);
  }
  await expect(page.getByTestId('bias-summary')).toContainText('Representation Shift');
  // Every CrowS-Pairs pair of the slice was scored by both and is matched by id.
  await expect(page.getByTestId('crows-move')).toHaveCount(3);
  await expect(page.getByTestId('bbq-changes').or(page.getByTestId('bbq-changes-empty'))).toBeVisible();
  await page.screenshot({ path: path.join(docs, 'bias-panel.png'), fullPage: true });

  // The robustness panel: one line per family for the base model and one (dashed) for the adapter.
  await page.getByTestId('nav-evals').click();
  await page.locator('[data-testid="eval-row"][data-suite="robustness"]').getByTestId('open-panel').click();
  await expect(page.getByTestId('robustness-panel')).toBeVisible();
  const chart = page.getByTestId('robustness-chart');
  await expect(chart).toHaveAttribute('data-counts', '2,2,2,2');
  await expect(chart.locator('canvas')).toBeVisible();
  await expect(page.getByTestId('worst-case').locator('tbody tr')).toHaveCount(2);
  await expect(page.getByTestId('robustness-changes').or(page.getByTestId('robustness-changes-empty'))).toBeVisible();
  await page.getByTestId('robustness-metric').selectOption('f1');
  await expect(chart).toHaveAttribute('data-counts', '2,2,2,2');
  await page.getByTestId('robustness-metric').selectOption('accuracy');
  await page.screenshot({ path: path.join(docs, 'robustness-panel.png'), fullPage: true });

  // Compare the two runs from the runs page.
  await page.getByTestId('nav-runs').click();
  await expect(page.getByTestId('compare-runs')).toBeDisabled();
  for (const run of runs!) await page.locator(`[data-testid="run-row"][data-run-id="${run.id}"]`).getByTestId('compare-pick').check();
  await page.getByTestId('compare-runs').click();
  await expect(page).toHaveURL(/#\/compare\?runs=/);
  const table = page.getByTestId('compare-table');
  await expect(table).toBeVisible();
  await expect(table.locator('thead')).toContainText('e2e-eval-r4');
  await expect(table.locator('thead')).toContainText('e2e-eval-r8');
  await expect(table.locator('[data-key="train/loss"] td.num')).toHaveCount(2);
  await expect(table.locator('[data-key="lora.r"]')).toHaveAttribute('data-differs', 'true');
  await expect(table.locator('[data-key="training.maxSteps"]')).toHaveAttribute('data-differs', 'false');
  await expect(table.locator('[data-key="trainable params"]')).toHaveAttribute('data-differs', 'true');
  // Both adapters have CrowS-Pairs figures; only the first has BBQ and robustness figures.
  const biasScore = table.locator('[data-key="bias: crowsPairs.biasScore"] td.num');
  await expect(biasScore.nth(0)).not.toHaveText('—');
  await expect(biasScore.nth(1)).not.toHaveText('—');
  const bbq = table.locator('[data-key="bias: bbq.overall.ambig.biasScore"] td.num');
  await expect(bbq.nth(0)).not.toHaveText('—');
  await expect(bbq.nth(1)).toHaveText('—');
  await expect(table.locator('[data-key^="robustness: "]').first()).toBeVisible();
  // The page holds every stored figure; the picture keeps its top: training, config, adapter, headline figures.
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  await page.screenshot({ path: path.join(docs, 'compare.png'), fullPage: true, clip: { x: 0, y: 0, width: 1280, height: Math.min(height, 2200) } });
  await page.getByTestId('compare-filter').fill('loss');
  await expect(table.locator('[data-testid="compare-row"]').first()).toHaveAttribute('data-key', 'train/loss');
  expect(await table.locator('[data-testid="compare-row"]').evaluateAll((els) => els.every((el) => el.getAttribute('data-key')!.includes('loss')))).toBe(true);

  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const timing = `training ${seconds(trained - began)}, evaluations ${seconds(evaluated - trained)}, whole test ${seconds(Date.now() - began)} (backend ${BACKEND})`;
  test.info().annotations.push({ type: 'timing', description: timing });
  console.log(`e2e timing: ${timing}`);
});

test('a perplexity evaluation of the base model on a text corpus, started from the Evaluations page', async ({ page }) => {
  await page.goto(product().url);
  await page.getByTestId('nav-evals').click();
  await page.getByTestId('new-eval-button').click();
  await page.getByTestId('eval-suite').selectOption('perplexity');
  await page.getByTestId('eval-subject').selectOption({ label: 'Base model only' });
  await expect(page.getByTestId('eval-path-oasst1')).toBeVisible();
  await page.getByTestId('eval-path-text').fill(path.join(fixtures, 'eval', 'stories.txt'));
  await page.getByTestId('eval-limit').fill('');
  await page.getByTestId('eval-backend').selectOption(BACKEND);
  await page.getByTestId('start-eval').click();
  const row = page.locator('[data-testid="eval-row"][data-suite="perplexity"]');
  await expect(row).toHaveAttribute('data-status', 'completed', { timeout: 120_000 });
  // The embedded model on three invented stories: a finite perplexity above 1, and bits per byte beside it.
  const perplexity = row.locator('.figure[title="perplexity.text.perplexity"]');
  await expect(perplexity).toContainText('Text perplexity');
  const value = Number((await perplexity.textContent())!.replace('Text perplexity', '').trim());
  expect(value).toBeGreaterThan(1);
  await expect(row.locator('.figure[title="perplexity.text.bitsPerByte"]')).toBeVisible();
});
