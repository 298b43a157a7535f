// A study from the UI on the real product: the built-in two-cell quick start (LoRA rank 2 and 8 on the
// embedded model and sample data), a few training steps per cell; both cells finish and the figures are
// drawn with their tables. Writes docs/studies.png.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from '@playwright/test';
import { repo, useServedProduct } from './served.ts';

const product = useServedProduct();

test('a two-cell study started from the Studies page finishes both cells and draws its figures', async ({ page }) => {
  test.setTimeout(5 * 60_000);
  await page.goto(product().url);
  await page.getByTestId('nav-studies').click();
  await expect(page.getByTestId('studies-empty')).toBeVisible();
  await page.getByTestId('new-study-button').click();
  await expect(page.getByTestId('study-recipe-select')).toHaveValue('quickstart-rank');
  await expect(page.getByTestId('study-recipe-json')).toHaveValue(/"lora\.r"/);
  await page.getByTestId('study-steps').fill('6');
  await page.getByTestId('study-start').click();

  const detail = page.getByTestId('study-detail');
  await expect(detail.or(page.getByTestId('study-error'))).toBeVisible({ timeout: 30_000 });
  if (await page.getByTestId('study-error').isVisible()) throw new Error(`studies.start failed: ${await page.getByTestId('study-error').textContent()}`);
  await expect(page.getByTestId('study-cells')).toContainText('of 2 cells done');
  await expect(detail).toHaveAttribute('data-status', /completed|failed|stopped/, { timeout: 4 * 60_000 });
  if ((await detail.getAttribute('data-status')) !== 'completed')
    throw new Error(`The study did not complete: ${await page.getByTestId('study-progress').textContent()}`);

  await expect(page.getByTestId('study-cells')).toHaveText('2 of 2 cells done');
  await expect(page.getByTestId('study-cell')).toHaveCount(2);
  await expect(page.locator('[data-testid="study-cell"][data-status="completed"]')).toHaveCount(2);
  await expect(page.getByTestId('study-row')).toHaveAttribute('data-status', 'completed');
  // Final validation loss by rank: one bar per rank; the loss curves: a point per evaluated step and rank.
  const bars = page.locator('[data-testid="study-figure"][data-figure="val-loss"]');
  await expect(bars).toHaveAttribute('data-points', '2');
  await expect(bars.getByTestId('figure-table').locator('tbody tr')).toHaveCount(2);
  await expect(bars.getByTestId('figure-table').locator('tbody tr').first().locator('td')).toHaveText(['2', /^\d\.\d{3}$/]);
  const curves = page.locator('[data-testid="study-figure"][data-figure="curves"]');
  expect(Number(await curves.getAttribute('data-points'))).toBeGreaterThanOrEqual(2);

  const download = page.waitForEvent('download');
  await bars.getByTestId('figure-png').click();
  expect((await download).suggestedFilename()).toBe('quickstart-rank-val-loss.png');

  mkdirSync(path.join(repo, 'docs'), { recursive: true });
  await page.getByTestId('study-detail').screenshot({ path: path.join(repo, 'docs', 'studies.png') });
});
