// `lora-workbench serve` on a fresh data folder, for the specs that drive the real product.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { expect, test } from '@playwright/test';

export const repo = path.join(import.meta.dirname, '..', '..');
/** wasm (XNNPACK) trains this run in ~7 s here, plain-JavaScript cpu in ~50 s. */
export const BACKEND = process.env.E2E_BACKEND ?? 'wasm';

export interface Served {
  url: string;
  dataDir: string;
  child: ChildProcess;
  output: string[];
}

/**
 * `via: 'serve'` runs `lora-workbench serve`; `via: 'npm-start'` runs what `npm start -- --no-open` runs
 * (scripts/start.mjs: browser mode where Electron's binary is missing, as here).
 */
export async function serve(via: 'serve' | 'npm-start' = 'serve'): Promise<Served> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'lora-workbench-e2e-'));
  const entry = via === 'serve' ? ['bin/lora-workbench.mjs', 'serve'] : ['scripts/start.mjs'];
  const child = spawn(process.execPath, [...entry, '--port', '0', '--no-open', '--data-dir', dataDir], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => output.push(line));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`No "Workbench: <url>" line within 60 s:\n${output.join('\n')}`)), 60_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      output.push(line);
      const match = /^Workbench: (\S+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`lora-workbench serve exited (${code ?? signal}) before it was ready:\n${output.join('\n')}`));
    });
  });
  return { url, dataDir, child, output };
}

/** Stops the server (idempotent) and removes its data folder. */
export async function shutDown(served: Served): Promise<void> {
  const { child } = served;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(served.dataDir, { recursive: true, force: true });
}

/** The JSON header of a safetensors file: 8-byte little-endian length, then that many bytes of JSON. */

/**
 * One served product for the calling spec file: started before its first test, stopped after its last;
 * every test fails on an uncaught page error and attaches the server's output when it fails. Returns
 * the running server.
 */
export function useServedProduct(): () => Served {
  let served: Served | undefined;
  let pageErrors: string[] = [];
  test.describe.configure({ mode: 'serial' });
  test.beforeAll(async () => {
    test.setTimeout(90_000);
    if (!existsSync(path.join(repo, 'out', 'renderer', 'index.html'))) throw new Error('Build the renderer first: npm run build:renderer');
    served = await serve();
  });
  test.afterAll(async () => {
    if (served) await shutDown(served);
  });
  test.beforeEach(({ page }) => {
    pageErrors = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
  });
  test.afterEach(async ({}, testInfo) => {
    if (served && testInfo.status !== testInfo.expectedStatus) await testInfo.attach('server output', { body: served.output.join('\n') });
    expect(pageErrors).toEqual([]);
  });
  return () => {
    if (!served) throw new Error('The product is not served yet (useServedProduct starts it in beforeAll).');
    return served;
  };
}
