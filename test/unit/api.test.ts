// The WorkbenchApi through `dispatch`, over a RunManager whose engine is a scripted stand-in for
// the worker thread: what the main process does with each worker message, without training.
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dispatch, type RunEvent, type WorkbenchApi } from '../../src-shared/api.ts';
import { defaultRunConfig } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { ExportReport, Run } from '../../src-shared/runs.ts';
import type { ExportJob, MainToWorker, TrainJob, WorkerToMain } from '../../src-shared/worker-protocol.ts';
import type { EvalJob, EvalResult, Evaluation } from '../../src-shared/eval.ts';
import { createWorkbenchApi, installedBackends } from '../../src-main/api.ts';
import { BenchmarkStore } from '../../src-main/benchmarks.ts';
import { Deletion } from '../../src-main/deletion.ts';
import { AdapterBank } from '../../src-main/adapter-bank.ts';
import { AdapterImporter } from '../../src-main/adapter-import.ts';
import { DatasetRegistry } from '../../src-main/datasets.ts';
import { ModelService } from '../../src-main/models.ts';
import { resolvePaths, type WorkbenchPaths } from '../../src-main/paths.ts';
import { EvalManager } from '../../src-main/evals.ts';
import { RunManager } from '../../src-main/runs.ts';
import { Store } from '../../src-main/store/index.ts';

class FakeWorker extends EventEmitter {
  readonly posted: MainToWorker[] = [];
  terminated = false;
  constructor(private readonly onPost: (worker: FakeWorker, message: MainToWorker) => void) {
    super();
  }
  postMessage(message: MainToWorker): void {
    this.posted.push(message);
    this.onPost(this, message);
  }
  send(message: WorkerToMain | Record<string, unknown>): void {
    this.emit('message', message);
  }
  terminate(): Promise<number> {
    if (!this.terminated) {
      this.terminated = true;
      setImmediate(() => this.emit('exit', 1));
    }
    return Promise.resolve(1);
  }
}

let root: string;
let paths: WorkbenchPaths;
let store: Store;
let manager: RunManager;
let evals: EvalManager;
let api: WorkbenchApi;
let workers: FakeWorker[];
let events: RunEvent[];
/** What the next worker does with what it is sent; default: nothing (the test drives it). */
let script: (worker: FakeWorker, message: MainToWorker) => void;

beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'lw-api-'));
  const appRoot = path.join(root, 'app');
  mkdirSync(path.join(appRoot, 'resources', 'models', 'default'), { recursive: true });
  mkdirSync(path.join(appRoot, 'resources', 'datasets', 'sample'), { recursive: true });
  writeFileSync(path.join(appRoot, 'package.json'), JSON.stringify({ name: 'lora-workbench', version: '9.8.7' }));
  writeFileSync(
    path.join(appRoot, 'resources', 'models', 'default', 'config.json'),
    JSON.stringify({ model_type: 'gpt2', n_layer: 2, n_embd: 64, vocab_size: 300 }),
  );
  writeFileSync(path.join(appRoot, 'resources', 'datasets', 'sample', 'train.jsonl'), '{"text":"a"}\n{"text":"b"}\n');
  paths = resolvePaths({ dataDir: path.join(root, 'data'), appRoot });
  store = Store.open(paths.dbFile);
  workers = [];
  events = [];
  script = () => undefined;
  manager = new RunManager({
    store,
    paths,
    metricsFlushMs: 20,
    stopTimeoutMs: 2000,
    createWorker: () => {
      const worker = new FakeWorker((w, m) => script(w, m));
      workers.push(worker);
      return worker as unknown as Worker;
    },
  });
  evals = new EvalManager({
    store,
    paths,
    stopTimeoutMs: 2000,
    createWorker: () => {
      const worker = new FakeWorker((w, m) => script(w, m));
      workers.push(worker);
      return worker as unknown as Worker;
    },
  });
  const fakeWorker = () => {
    const worker = new FakeWorker((w, m) => script(w, m));
    workers.push(worker);
    return worker as unknown as Worker;
  };
  api = createWorkbenchApi({
    manager,
    evals,
    paths,
    mode: 'headless',
    models: new ModelService({ store, paths, createWorker: fakeWorker }),
    datasets: new DatasetRegistry({ store, paths, createWorker: fakeWorker }),
    adapterBank: new AdapterBank({ store, paths, createWorker: fakeWorker }),
    deletion: new Deletion({ store, paths, isTraining: (id) => manager.isActive(id) }),
    benchmarks: new BenchmarkStore({ paths }),
    quickEval: { start: async () => [] },
    adapterImporter: new AdapterImporter({ store, paths, createWorker: fakeWorker }),
  });
  api.onRunEvent((event) => events.push(event));
});

