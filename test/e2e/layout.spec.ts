// Issue 15, findings 4 and 6 in the renderer, against the in-page fake API (fake-workbench.ts): every page
// fits a 1280 x 800 window (Electron's default) without horizontal scrolling, Start stays in view on
// New run, and runs and adapters are deleted after a confirmation; "New run from this one" starts from a
// run's settings. Screenshots of each page at that size go to test-results/e2e/screens/.
import path from 'node:path';
import { expect, test } from '@playwright/test';
import { openFake as open, ORIGIN } from './fake-page.ts';

const screens = path.join(import.meta.dirname, '..', '..', 'test-results', 'e2e', 'screens');

test.use({ viewport: { width: 1280, height: 800 } });

let pageErrors: string[] = [];
test.beforeEach(({ page }) => {
  pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
});
test.afterEach(() => expect(pageErrors).toEqual([]));

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
    // The Evaluations page with a row and the open form (the form made it 1348 px wide).
    if (name === 'evaluations') {
      await page.getByTestId('quick-check').click();
      await page.getByTestId('new-eval-button').click();
      await expect(page.getByTestId('eval-form')).toBeVisible();
    }
    await page.waitForLoadState('networkidle');
    const { scrollWidth, clientWidth } = await page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      clientWidth: document.documentElement.clientWidth,
    }));
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
