// `lora-workbench serve` on a fresh data folder, for the specs that drive the real product.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

export const repo = path.join(import.meta.dirname, '..', '..');
/** wasm (XNNPACK) trains this run in ~7 s here, plain-JavaScript cpu in ~50 s. */
export const BACKEND = process.env.E2E_BACKEND ?? 'wasm';

export interface Served {
  url: string;
  dataDir: string;
  child: ChildProcess;
  output: string[];
}

export async function serve(): Promise<Served> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'lora-workbench-e2e-'));
  const child = spawn(
    process.execPath,
    ['bin/lora-workbench.mjs', 'serve', '--port', '0', '--no-open', '--data-dir', dataDir],
    { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] },
  );
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