afterEach(async () => {
  await manager.close();
  await evals.close();
  store.close();
  rmSync(root, { recursive: true, force: true });
});

const call = <T = unknown>(method: string, input?: unknown) => dispatch(api, method, input) as Promise<T>;
async function failure(promise: Promise<unknown>): Promise<WorkbenchError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(WorkbenchError);
    return error as WorkbenchError;
  }
  throw new Error('expected the call to fail');
}
const until = async (check: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
};
const statusOf = (id: string) => store.runs.require(id).status;
const started: WorkerToMain = { type: 'started', backend: { name: 'cpu', adapter: 'JavaScript' }, trainableParams: 1000, totalParams: 50000 };

describe('validation through dispatch', () => {
  it('rejects an unknown method', async () => {
    const error = await failure(call('runs.destroyEverything'));
    expect(error.code).toBe('invalid_input');
    expect(error.message).toMatch(/Unknown API method "runs.destroyEverything"/);
  });

  it('names the bad field of a run configuration', async () => {
    const error = await failure(call('runs.start', { training: { learningRate: -1, batchSize: 2.5 } }));
    expect(error.code).toBe('invalid_input');
    expect(error.message).toMatch(/training\.learningRate/);
    expect(error.message).toMatch(/training\.batchSize/);
    expect((error.details as { issues: { path: string }[] }).issues.map((i) => i.path).sort()).toEqual(['training.batchSize', 'training.learningRate']);
    expect(store.runs.list()).toEqual([]);
  });

  it('rejects an empty id and an export request naming both sources', async () => {
    expect((await failure(call('runs.get', ''))).code).toBe('invalid_input');
    const both = await failure(call('exports.create', { runId: 'a', adapterId: 'b' }));
    expect(both.message).toMatch(/exactly one of adapterId or runId/);
  });

  it('reports a model folder that does not exist without creating a run', async () => {
    const error = await failure(call('runs.start', { model: path.join(root, 'no-such-model') }));
    expect(error.code).toBe('not_found');
    expect(error.message).toContain('no-such-model');
    expect(store.runs.list()).toEqual([]);
  });
});

describe('system and catalog', () => {
  it('describes this installation', async () => {
    const info = await call<{ version: string; mode: string; dataDir: string; installedBackends: string[] }>('system.info');
    expect(info).toMatchObject({ version: '9.8.7', mode: 'headless', dataDir: paths.dataDir });
    expect(info.installedBackends).toContain('cpu');
    expect(installedBackends((pkg) => pkg !== 'webgpu' && pkg !== '@tensorflow/tfjs-node')).toEqual(['tensorflow', 'wasm', 'cpu']);
    expect(installedBackends((pkg) => pkg === '@tensorflow/tfjs-backend-cpu')).toEqual(['cpu']);
  });

  it('lists the embedded model and dataset and the defaults', async () => {
    const catalog = await call<{
      models: { id: string; path: string; description: string }[];
      datasets: { id: string; description: string }[];
      defaults: unknown;
      methods: { id: string }[];
    }>('catalog.list');
    expect(catalog.models).toEqual([expect.objectContaining({ id: 'default', path: paths.defaultModelDir })]);
    expect(catalog.models[0]!.description).toMatch(/2 layers/);
    expect(catalog.datasets).toEqual([expect.objectContaining({ id: 'sample', path: paths.sampleDatasetPath })]);
    expect(catalog.datasets[0]!.description).toMatch(/^2 examples/);
    expect(catalog.defaults).toEqual(defaultRunConfig());
    expect(catalog.methods.map((m) => m.id)).toEqual(['lora', 'lora-plus', 'selora', 'bias-aware', 'full', 'bitfit', 'prompt-tuning', 'houlsby', 'qlora']);
  });
});

