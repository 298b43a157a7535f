// An in-page stand-in for the WorkbenchApi, for the UI tests in ui.spec.ts only (never shipped). It is
// installed as window.workbench before the app's scripts run, the way Electron's preload provides the real
// one, and simulates training with a decaying loss so every page state can be reached in seconds.
//
// installFakeWorkbench is serialized into the page by page.addInitScript: it must not use anything from
// its module scope at run time (types are fine, they are erased).
import type { PytorchEnvironment, RunEvent, SystemInfo } from '../../src-shared/api.ts';
import type { RunConfig } from '../../src-shared/config.ts';
import type { MethodDescriptor } from '../../src-shared/methods.ts';
import type { Adapter, ExportReport, MetricPoint, Run } from '../../src-shared/runs.ts';

export interface FakeSeed {
  defaults: RunConfig;
  methods: MethodDescriptor[];
  installedBackends: SystemInfo['installedBackends'];
  /** Runs (and their adapters) present when the page opens. */
  runs: Run[];
  adapters: Adapter[];
  /** Milliseconds per simulated training step. */
  stepMs: number;
  /** The pytorch engine's "Set up" fails with this message (no Python, no pip), after its first line. */
  pytorchSetupError?: string;
}

export function installFakeWorkbench(seed: FakeSeed): void {
  type Listener = (event: RunEvent) => void;
  const listeners = new Set<Listener>();
  const runs = new Map<string, Run>(seed.runs.map((r) => [r.id, r]));
  const metrics = new Map<string, MetricPoint[]>();
  const adapters = [...seed.adapters];
  const timers = new Map<string, number>();
  let counter = runs.size;
  let pytorchEnvironment: PytorchEnvironment = { ready: false, dir: '/data/engines/pytorch', problem: 'No Python environment at /data/engines/pytorch.' };

  const emit = (event: RunEvent) => {
    for (const listener of listeners) listener(structuredClone(event));
  };
  const error = (code: string, message: string) => Object.assign(new Error(message), { code, message });
  const reply = <T>(value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(structuredClone(value)), 5));
  const find = (id: string) => {
    const run = runs.get(id);
    if (!run) throw error('not_found', `No run with id ${id}.`);
    return run;
  };
  const update = (id: string, patch: Partial<Run>) => {
    const run = { ...find(id), ...patch };
    runs.set(id, run);
    emit({ kind: 'run', run });
    return run;
  };

  /** A loss that falls from ~3.2 towards ~1.4 with a little deterministic noise. */
  const lossAt = (step: number) => 1.4 + 1.8 * Math.exp(-step / 12) + 0.05 * Math.sin(step * 1.7);

  function train(id: string, fromStep: number) {
    let step = fromStep;
    // Like the engine after a resume: what was recorded after the checkpoint is trained again.
    metrics.set(
      id,
      (metrics.get(id) ?? []).filter((p) => p.step <= fromStep),
    );
    update(id, { status: 'running', startedAt: new Date().toISOString(), backend: { name: 'cpu', adapter: 'JavaScript (fake)' } });
    emit({ kind: 'log', runId: id, level: 'info', message: `training from step ${fromStep}` });
    const timer = window.setInterval(() => {
      const run = find(id);
      const t = run.config.training;
      step++;
      const time = Date.now();
      const points: MetricPoint[] = [
        { step, name: 'train/loss', value: lossAt(step), time },
        { step, name: 'lr', value: t.learningRate * Math.min(1, step / Math.max(1, t.warmupSteps)), time },
        { step, name: 'grad_norm', value: 0.5 + 1 / step, time },
        { step, name: 'tokens_per_s', value: 1200 + step, time },
        { step, name: 'step_time_ms', value: seed.stepMs, time },
      ];
      if (step % t.evalEvery === 0 || step === t.maxSteps) points.push({ step, name: 'val/loss', value: lossAt(step) + 0.1, time });
      metrics.get(id)!.push(...points);
      emit({ kind: 'metrics', runId: id, points });
      const patch: Partial<Run> = {
        progress: {
          step,
          maxSteps: t.maxSteps,
          tokensPerSecond: 1200 + step,
          stepTimeMs: seed.stepMs,
          etaSeconds: ((t.maxSteps - step) * seed.stepMs) / 1000,
        },
      };
      if (step % t.checkpointEvery === 0) patch.lastCheckpointStep = step;
      if (step >= t.maxSteps) {
        window.clearInterval(timer);
        timers.delete(id);
        const adapter: Adapter = {
          id: `adapter-${id}`,
          runId: id,
          name: run.name,
          method: run.config.method,
          baseModel: run.config.model,
          path: `/data/runs/${id}/adapter`,
          step,
          trainableParams: 147456,
          createdAt: new Date().toISOString(),
          description: null,
        };
        adapters.push(adapter);
        Object.assign(patch, { status: 'completed', finishedAt: new Date().toISOString(), adapterId: adapter.id, lastCheckpointStep: step });
      }
      update(id, patch);
    }, seed.stepMs);
    timers.set(id, timer);
  }

  function report(name: string): ExportReport {
    return {
      outDir: `/data/exports/${name}`,
      files: [
        { name: 'adapter_config.json', bytes: 412 },
        { name: 'adapter_model.safetensors', bytes: 590_112 },
      ],
      verification: { maxAbsDiffToTrained: 3.1e-7, maxAbsDiffToBase: 0.42, passed: true },
    };
  }

  const crowsPairs = (kept: string | null) => ({
    id: 'crows-pairs' as const,
    label: 'CrowS-Pairs',
    datasetKey: 'crowsPairs' as const,
    license: 'CC BY-SA 4.0',
    source: 'https://github.com/nyu-mll/crows-pairs',
    note: 'The whole benchmark.',
    path: kept,
    files: [{ name: 'crows_pairs_anonymized.csv', url: 'https://raw.githubusercontent.com/x', bytes: 437_764, sha256: 'dfb3' }],
  });

  window.workbench = {
    system: {
      info: () => reply({ version: '0.1.0', mode: 'browser' as const, dataDir: '/data', platform: 'linux', installedBackends: seed.installedBackends }),
      usage: () =>
        reply({
          dataDir: '/data',
          bytes: 12_345_678,
          parts: [
            { name: 'runs', bytes: 12_000_000 },
            { name: 'workbench.sqlite', bytes: 345_678 },
          ],
        }),
    },
    catalog: {
      list: () =>
        reply({
          models: [
            { id: 'default', name: 'Default model (tiny GPT-2)', path: '/app/resources/models/default', description: 'Embedded for trying things out.' },
          ],
          datasets: [{ id: 'sample', name: 'Sample instructions', path: '/app/resources/datasets/sample.jsonl', description: 'A few hundred short examples.' }],
          methods: seed.methods,
          defaults: seed.defaults,
        }),
    },
    runs: {
      list: () => reply([...runs.values()]),
      get: async (id: string) => reply(find(id)),
      metrics: async (id: string) => reply(metrics.get(id) ?? []),
      delete: async (id: string) => {
        const run = find(id);
        if (run.status === 'running' || run.status === 'queued') throw error('conflict', `Run ${id} is ${run.status}; stop it before deleting it.`);
        runs.delete(id);
        for (let k = adapters.length - 1; k >= 0; k--) if (adapters[k]!.runId === id) adapters.splice(k, 1);
        return reply([...runs.values()]);
      },
      start: async (input) => {
        const config = input as RunConfig;
        if (config.training.batchSize > 64)
          throw error('out_of_memory', 'Out of memory at batch size ' + config.training.batchSize + '. Lower the batch size.');
        const id = `run-${++counter}`;
        const run: Run = {
          id,
          name: config.name || `lora-${counter}`,
          config,
          status: 'queued',
          backend: null,
          createdAt: new Date().toISOString(),
          startedAt: null,
          finishedAt: null,
          error: null,
          progress: null,
          lastCheckpointStep: null,
          adapterId: null,
        };
        runs.set(id, run);
        emit({ kind: 'run', run });
        setTimeout(() => train(id, 0), 20);
        return reply(run);
      },
      stop: async (id: string) => {
        window.clearInterval(timers.get(id));
        timers.delete(id);
        return reply(update(id, { status: 'stopped', finishedAt: new Date().toISOString() }));
      },
      resume: async (id: string) => {
        const run = find(id);
        if (run.lastCheckpointStep === null) throw error('conflict', 'This run has no checkpoint to resume from.');
        setTimeout(() => train(id, run.lastCheckpointStep!), 20);
        return reply(update(id, { status: 'queued', error: null, finishedAt: null }));
      },
    },
    adapters: {
      list: () => reply(adapters),
      delete: async (id: string) => {
        const index = adapters.findIndex((a) => a.id === id);
        if (index < 0) throw error('not_found', `No adapter ${id}.`);
        adapters.splice(index, 1);
        return reply(adapters);
      },
      describe: async (request) => {
        const adapter = adapters.find((a) => a.id === request.adapterId);
        if (!adapter) throw error('not_found', `No adapter ${request.adapterId}.`);
        adapter.description = request.description.trim() || null;
        return reply(adapter);
      },
      // Every described adapter is an expert at an equal weight; the engine's arithmetic is tested elsewhere.
      generate: async (request) => {
        const experts = adapters.filter((a) => a.description !== null);
        if (experts.length === 0) throw error('invalid_input', 'No adapter has a task description yet.');
        const id = `adapter-gen-${++counter}`;
        const path = `/data/runs/gen-${counter}/adapter`;
        adapters.unshift({
          ...experts[0]!,
          id,
          runId: `gen-${counter}`,
          name: request.name,
          method: 'sg-lora',
          path,
          step: 0,
          description: request.description,
          createdAt: new Date().toISOString(),
        });
        return reply({
          adapterId: id,
          path,
          generator: request.generator ?? 'semantic-merge',
          truncationError: 0.125,
          durationMs: 40,
          experts: experts.map((e) => ({ adapterId: e.id, name: e.name, description: e.description!, cosine: 0.5, weight: 1 / experts.length })),
          ...(request.generator === 'cvae'
            ? {
                candidates: [
                  { distanceToMerge: 0.3, chosen: true },
                  { distanceToMerge: 0.6, chosen: false },
                ],
              }
            : {}),
        });
      },
      import: async () => {
        throw error('conflict', 'The UI test stand-in does not import adapters.');
      },
    },
    models: {
      inspect: async () => {
        throw error('conflict', 'The UI test stand-in does not inspect models.');
      },
      import: async () => {
        throw error('conflict', 'The UI test stand-in does not import models.');
      },
    },
    playground: {
      generate: async () => {
        throw error('conflict', 'The UI test stand-in does not generate text.');
      },
    },
    // Studies are tested against the real product (studies.spec.ts).
    studies: {
      list: () => reply([]),
      recipes: () => reply([]),
      get: async () => {
        throw error('conflict', 'The UI test stand-in does not run studies.');
      },
      start: async () => {
        throw error('conflict', 'The UI test stand-in does not run studies.');
      },
      resume: async () => {
        throw error('conflict', 'The UI test stand-in does not run studies.');
      },
      stop: async () => {
        throw error('conflict', 'The UI test stand-in does not run studies.');
      },
    },
    benchmarks: {
      list: () => reply([crowsPairs(null)]),
      fetch: async () => reply(crowsPairs('/data/benchmarks/crows-pairs/crows_pairs_anonymized.csv')),
    },
    datasets: {
      upload: async (request) => reply({ path: `/data/uploads/${request.name}` }),
      list: () => reply([]),
      preview: async () => {
        throw error('conflict', 'The UI test stand-in does not read datasets.');
      },
      register: async () => {
        throw error('conflict', 'The UI test stand-in does not register datasets.');
      },
      remove: async () => reply([]),
    },
    exports: {
      create: async (request) => {
        if (request.adapterId) {
          const adapter = adapters.find((a) => a.id === request.adapterId);
          if (!adapter) throw error('not_found', `No adapter ${request.adapterId}.`);
          return reply(report(adapter.name));
        }
        return reply(report(find(request.runId!).name));
      },
    },
    // No UI test drives evaluations yet: the stand-in holds none and refuses to start one.
    evals: {
      list: () => reply([]),
      get: async (id: string) => {
        throw error('not_found', `No evaluation ${id}.`);
      },
      stop: async (id: string) => {
        throw error('not_found', `No evaluation ${id}.`);
      },
      start: async () => {
        throw error('conflict', 'The UI test stand-in does not run evaluations.');
      },
      result: async (id: string) => {
        throw error('not_found', `No evaluation ${id}.`);
      },
      delete: async (id: string) => {
        throw error('not_found', `No evaluation ${id}.`);
      },
      // The quick check answers one queued perplexity evaluation of the base model (what the server starts first).
      quick: async () =>
        reply([
          {
            id: 'ev-quick',
            runId: null,
            adapterId: null,
            suite: 'perplexity' as const,
            status: 'queued' as const,
            model: 'default',
            backendChoice: 'auto' as const,
            backend: null,
            seed: 0,
            limit: null,
            datasets: { text: '/data/builtin/heldout.jsonl' },
            slices: null,
            summary: null,
            resultPath: null,
            progress: null,
            error: null,
            createdAt: '2025-01-03T10:00:00.000Z',
            finishedAt: null,
          },
        ]),
    },
    // The pytorch engine's environment: absent until "Set up" runs, which prints pip's lines a little apart.
    engines: {
      pytorch: async (request) => {
        if (!request?.setUp) return reply(pytorchEnvironment);
        const lines = [
          'Installing into /data/engines/pytorch: torch, transformers, peft, accelerate, safetensors',
          'Collecting torch',
          'Successfully installed torch-2.13.0',
        ];
        for (const line of seed.pytorchSetupError ? lines.slice(0, 1) : lines) {
          emit({ kind: 'engine-setup', engine: 'pytorch', line });
          await new Promise((resolve) => setTimeout(resolve, 300));
        }
        if (seed.pytorchSetupError) throw error('backend_unavailable', seed.pytorchSetupError);
        pytorchEnvironment = {
          ready: true,
          dir: '/data/engines/pytorch',
          python: '/data/engines/pytorch/bin/python',
          pythonVersion: '3.11.2',
          torch: '2.13.0+cu128',
          transformers: '5.0.0',
          peft: '0.21.0',
          accelerator: 'cuda',
          deviceName: 'NVIDIA GeForce RTX 4090',
          installed: true,
        };
        return reply(pytorchEnvironment);
      },
    },
    onRunEvent(listener: Listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
