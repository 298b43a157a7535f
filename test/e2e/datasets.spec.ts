// The Datasets page against the real `lora-workbench serve`: a CSV previewed from the UI, its columns mapped by
// hand (no suggestion fits its names), the mapped rows following the mapping live, registered, listed, and a
// 5-step run started on it from the New run page until it completes. Writes docs/datasets.png.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from '@playwright/test';
import { BACKEND, repo, useServedProduct } from './served.ts';

const fixture = (name: string) => path.join(repo, 'test', 'fixtures', 'datasets', 'user', name);
const product = useServedProduct();

test('a CSV is previewed, mapped, registered and trained on', async ({ page }) => {
  test.setTimeout(6 * 60_000);
  const csv = fixture('arithmetic.csv');
  await page.goto(product().url);
  await page.getByTestId('nav-datasets').click();
  await expect(page).toHaveURL(/#\/datasets$/);
  await expect(page.getByTestId('datasets-empty')).toBeVisible();

  await page.getByTestId('dataset-source').fill(csv);
  await page.getByTestId('dataset-preview').click();
  const table = page.getByTestId('preview-table');
  await expect(table).toBeVisible({ timeout: 60_000 });
  await expect(table.locator('th')).toHaveText(['ask', 'say', 'kind']);
  await expect(table.locator('tbody tr').first().locator('td')).toHaveText(['What is zero plus one, in words?', 'one', 'sum']);
  await expect(page.getByTestId('preview-summary')).toContainText('23 rows');
  await expect(page.getByTestId('bad-row')).toHaveText(['line 7 has 2 fields, the header has 3']);
  // Nothing in ask / say / kind suggests a mapping: the user picks the columns.
  await expect(page.getByTestId('mapping-problem')).toBeVisible();
  await expect(page.getByTestId('dataset-register')).toBeDisabled();

  await page.getByTestId('map-prompt').selectOption('ask');
  await page.getByTestId('map-completion').selectOption('kind');
  const firstMapped = page.getByTestId('mapped-row').first().locator('td');
  await expect(firstMapped).toHaveText(['What is zero plus one, in words?', 'sum'], { timeout: 60_000 });
  // The mapped rows follow the mapping as it changes.
  await page.getByTestId('map-completion').selectOption('say');
  await expect(firstMapped).toHaveText(['What is zero plus one, in words?', 'one'], { timeout: 60_000 });
  await page.getByTestId('map-task').selectOption('kind');
  await expect(firstMapped).toHaveText(['What is zero plus one, in words?', 'one', 'sum'], { timeout: 60_000 });

  await page.getByTestId('dataset-name').fill('arithmetic e2e');
  await expect(page.getByTestId('dataset-register')).toBeEnabled();
  await page.getByTestId('dataset-register').click();
  await expect(page.getByTestId('datasets-notice')).toHaveText('Registered "arithmetic e2e": 23 rows, 1 bad row left out.', { timeout: 60_000 });
  const row = page.getByTestId('dataset-row');
  await expect(row).toHaveCount(1);
  const sha = createHash('sha256').update(readFileSync(csv)).digest('hex');
  await expect(row.locator('td')).toHaveText(['arithmetic e2e', '23', '1', sha.slice(0, 12), 'arithmetic.csv (csv)', /\d/, /Train on this/]);
  const datasetId = await row.getAttribute('data-dataset-id');
  expect(datasetId).toMatch(/^ds-/);

  // The picture for the docs: the registered list under a second file's preview (suggested mapping, bad rows).
  await page.getByTestId('dataset-source').fill(fixture('qa.csv'));
  await page.getByTestId('dataset-preview').click();
  await expect(page.getByTestId('map-completion')).toHaveValue('answer', { timeout: 60_000 });
  await expect(page.getByTestId('mapped-row')).toHaveCount(4, { timeout: 60_000 });
  await expect(page.getByTestId('bad-row')).toHaveText(['line 5 has 4 fields, the header has 3', 'line 8 "answer" is empty']);
  mkdirSync(path.join(repo, 'docs'), { recursive: true });
  await page.screenshot({ path: path.join(repo, 'docs', 'datasets.png'), fullPage: true });

  await row.getByTestId('train-on-dataset').click();
  await expect(page).toHaveURL(new RegExp(`#/runs/new\\?dataset=${datasetId}$`));
  await expect(page.getByTestId('dataset-select')).toHaveValue(datasetId!);
  await page.getByTestId('field-name').fill('on arithmetic');
  await page.getByTestId('field-training.maxSteps').fill('5');
  await page.getByTestId('field-training.batchSize').fill('4');
  await page.getByTestId('field-training.maxSeqLen').fill('32');
  await page.getByTestId('field-training.warmupSteps').fill('1');
  await page.getByTestId('field-training.evalEvery').fill('5');
  await page.getByTestId('field-training.checkpointEvery').fill('5');
  await page.getByTestId('backend-select').selectOption(BACKEND);
  await page.getByTestId('start-run').click();
  await expect(page).toHaveURL(/#\/runs\/(?!new)[^/?]+$/, { timeout: 30_000 });
  const status = page.getByTestId('run-status');
  await expect(status).toHaveAttribute('data-status', /completed|failed/, { timeout: 4 * 60_000 });
  if ((await status.getAttribute('data-status')) === 'failed') throw new Error(`The run failed: ${await page.getByTestId('run-error-message').textContent()}`);
  await expect(page.getByTestId('step')).toContainText('5 / 5');

  // Removing a dataset a run trained on keeps its file for that run, and says so.
  await page.getByTestId('nav-datasets').click();
  await page.getByTestId('remove-dataset').click();
  await expect(page.getByTestId('datasets-notice')).toContainText('1 run trained on it, so its file is kept');
  await expect(page.getByTestId('datasets-empty')).toBeVisible();
  expect(existsSync(path.join(product().dataDir, 'datasets', `${datasetId}.jsonl`))).toBe(true);
});
