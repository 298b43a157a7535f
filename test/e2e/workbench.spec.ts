// The whole product in browser mode: `lora-workbench serve` on a fresh data folder, a short real training
// run started from the UI, its live charts, the PEFT export checked on disk, and the WebSocket token check.
// Writes docs/screenshot.png (the README's picture) from the finished run's page.
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { BACKEND, repo, shutDown, useServedProduct } from './served.ts';

function safetensorsHeader(file: string): Record<string, { dtype: string; shape: number[] }> {
  const bytes = readFileSync(file);
  const length = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + length).toString('utf8'));
  delete header.__metadata__;
  return header;
}

const counts = async (page: Page, testid: string) =>
  ((await page.getByTestId(testid).getAttribute('data-counts')) ?? '').split(',').filter(Boolean).map(Number);

/** Waits for `ready` on the run page, failing at once (with the page's error text) if the run fails. */
async function waitOnRun(page: Page, what: string, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ready()) return;
    if ((await page.getByTestId('run-status').getAttribute('data-status')) === 'failed') {
      throw new Error(`The run failed while waiting for ${what}: ${await page.getByTestId('run-error-message').textContent()}`);
    }
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await page.waitForTimeout(250);
  }
}

const product = useServedProduct();

test('the WebSocket API refuses a wrong token and the page says which URL to open', async ({ page }) => {
  const wrong = product().url.replace(/([?&]token=)[^&#]+/, '$1not-the-token');
  expect(wrong).not.toBe(product().url);
  await page.goto(wrong);
  const banner = page.getByTestId('connection-banner');
  await expect(banner).toHaveAttribute('data-reason', 'rejected');
  await expect(banner).toContainText('lora-workbench serve');
  // Nothing from the API reached the page.
  await expect(page.getByTestId('runs-table')).toHaveCount(0);
  await expect(page.getByTestId('runs-empty')).toHaveCount(0);
});

test('a short run trains live from the UI, completes and exports a PEFT adapter', async ({ page }) => {
  test.setTimeout(10 * 60_000);
  const began = Date.now();

  await page.goto(product().url);
  // The token moved from the address bar to the tab's session storage.
  await expect(page).not.toHaveURL(/token=/);
  await expect(page.getByTestId('mode')).toContainText('Browser');
  await expect(page.getByTestId('runs-empty')).toBeVisible();

  await page.getByTestId('new-run-button').click();
  await page.getByTestId('field-name').fill('e2e-short-run');
  await page.getByTestId('field-training.maxSteps').fill('30');
  await page.getByTestId('field-training.batchSize').fill('4');
  await page.getByTestId('field-training.maxSeqLen').fill('64');
  await page.getByTestId('field-training.warmupSteps').fill('5');
  await page.getByTestId('field-training.evalEvery').fill('10');
  await page.getByTestId('field-training.checkpointEvery').fill('10');
  await page.getByTestId('backend-select').selectOption(BACKEND);
  await page.getByTestId('start-run').click();
  await expect(page.getByTestId('run-status').or(page.getByTestId('start-error'))).toBeVisible({ timeout: 30_000 });
  if (await page.getByTestId('start-error').isVisible()) throw new Error(`runs.start failed: ${await page.getByTestId('start-error').textContent()}`);
  await expect(page).toHaveURL(/#\/runs\/(?!new$)[^/]+$/);
  const started = Date.now();

  // Live: the chart gains points while the run goes on, until it completes.
  await waitOnRun(page, 'the first loss points', async () => ((await counts(page, 'loss-chart'))[0] ?? 0) > 0, 5 * 60_000);
  const firstSeen = (await counts(page, 'loss-chart'))[0]!;
  await expect(page.getByTestId('backend')).toContainText(BACKEND);
  await waitOnRun(page, 'status completed', async () => (await page.getByTestId('run-status').getAttribute('data-status')) === 'completed', 8 * 60_000);
  const trained = Date.now();

  const [trainPoints, valPoints] = await counts(page, 'loss-chart');
  expect(trainPoints).toBeGreaterThanOrEqual(firstSeen);
  expect(trainPoints).toBeLessThanOrEqual(30);
  expect(trainPoints).toBeGreaterThanOrEqual(2);
  expect(valPoints).toBeGreaterThanOrEqual(1);
  expect((await counts(page, 'lr-chart'))[0]).toBeGreaterThan(0);
  await expect(page.getByTestId('step')).toContainText('30 / 30');
  await expect(page.getByTestId('tokens-per-second')).not.toHaveText('—');

  await page.getByTestId('export-run').click();
  const report = page.getByTestId('export-report');
  await expect(report).toBeVisible({ timeout: 2 * 60_000 });
  await expect(page.getByTestId('export-verification')).toHaveText('Verification passed');

  const outDir = (await page.getByTestId('export-outdir').textContent())!.trim();
  const weights = path.join(outDir, 'adapter_model.safetensors');
  const config = path.join(outDir, 'adapter_config.json');
  expect(existsSync(weights), `${weights} exists`).toBe(true);
  expect(existsSync(config), `${config} exists`).toBe(true);
  expect(statSync(weights).size).toBeGreaterThan(8);
  // What PEFT reads: peft_type and r in the config, lora_A/lora_B tensors of that rank in the weights.
  const adapterConfig = JSON.parse(readFileSync(config, 'utf8'));
  expect(adapterConfig).toMatchObject({ peft_type: 'LORA', r: 8 });
  const tensors = Object.entries(safetensorsHeader(weights));
  expect(tensors.some(([name]) => name.endsWith('lora_A.weight'))).toBe(true);
  expect(tensors.some(([name]) => name.endsWith('lora_B.weight'))).toBe(true);
  for (const [name, info] of tensors) {
    if (name.endsWith('lora_A.weight')) expect(info.shape[0], name).toBe(8);
    if (name.endsWith('lora_B.weight')) expect(info.shape[1], name).toBe(8);
  }

  mkdirSync(path.join(repo, 'docs'), { recursive: true });
  await page.screenshot({ path: path.join(repo, 'docs', 'screenshot.png'), fullPage: true });

  await page.getByTestId('nav-adapters').click();
  await expect(page.getByTestId('adapters-table')).toContainText('e2e-short-run');
  await page.getByTestId('nav-runs').click();
  await expect(page.getByTestId('run-row').filter({ hasText: 'e2e-short-run' }).getByText('completed')).toBeVisible();

  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const timing = `start→completed ${seconds(trained - started)}, whole test ${seconds(Date.now() - began)} (backend ${BACKEND})`;
  test.info().annotations.push({ type: 'timing', description: timing });
  console.log(`e2e timing: ${timing}`);
});

test('when the server goes away the page says so and keeps trying', async ({ page }) => {
  await page.goto(product().url);
  await expect(page.getByTestId('runs-table')).toBeVisible();
  await expect(page.getByTestId('connection-banner')).toHaveCount(0);
  await shutDown(product());
  const banner = page.getByTestId('connection-banner');
  await expect(banner).toHaveAttribute('data-reason', 'reconnecting');
  await expect(banner).toContainText('Reconnecting');
});
