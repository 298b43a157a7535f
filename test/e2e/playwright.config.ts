// End-to-end tests in the Chromium that scripts/setup/chromium.ts finds (CHROMIUM_PATH, Playwright's cache, the system's).
// ui.spec.ts drives the renderer against an in-page fake API; workbench.spec.ts drives the real
// `lora-workbench serve` with real training. Both need `npm run build:renderer` first (npm run test:e2e does it).
import { defineConfig } from '@playwright/test';
import { chromiumVersion, findChromium, manualInstallCommand } from '../../scripts/setup/chromium.ts';

// `npm test` runs scripts/setup first, which installs a browser where none is found; this is the same search.
const browser = findChromium();
if (!browser) {
  throw new Error(`No Chromium or Chrome found: run \`npm run pretest\`, or \`${manualInstallCommand()}\`, or set CHROMIUM_PATH.`);
}
console.log(`End-to-end tests drive ${browser.path} (${chromiumVersion(browser.path)})`);
const chromium = browser.path;

export default defineConfig({
  testDir: '.',
  // Two CPU cores are shared with training: one test at a time.
  workers: 1,
  fullyParallel: false,
  timeout: 60_000,
  expect: { timeout: 10_000 },
  reporter: [['list']],
  outputDir: '../../test-results/e2e',
  use: {
    browserName: 'chromium',
    headless: true,
    viewport: { width: 1280, height: 900 },
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: chromium,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
    },
  },
});