describe('runs driven by worker messages', () => {
  it('starts a worker with the resolved job and records a run to completion', async () => {
    const run = await call<Run>('runs.start', { name: 'my run', training: { maxSteps: 4, checkpointEvery: 2 } });
    expect(run.status).toBe('queued');
    const [worker] = workers;
    const job = worker!.posted[0] as TrainJob;
    expect(job).toMatchObject({
      type: 'train',
      runId: run.id,
      modelDir: paths.defaultModelDir,
      datasetPath: paths.sampleDatasetPath,
      runDir: paths.runDir(run.id),
      resumeFrom: null,
    });
    expect(existsSync(job.runDir)).toBe(true);

    worker!.send(started);
    expect(store.runs.require(run.id)).toMatchObject({ status: 'running', backend: { name: 'cpu', adapter: 'JavaScript' } });
    worker!.send({ type: 'progress', progress: { step: 2, maxSteps: 4, tokensPerSecond: 100, stepTimeMs: 10, etaSeconds: 1 } });
    worker!.send({
      type: 'metrics',
      points: [
        { step: 1, name: 'train/loss', value: 3, time: 1 },
        { step: 2, name: 'train/loss', value: 2.5, time: 2 },
      ],
    });
    worker!.send({ type: 'metrics', points: [{ step: 2, name: 'lr', value: 0.001, time: 2 }] });
    // Points wait in the buffer, yet a reader already sees them.
    expect(await call<unknown[]>('runs.metrics', run.id)).toHaveLength(3);
    await until(() => events.some((e) => e.kind === 'metrics'));
    const metricEvents = events.filter((e) => e.kind === 'metrics');
    // Both messages were flushed together: one transaction, one event.
    expect(metricEvents).toHaveLength(1);
    expect(store.metrics.list(run.id)).toHaveLength(3);

    worker!.send({ type: 'checkpoint', step: 2, dir: path.join(job.runDir, 'checkpoints', 'step-2') });
    worker!.send({ type: 'log', level: 'warn', message: 'something to know' });
    worker!.send({ type: 'trained', adapterDir: path.join(job.runDir, 'adapter'), step: 4, trainableParams: 1000 });
    const final = await manager.waitForRun(run.id);
    expect(final).toMatchObject({ status: 'completed', lastCheckpointStep: 2, error: null });
    expect(final.finishedAt).not.toBeNull();
    expect(worker!.terminated).toBe(true);
    const [adapter] = await call<{ id: string; runId: string; name: string; step: number; path: string }[]>('adapters.list');
    expect(adapter).toMatchObject({ id: final.adapterId, runId: run.id, name: 'my run', step: 4, path: path.join(job.runDir, 'adapter') });
    expect(events).toContainEqual({ kind: 'log', runId: run.id, level: 'warn', message: 'something to know' });
    expect(events.filter((e) => e.kind === 'run').map((e) => (e as { run: Run }).run.status)).toEqual(
      expect.arrayContaining(['queued', 'running', 'completed']),
    );
  });

  it('drops the rows of checkpoints whose folders the engine pruned', async () => {
    const run = await call<Run>('runs.start', {});
    const dirOf = (step: number) => path.join(paths.runDir(run.id), 'checkpoints', `step-${step}`);
    for (const step of [2, 4]) {
      mkdirSync(dirOf(step), { recursive: true });
      workers[0]!.send({ type: 'checkpoint', step, dir: dirOf(step) });
    }
    rmSync(dirOf(2), { recursive: true });
    mkdirSync(dirOf(6), { recursive: true });
    workers[0]!.send({ type: 'checkpoint', step: 6, dir: dirOf(6) });
    expect(store.checkpoints.list(run.id).map((c) => c.step)).toEqual([4, 6]);
    expect(store.runs.require(run.id).lastCheckpointStep).toBe(6);
  });

  it('fails a run whose worker exits without a final message, or sends garbage', async () => {
    const a = await call<Run>('runs.start', {});
    workers[0]!.send(started);
    workers[0]!.emit('error', new Error('segfault in kernel'));
    workers[0]!.emit('exit', 7);
    const failedA = await manager.waitForRun(a.id);
    expect(failedA.status).toBe('failed');
    expect(failedA.error).toMatch(/exited unexpectedly \(exit code 7\): segfault in kernel/);

    const b = await call<Run>('runs.start', {});
    workers[1]!.send({ type: 'progress', progress: { step: -5 } } as Record<string, unknown>);
    const failedB = await manager.waitForRun(b.id);
    expect(failedB.status).toBe('failed');
    expect(failedB.error).toMatch(/invalid message/);
  });

  it('stops a run when the worker confirms, and resumes it from its last checkpoint', async () => {
    script = (worker, message) => {
      if (message.type === 'stop') worker.send({ type: 'stopped', step: 3 });
    };
    const run = await call<Run>('runs.start', {});
    const first = workers[0]!;
    first.send(started);
    first.send({ type: 'metrics', points: [2, 3].map((step) => ({ step, name: 'train/loss', value: 1, time: step })) });
    const checkpointDir = path.join(paths.runDir(run.id), 'checkpoints', 'step-2');
    mkdirSync(checkpointDir, { recursive: true });
    first.send({ type: 'checkpoint', step: 2, dir: checkpointDir });
    first.send({ type: 'metrics', points: [{ step: 3, name: 'lr', value: 1, time: 3 }] });

    const stopped = await call<Run>('runs.stop', run.id);
    expect(first.posted.at(-1)).toEqual({ type: 'stop' });
    expect(stopped.status).toBe('stopped');
    expect((await failure(call('runs.stop', run.id))).code).toBe('conflict');

    const resumed = await call<Run>('runs.resume', run.id);
    expect(resumed.status).toBe('queued');
    expect((workers[1]!.posted[0] as TrainJob).resumeFrom).toBe(checkpointDir);
    // Steps after the checkpoint are trained again, so their old points are gone.
    expect(store.metrics.list(run.id).map((p) => p.step)).toEqual([2]);
    expect((await failure(call('runs.resume', run.id))).message).toMatch(/already training/);
  });

  it('explains why a run cannot be resumed', async () => {
    script = (worker, message) => {
      if (message.type === 'stop') worker.send({ type: 'stopped', step: 1 });
    };
    const run = await call<Run>('runs.start', {});
    await call('runs.stop', run.id);
    const noCheckpoint = await failure(call('runs.resume', run.id));
    expect(noCheckpoint.code).toBe('conflict');
    expect(noCheckpoint.message).toMatch(/no checkpoint/);

    store.runs.update(run.id, { status: 'completed' });
    expect((await failure(call('runs.resume', run.id))).message).toMatch(/is completed; only interrupted, stopped, failed runs can be resumed/);
  });

  it('marks training runs interrupted when the manager closes', async () => {
    const run = await call<Run>('runs.start', {});
    workers[0]!.send(started);
    await manager.close();
    expect(workers[0]!.terminated).toBe(true);
    expect(statusOf(run.id)).toBe('interrupted');
    expect((await failure(call('runs.start', {}))).message).toMatch(/shutting down/);
  });
});

