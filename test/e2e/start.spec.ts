// A newcomer's first minute: `npm start -- --no-open` on a fresh data folder serves the workbench, and a
// run with every default (the embedded model and sample dataset) completes from the UI.
import { expect, test } from '@playwright/test';
import { type Served, serve, shutDown } from './served.ts';

let served: Served | undefined;
test.afterAll(async () => {
  if (served) await shutDown(served);
});

test('npm start -- --no-open serves the workbench and a default run completes from the UI', async ({ page }) => {
  test.setTimeout(8 * 60_000);
  served = await serve('npm-start');
  await page.goto(served.url);
  await page.getByTestId('new-run-button').click();
  await page.getByTestId('start-run').click();
  await expect(page.getByTestId('run-status').or(page.getByTestId('start-error'))).toBeVisible({ timeout: 30_000 });
  if (await page.getByTestId('start-error').isVisible()) throw new Error(`runs.start failed: ${await page.getByTestId('start-error').textContent()}`);
  const status = page.getByTestId('run-status');
  await expect(status).toHaveAttribute('data-status', /completed|failed/, { timeout: 6 * 60_000 });
  if ((await status.getAttribute('data-status')) === 'failed')
    throw new Error(`The default run failed: ${await page.getByTestId('run-error-message').textContent()}`);
  await expect(page.getByTestId('step')).toContainText('120 / 120');
});
