// Model folders in the UI and the Playground, on the real product (`lora-workbench serve`): the New run
// page's model summary (the default model's size; a missing folder blocks Start), a 10-step run, then
// its adapter against the base model in the Playground. Writes docs/playground.png.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from '@playwright/test';
import { BACKEND, repo, useServedProduct } from './served.ts';

const product = useServedProduct();

test('the New run page summarizes the chosen model folder and blocks Start for a missing one', async ({ page }) => {
  await page.goto(product().url);
  await page.getByTestId('new-run-button').click();
  // The embedded default model, inspected from its safetensors headers by a worker.
  await expect(page.getByTestId('model-summary-params')).toHaveText('1,350,400', { timeout: 60_000 });
  await expect(page.getByTestId('model-summary-type')).toHaveText('gpt2');
  const memory = page.getByTestId('model-summary-memory');
  await expect(memory).toContainText('for batch 8 × 96 tokens, r = 8');
  // The estimate follows the form (each inspection starts a worker: seconds on a busy machine).
  await page.getByTestId('field-training.batchSize').fill('2');
  await expect(memory).toContainText('for batch 2 × 96 tokens', { timeout: 60_000 });
  // The estimate is in the chosen engine's precision: f32 on tfjs, and on pytorch f32 too unless its
  // environment reports a CUDA or ROCm GPU (bf16), which this machine has not.
  await expect(memory).toContainText('in f32 (tfjs)');
  await page.getByTestId('engine-select').selectOption('pytorch');
  await expect(memory).toContainText('in f32 (pytorch', { timeout: 60_000 });
  await page.getByTestId('engine-select').selectOption('tfjs');

  await page.getByTestId('model-select').selectOption({ label: 'Other (enter a path)…' });
  await page.getByTestId('model-path').fill(path.join(product().dataDir, 'no-such-model'));
  await expect(page.getByTestId('model-summary-error-message')).toContainText('does not exist', { timeout: 60_000 });
  await expect(page.getByTestId('start-run')).toBeDisabled();
  await page.getByTestId('model-select').selectOption({ label: 'Embedded default model' });
  await expect(page.getByTestId('model-summary-params')).toHaveText('1,350,400', { timeout: 60_000 });
  await expect(page.getByTestId('start-run')).toBeEnabled();
});

test('a llama2.c checkpoint imported from the New run page becomes the base model', async ({ page }) => {
  const fixture = path.join(repo, 'test', 'fixtures', 'llama2c-tiny');
  const folder = path.join(product().dataDir, 'imported-llama2c');
  await page.goto(product().url);
  await page.getByTestId('new-run-button').click();
  await expect(page.getByTestId('model-summary-params')).toHaveText('1,350,400', { timeout: 60_000 });
  await page.getByTestId('import-llama2c').locator('summary').click();
  await page.getByTestId('import-checkpoint').fill(path.join(fixture, 'model.bin'));
  await page.getByTestId('import-tokenizer').fill(path.join(fixture, 'tokenizer.bin'));
  await page.getByTestId('import-out').fill(folder);
  await page.getByTestId('import-start').click();
  await expect(page.getByTestId('import-done')).toContainText(folder, { timeout: 60_000 });
  // The form now names the new folder, and the summary inspects it: a 2-layer Llama.
  await expect(page.getByTestId('model-path')).toHaveValue(folder);
  await expect(page.getByTestId('model-summary-type')).toHaveText('llama', { timeout: 60_000 });
  await expect(page.getByTestId('start-run')).toBeEnabled();
  // Importing into the same folder again is refused with the reason.
  await page.getByTestId('import-start').click();
  await expect(page.getByTestId('import-error-message')).toContainText('already exists and is not empty', { timeout: 60_000 });
});

test('a 10-step adapter and its base model answer the same prompt side by side in the Playground', async ({ page }) => {
  test.setTimeout(8 * 60_000);
  await page.goto(product().url);
  await page.getByTestId('new-run-button').click();
  await page.getByTestId('field-name').fill('playground-run');
  await page.getByTestId('field-training.maxSteps').fill('10');
  await page.getByTestId('field-training.batchSize').fill('4');
  await page.getByTestId('field-training.maxSeqLen').fill('48');
  await page.getByTestId('field-training.warmupSteps').fill('0');
  await page.getByTestId('field-training.learningRate').fill('0.02');
  await page.getByTestId('field-training.evalEvery').fill('10');
  await page.getByTestId('field-training.checkpointEvery').fill('10');
  await page.getByTestId('backend-select').selectOption(BACKEND);
  await page.getByTestId('start-run').click();
  await expect(page).toHaveURL(/#\/runs\/(?!new$)[^/]+$/, { timeout: 30_000 });
  await expect(page.getByTestId('run-status')).toHaveAttribute('data-status', /completed|failed/, { timeout: 5 * 60_000 });
  await expect(page.getByTestId('run-status')).toHaveAttribute('data-status', 'completed');

  await page.getByTestId('nav-adapters').click();
  const row = page.getByTestId('adapter-row').filter({ hasText: 'playground-run' });
  const adapterId = await row.getAttribute('data-adapter-id');
  await row.getByTestId('try-in-playground').click();
  await expect(page).toHaveURL(new RegExp(`#/playground\\?adapter=${adapterId}$`));
  await expect(page.getByTestId('nav-playground')).toHaveClass(/active/);
  await expect(page.getByTestId('playground-adapter-select')).toHaveValue(adapterId!);

  // A prompt in the sample dataset's own format, which the adapter has just been trained on.
  const prompt = 'Question: How do you spell salt?\nAnswer:';
  await page.getByTestId('playground-prompt').fill(prompt);
  await page.getByTestId('playground-max-new-tokens').fill('24');
  const generateButton = page.getByTestId('playground-generate');
  await generateButton.click();
  await expect(generateButton).toHaveText('Generating…');
  await expect(page.getByTestId('playground-base').or(page.getByTestId('playground-error'))).toBeVisible({ timeout: 2 * 60_000 });
  if (await page.getByTestId('playground-error').isVisible())
    throw new Error(`playground.generate failed: ${await page.getByTestId('playground-error').textContent()}`);
  await expect(page.getByTestId('playground-adapter')).toBeVisible();
  await expect(page.getByTestId('playground-base-text')).not.toBeEmpty();
  await expect(page.getByTestId('playground-adapter-text')).not.toBeEmpty();
  await expect(page.getByTestId('playground-base')).toContainText('tokens/s');
  await expect(page.getByTestId('playground-rendered-prompt')).toHaveText(prompt);
  await expect(generateButton).toHaveText('Generate');

  mkdirSync(path.join(repo, 'docs'), { recursive: true });
  await page.screenshot({ path: path.join(repo, 'docs', 'playground.png'), fullPage: true });
});