describe('exports', () => {
  const report: ExportReport = {
    outDir: '/set/by/test',
    files: [
      { name: 'adapter_model.safetensors', bytes: 123 },
      { name: 'adapter_config.json', bytes: 45 },
    ],
    verification: { maxAbsDiffToTrained: 0, maxAbsDiffToBase: 0.3, passed: true },
  };

  it('refuses a run with nothing to export', async () => {
    const run = await call<Run>('runs.start', {});
    const error = await failure(call('exports.create', { runId: run.id }));
    expect(error.code).toBe('conflict');
    expect(error.message).toMatch(/no adapter and no checkpoint/);
  });

  it("exports a completed run's adapter in a worker into exports/<name>-step<N>", async () => {
    const run = await call<Run>('runs.start', { name: 'qa adapter' });
    const adapterDir = path.join(paths.runDir(run.id), 'adapter');
    mkdirSync(adapterDir, { recursive: true });
    workers[0]!.send(started);
    workers[0]!.send({ type: 'trained', adapterDir, step: 120, trainableParams: 10 });
    await manager.waitForRun(run.id);

    script = (worker, message) => {
      if (message.type === 'export') {
        worker.send({ type: 'log', level: 'info', message: 'writing' });
        worker.send({ type: 'exported', report: { ...report, outDir: message.outDir } });
      }
    };
    const result = await call<ExportReport>('exports.create', { runId: run.id });
    const job = workers[1]!.posted[0] as ExportJob;
    expect(job).toEqual({
      type: 'export',
      sourceDir: adapterDir,
      modelDir: paths.defaultModelDir,
      outDir: path.join(paths.exportsDir, 'qa-adapter-step120'),
      backend: 'auto',
      format: 'peft',
    });
    expect(result.outDir).toBe(job.outDir);
    expect(workers[1]!.terminated).toBe(true);

    script = (worker, message) => {
      if (message.type === 'export') worker.send({ type: 'failed', error: { code: 'export_mismatch', message: 'logits differ' } });
    };
    const error = await failure(call('exports.create', { adapterId: store.runs.require(run.id).adapterId }));
    expect(error).toMatchObject({ code: 'export_mismatch', message: 'logits differ' });
  });
});

