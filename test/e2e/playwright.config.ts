// End-to-end tests in Debian's Chromium (never a downloaded browser: `npx playwright install` is not used).
// ui.spec.ts drives the renderer against an in-page fake API; workbench.spec.ts drives the real
// `lora-workbench serve` with real training. Both need `npm run build:renderer` first (npm run test:e2e does it).
import { existsSync } from 'node:fs';
import { defineConfig } from '@playwright/test';

const chromium = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
if (!existsSync(chromium)) {
  throw new Error(`No Chromium at ${chromium}: install it with \`apt-get install -y chromium\` or set CHROMIUM_PATH.`);
}

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
