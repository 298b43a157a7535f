// Issue 15, finding 15: no path needs typing. In browser mode a dataset file is dropped (or picked with the
// browser's file input) and uploaded; in the desktop app "Choose…" opens the native dialog (stood in for here
// by window.workbenchHost, which the preload provides) for model folders, datasets and export folders.
import { expect, test } from '@playwright/test';
import { openFake } from './fake-page.ts';

test('browser mode: a file picked in the drop zone is uploaded and previewed by its stored path; no Choose… buttons', async ({ page }) => {
  await openFake(page, '#/datasets');
  await expect(page.getByTestId('dataset-choose')).toHaveCount(0);
  await page.getByTestId('dataset-file').setInputFiles({ name: 'qa.csv', mimeType: 'text/csv', buffer: Buffer.from('question,answer\nq,a\n') });
  await expect(page.getByTestId('dataset-source')).toHaveValue('/data/uploads/qa.csv');
  // The stand-in refuses to read datasets: its refusal shows that the preview was asked for that path.
  await expect(page.getByTestId('preview-error')).toBeVisible();
});

test('desktop app: Choose… fills the model folder, the dataset file and the export folder', async ({ page }) => {
  await openFake(page, '#/runs/new', { pickedPath: '/home/me/models/tiny' });
  await page.getByTestId('model-select').selectOption({ label: 'Other (enter a path)…' });
  await page.getByTestId('model-choose').click();
  await expect(page.getByTestId('model-path')).toHaveValue('/home/me/models/tiny');

  await page.goto('http://workbench.test/#/datasets');
  await expect(page.getByTestId('dataset-drop')).toHaveCount(0);
  await page.getByTestId('dataset-choose').click();
  await expect(page.getByTestId('dataset-source')).toHaveValue('/home/me/models/tiny');

  await page.goto('http://workbench.test/#/adapters');
  await page.getByTestId('export-dir-choose').click();
  await expect(page.getByTestId('export-dir')).toHaveValue('/home/me/models/tiny');
});

test('"Get the data" on the evaluation form names the source and license, downloads, and fills the path', async ({ page }) => {
  await openFake(page, '#/evals');
  await page.getByTestId('new-eval-button').click();
  await page.getByTestId('eval-form').locator('select').first().selectOption('bias');
  await expect(page.getByTestId('eval-source-crowsPairs')).toContainText('https://github.com/nyu-mll/crows-pairs (CC BY-SA 4.0); SHA-256 checked.');
  await page.getByTestId('eval-get-crowsPairs').click();
  await expect(page.getByTestId('eval-path-crowsPairs')).toHaveValue('/data/benchmarks/crows-pairs/crows_pairs_anonymized.csv');
  await expect(page.getByTestId('eval-get-crowsPairs')).toHaveText('Use the downloaded copy');
});

test('Quick check starts an evaluation with nothing downloaded', async ({ page }) => {
  await openFake(page, '#/evals');
  await expect(page.getByTestId('evals-empty')).toContainText('Quick check');
  await page.getByTestId('quick-check').click();
  await expect(page.getByTestId('evals-table')).toContainText('perplexity');
});