describe('evaluations', () => {
  const crowsPairs = () => {
    const file = path.join(root, 'crows.csv');
    writeFileSync(file, 'sent_more,sent_less\n');
    return file;
  };
  const crowsScores = (count: number, stereoPercent: number) => ({
    count,
    stereoPercent,
    tiePercent: 0,
    meanLogLikDiff: 0.25,
    stereoDirectionPercent: stereoPercent,
    antistereoDirectionPercent: null,
  });
  const result = (job: EvalJob): EvalResult => ({
    suite: 'bias',
    modelDir: job.modelDir,
    adapter: null,
    backend: { name: 'cpu', adapter: 'JavaScript' },
    seed: job.seed,
    slices: [{ dataset: 'crows-pairs', path: job.datasets.crowsPairs!, limit: job.limit, count: 4, sha256: 'c'.repeat(64) }],
    startedAt: '2025-01-01T00:00:00.000Z',
    finishedAt: '2025-01-01T00:00:01.000Z',
    durationMs: 1000,
    bias: {
      crowsPairs: {
        overall: crowsScores(4, 75),
        byBiasType: { gender: crowsScores(3, 66.7), age: crowsScores(1, 100) },
        biasScore: 25,
        items: [{ id: 1, biasType: 'age', direction: 'stereo', logLikMore: -3, logLikLess: -4 }],
      },
      stereoSet: null,
      bbq: null,
      representationShift: null,
    },
    notes: [],
  });
  const evalEvents = () => events.filter((e): e is Extract<RunEvent, { kind: 'eval' }> => e.kind === 'eval');

  it("evaluates an adapter on its run's model, relays progress and stores the figures and the result file", async () => {
    const run = await call<Run>('runs.start', { name: 'to evaluate' });
    const adapterDir = path.join(paths.runDir(run.id), 'adapter');
    mkdirSync(adapterDir, { recursive: true });
    workers[0]!.send(started);
    workers[0]!.send({ type: 'trained', adapterDir, step: 30, trainableParams: 10 });
    await manager.waitForRun(run.id);
    const adapterId = store.runs.require(run.id).adapterId!;

    const file = crowsPairs();
    const evaluation = await call<Evaluation>('evals.start', { suite: 'bias', adapterId, datasets: { crowsPairs: file }, limit: 4, seed: 9, backend: 'cpu' });
    expect(evaluation).toMatchObject({ status: 'queued', runId: run.id, adapterId, suite: 'bias', model: 'default', seed: 9, limit: 4, backendChoice: 'cpu' });
    const worker = workers[1]!;
    const job = worker.posted[0] as EvalJob;
    expect(job).toMatchObject({
      type: 'eval',
      modelDir: paths.defaultModelDir,
      adapterDir,
      suite: 'bias',
      datasets: { crowsPairs: file },
      limit: 4,
      seed: 9,
      backend: 'cpu',
    });

    worker.send({ type: 'eval-progress', done: 2, total: 4 });
    expect((await call<Evaluation>('evals.get', evaluation.id)).progress).toEqual({ done: 2, total: 4 });
    expect(evalEvents().at(-1)!.evaluation).toMatchObject({ status: 'running', progress: { done: 2, total: 4 } });
    worker.send({ type: 'log', level: 'warn', message: 'two rows left out' });
    expect(evalEvents().at(-1)!.log).toEqual({ level: 'warn', message: 'two rows left out' });

    worker.send({ type: 'eval-progress', done: 4, total: 4 });
    worker.send({ type: 'evaluated', result: result(job) });
    const done = await evals.waitFor(evaluation.id);
    expect(done).toMatchObject({ status: 'completed', backend: { name: 'cpu', adapter: 'JavaScript' }, progress: { done: 4, total: 4 }, error: null });
    expect(done.slices).toEqual(result(job).slices);
    expect(done.summary).toMatchObject({
      'crowsPairs.overall.stereoPercent': 75,
      'crowsPairs.byBiasType.gender.stereoPercent': 66.7,
      'crowsPairs.byBiasType.age.count': 1,
      'crowsPairs.biasScore': 25,
    });
    expect(Object.keys(done.summary!).some((k) => k.includes('items'))).toBe(false);
    expect(done.resultPath).toBe(path.join(paths.dataDir, 'evals', `${evaluation.id}.json`));
    expect(JSON.parse(readFileSync(done.resultPath!, 'utf8'))).toEqual(result(job));
    expect(worker.terminated).toBe(true);
    expect((await call<Evaluation[]>('evals.list')).map((e) => e.id)).toEqual([evaluation.id]);
  });

  it('stops an evaluation, and refuses to stop one that is not running', async () => {
    script = (worker, message) => {
      if (message.type === 'stop') worker.send({ type: 'stopped', step: 0 });
    };
    const evaluation = await call<Evaluation>('evals.start', { suite: 'bias', datasets: { crowsPairs: crowsPairs() } });
    expect(evaluation).toMatchObject({ adapterId: null, runId: null, model: 'default', limit: null, seed: 0, backendChoice: 'auto' });
    expect((workers[0]!.posted[0] as EvalJob).adapterDir).toBeNull();
    const stopped = await call<Evaluation>('evals.stop', evaluation.id);
    expect(stopped.status).toBe('stopped');
    expect(workers[0]!.posted.map((m) => m.type)).toEqual(['eval', 'stop']);
    expect((await failure(call('evals.stop', evaluation.id))).code).toBe('conflict');
  });

  it('marks an evaluation failed when its worker fails or dies', async () => {
    const first = await call<Evaluation>('evals.start', { suite: 'bias', datasets: { crowsPairs: crowsPairs() } });
    workers[0]!.send({ type: 'failed', error: { code: 'out_of_memory', message: 'Out of memory. Lower the batch size.' } });
    expect(await evals.waitFor(first.id)).toMatchObject({ status: 'failed', error: 'Out of memory. Lower the batch size.' });

    const second = await call<Evaluation>('evals.start', { suite: 'bias', datasets: { crowsPairs: crowsPairs() } });
    workers[1]!.emit('error', new Error('segfault in a kernel'));
    void workers[1]!.terminate();
    const failed = await evals.waitFor(second.id);
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/exited unexpectedly.*segfault in a kernel/);
  });

  it('validates the request before anything is stored', async () => {
    const none = await failure(call('evals.start', { suite: 'bias', datasets: {} }));
    expect(none.code).toBe('invalid_input');
    expect(none.message).toMatch(/crowsPairs, stereoSet, bbq/);
    const qqp = await failure(call('evals.start', { suite: 'qqp', datasets: { crowsPairs: crowsPairs() } }));
    expect(qqp.message).toMatch(/qqp dataset/);
    const missing = await failure(call('evals.start', { suite: 'bias', datasets: { bbq: path.join(root, 'no-bbq') } }));
    expect(missing).toMatchObject({ code: 'not_found', message: expect.stringContaining('no-bbq') });
    expect((await failure(call('evals.start', { suite: 'bias', adapterId: 'ad-nope', datasets: { crowsPairs: crowsPairs() } }))).code).toBe('not_found');
    const model = await failure(call('evals.start', { suite: 'bias', model: path.join(root, 'no-model'), datasets: { crowsPairs: crowsPairs() } }));
    expect(model.code).toBe('not_found');
    expect(store.evaluations.list()).toEqual([]);
    expect(workers).toEqual([]);
  });

  it('marks an evaluation this process left running as failed when a new manager starts', async () => {
    const evaluation = await call<Evaluation>('evals.start', { suite: 'bias', datasets: { crowsPairs: crowsPairs() } });
    workers[0]!.send({ type: 'eval-progress', done: 1, total: 4 });
    const next = new EvalManager({
      store,
      paths,
      createWorker: () => {
        throw new Error('no worker in this test');
      },
    });
    expect(next.get(evaluation.id)).toMatchObject({ status: 'failed', error: expect.stringMatching(/Interrupted/) });
    await next.close();
  });
});
