// Opens the built renderer against the in-page fake API (fake-workbench.ts) for the specs of issue 15
// (layout.spec.ts, pickers.spec.ts), seeded with two finished runs that have long names and adapters.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Page } from '@playwright/test';
import { defaultRunConfig } from '../../src-shared/config.ts';
import { methodDescriptors } from '../../src-shared/methods.ts';
import type { Adapter, Run } from '../../src-shared/runs.ts';
import { installFakeWorkbench, type FakeSeed } from './fake-workbench.ts';

export const rendererDir = path.join(import.meta.dirname, '..', '..', 'out', 'renderer');
export const ORIGIN = 'http://workbench.test';

function makeRun(id: string, name: string): Run {
  const config = { ...defaultRunConfig(), name, model: '/home/someone/models/a-rather-long-model-folder-name/TinyLlama-1.1B-Chat-v1.0' };
  return {
    id,
    name,
    config,
    status: 'completed',
    backend: { name: 'wasm', adapter: 'XNNPACK (wasm SIMD)' },
    createdAt: '2025-01-02T10:00:00.000Z',
    startedAt: '2025-01-02T10:00:01.000Z',
    finishedAt: '2025-01-02T10:05:00.000Z',
    error: null,
    progress: { step: 120, maxSteps: 120, tokensPerSecond: 900, stepTimeMs: 120, etaSeconds: 0 },
    lastCheckpointStep: 120,
    adapterId: `ad-${id}`,
  };
}

function makeAdapter(run: Run): Adapter {
  return {
    id: `ad-${run.id}`,
    runId: run.id,
    name: run.name,
    method: 'bias-aware',
    baseModel: run.config.model,
    path: `/data/runs/${run.id}/adapter`,
    step: 120,
    trainableParams: 294_912,
    createdAt: '2025-01-02T10:05:00.000Z',
    description: 'Answers questions about colours of everyday objects, politely, in full sentences, with a short justification',
  };
}

/**
 * `pickedPath`: stands in for the desktop app's native dialog (window.workbenchHost), answering this path.
 * `pytorchSetupError`: the pytorch engine's set-up fails with this message.
 */
export async function openFake(page: Page, hash: string, options: { pickedPath?: string; pytorchSetupError?: string } = {}): Promise<void> {
  if (!existsSync(path.join(rendererDir, 'index.html'))) throw new Error('Build the renderer first: npm run build:renderer');
  const runs = [makeRun('run-1', 'colour questions with a long descriptive run name'), makeRun('run-2', 'second run')];
  const seed: FakeSeed = {
    defaults: defaultRunConfig(),
    methods: methodDescriptors,
    installedBackends: ['wasm', 'cpu'],
    runs,
    adapters: runs.map(makeAdapter),
    stepMs: 40,
    ...(options.pytorchSetupError ? { pytorchSetupError: options.pytorchSetupError } : {}),
  };
  await page.route(`${ORIGIN}/**`, (route) => {
    const pathname = new URL(route.request().url()).pathname;
    const file = path.join(rendererDir, pathname === '/' ? 'index.html' : pathname);
    if (!file.startsWith(rendererDir) || !existsSync(file)) return route.fulfill({ status: 404, body: 'not found' });
    return route.fulfill({ path: file });
  });
  await page.addInitScript(installFakeWorkbench, seed);
  if (options.pickedPath !== undefined) {
    await page.addInitScript((picked: string) => {
      (window as unknown as { workbenchHost: unknown }).workbenchHost = { pickPath: async () => picked };
    }, options.pickedPath);
  }
  await page.goto(`${ORIGIN}/${hash}`);
}
