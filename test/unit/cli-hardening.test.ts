// Issue 15, finding 11: inline JSON for --config; `runs | head -1` ends quietly (EPIPE); the printed loss is
// the stored loss of the printed step; after a resume the printed steps never go back.
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RunConfigSchema } from '../../src-shared/config.ts';
import type { WorkerToMain } from '../../src-shared/worker-protocol.ts';
import { follow, readRunConfig, runCli } from '../../src-main/cli.ts';
import { resolvePaths } from '../../src-main/paths.ts';
import { RunManager } from '../../src-main/runs.ts';
import { Store } from '../../src-main/store/index.ts';

const bin = fileURLToPath(new URL('../../bin/lora-workbench.mjs', import.meta.url));
let dataDir: string;
beforeEach(() => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'lw-cli-hardening-'));
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('--config', () => {
  it('takes the JSON itself when it starts with "{", with paths from the working folder', () => {
    const { config, base } = readRunConfig('{"training": {"maxSteps": 5}, "dataset": "data/my.jsonl"}');
    expect(config).toEqual({ training: { maxSteps: 5 }, dataset: 'data/my.jsonl' });
    expect(base).toBe(process.cwd());
    expect(() => readRunConfig('{"training": ')).toThrow(
      expect.objectContaining({ code: 'invalid_input', message: expect.stringMatching(/--config JSON does not parse/) }),
    );
    expect(() => readRunConfig('[1]')).toThrow(/Cannot read the run configuration/);
  });

  it('validates inline JSON as a configuration (it used to be read as a file name)', async () => {
    const { code, err } = await cli('train', '--config', '{"training": {"maxSteps": 0}}', '--data-dir', dataDir);
    expect(code).toBe(1);
    expect(err).toMatch(/maxSteps/);
    expect(err).not.toMatch(/Cannot read the run configuration/);
  });
});

describe('a closed stdout', () => {
  it('`runs | head -1` ends with exit 0 and no EPIPE error', async () => {
    const store = Store.open(resolvePaths({ dataDir }).dbFile);
    const config = RunConfigSchema.parse({});
    for (let k = 0; k < 3000; k++)
      store.runs.create({ id: `run-${String(k).padStart(5, '0')}`, name: `run number ${k}`, config, createdAt: new Date().toISOString(), ownerPid: null });
    store.close();
    const child = spawn(process.execPath, [bin, 'runs', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    // As `head -1` does: read the first chunk, then close the pipe.
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).not.toMatch(/EPIPE/);
    expect(code).toBe(0);
  }, 60_000);
});

/** A training worker the test speaks for. */
class ScriptedWorker extends EventEmitter {
  postMessage() {}
  say(message: WorkerToMain) {
    this.emit('message', message);
  }
  async terminate() {
    queueMicrotask(() => this.emit('exit', 0));
    return 0;
  }
}

describe('follow', () => {
  it('prints each step with its own stored loss, and never a stale step after a resume', async () => {
    const paths = resolvePaths({ dataDir });
    const store = Store.open(paths.dbFile);
    let worker!: ScriptedWorker;
    const manager = new RunManager({ store, paths, metricsFlushMs: 5, createWorker: () => ((worker = new ScriptedWorker()), worker as unknown as Worker) });
    try {
      const run = await manager.start({ name: 'cli', training: { maxSteps: 60 }, backend: 'cpu' });
      const lines: string[] = [];
      const following = follow({ manager }, run, { out: (l) => lines.push(l), err: () => undefined });
      const progress = (step: number) => ({ step, maxSteps: 60, tokensPerSecond: 100, stepTimeMs: 10, etaSeconds: 1 });
      worker.say({ type: 'started', backend: { name: 'cpu', adapter: 'JavaScript' }, trainableParams: 1, totalParams: 2 });
      // As after a resume from step 50: the row still says 57 before the new steps arrive.
      worker.say({ type: 'progress', progress: progress(57) });
      for (let step = 51; step <= 60; step++) {
        worker.say({ type: 'progress', progress: progress(step) });
        // The worker's metrics come after its progress, as the engine sends them.
        worker.say({ type: 'metrics', points: [{ step, name: 'train/loss', value: step / 100, time: step }] });
        await new Promise((resolve) => setTimeout(resolve, 15));
      }
      worker.say({ type: 'trained', adapterDir: path.join(dataDir, 'adapter'), step: 60, trainableParams: 1 });
      expect(await following).toBe(0);
      const printed = lines.filter((l) => l.startsWith('step')).map((l) => /^step\s+(\d+)\/60 {2}loss (\S+)/.exec(l)!.slice(1).map(Number));
      expect(printed.length).toBeGreaterThanOrEqual(2);
      expect(printed[0]![0]).toBe(51);
      expect(printed.at(-1)![0]).toBe(60);
      for (const [step, loss] of printed) expect(loss).toBeCloseTo(step! / 100, 6);
      for (let k = 1; k < printed.length; k++) expect(printed[k]![0]).toBeGreaterThan(printed[k - 1]![0]!);
      const stored = new Map(
        manager
          .metrics(run.id)
          .filter((p) => p.name === 'train/loss')
          .map((p) => [p.step, p.value]),
      );
      for (const [step, loss] of printed) expect(stored.get(step!)).toBeCloseTo(loss!, 4);
    } finally {
      await manager.close();
      store.close();
    }
  });
});
