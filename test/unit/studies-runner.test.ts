// The study runner over a real store, with the workbench's runs and evaluations played by a stand-in
// that writes ordinary rows: a study killed mid-way resumes without redoing finished cells, stop and
// continue, and figure data equal to the stored evaluations.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RunConfigSchema } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import type { EvalStartRequestInput, Evaluation } from '../../src-shared/eval.ts';
import type { Run } from '../../src-shared/runs.ts';
import { summarizeValues } from '../../src-shared/study-figures.ts';
import type { StudyRecipeInput } from '../../src-shared/studies.ts';
import { resolvePaths, type WorkbenchPaths } from '../../src-main/paths.ts';
import { StudyService, type StudyJobs } from '../../src-main/studies.ts';
import { Store } from '../../src-main/store/index.ts';

let dir: string;
let paths: WorkbenchPaths;
let store: Store;

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lw-studies-'));
  paths = resolvePaths({ dataDir: dir });
  store = Store.open(paths.dbFile);
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** F1 the stand-in "measures": depends on the rank and the seed, so means and spreads are known. */
const fakeF1 = (r: number, seed: number) => 0.5 + r / 100 + seed / 1000;

/**
 * Runs and evaluations as rows in the store, finished on the next look. `freezeAtRun` n: the n-th run
 * started never finishes and every later call hangs, as in a process that was killed.
 */
function standIn(options: { freezeAtRun?: number; holdRuns?: boolean } = {}) {
  const started: string[] = [];
  const resumed: string[] = [];
  const evaluationsStarted: string[] = [];
  const stopped: string[] = [];
  let frozen = false;
  const loraRank = (run: Run): number => ('lora' in run.config ? run.config.lora.r : 0);
  const hang = <T>(): Promise<T> => new Promise<T>(() => undefined);
  const now = () => new Date().toISOString();
  const finishRun = (run: Run): Run => {
    const step = run.config.training.maxSteps;
    store.metrics.insertBatch([[run.id, [1, 2, 3].map((s) => ({ step: s, name: 'val/loss', value: 3 - s * 0.1 - loraRank(run) / 100, time: s }))]]);
    store.adapters.create({
      id: `ad-${run.id}`,
      runId: run.id,
      name: run.name,
      method: run.config.method,
      baseModel: 'default',
      path: `/x/${run.id}`,
      step,
      trainableParams: 10,
      createdAt: now(),
    });
    return store.runs.update(run.id, {
      status: 'completed',
      finishedAt: now(),
      lastCheckpointStep: step,
      progress: { step, maxSteps: step, tokensPerSecond: 1, stepTimeMs: 1, etaSeconds: 0 },
    });
  };
  const jobs: StudyJobs = {
    runs: {
      start: async (input) => {
        if (frozen) return hang();
        const config = RunConfigSchema.parse(input);
        const run = store.runs.create({ id: `run-${store.runs.list().length + 1}`, name: config.name, config, createdAt: now(), ownerPid: process.pid });
        started.push(run.id);
        if (options.freezeAtRun === started.length) frozen = true;
        return store.runs.update(run.id, { status: 'running', lastCheckpointStep: 1 });
      },
      get: async (id) => {
        if (frozen) return hang();
        const run = store.runs.require(id);
        return run.status === 'running' && !options.holdRuns ? finishRun(run) : run;
      },
      stop: async (id) => {
        stopped.push(id);
        return store.runs.update(id, { status: 'stopped' });
      },
      resume: async (id) => {
        resumed.push(id);
        return store.runs.update(id, { status: 'running' });
      },
    },
    evals: {
      stop: async (id) => store.evaluations.update(id, { status: 'stopped' }),
      start: async (input: EvalStartRequestInput): Promise<Evaluation> => {
        if (frozen) return hang();
        const adapter = store.adapters.list().find((a) => a.id === input.adapterId)!;
        const run = store.runs.require(adapter.runId);
        const id = `ev-${store.evaluations.list().length + 1}`;
        evaluationsStarted.push(id);
        store.evaluations.create({
          id,
          runId: run.id,
          adapterId: adapter.id,
          suite: input.suite,
          model: 'default',
          backendChoice: 'auto',
          seed: 0,
          limit: input.limit ?? null,
          datasets: input.datasets,
          createdAt: now(),
          ownerPid: process.pid,
        });
        return store.evaluations.update(id, {
          status: 'completed',
          summary: { 'qqp.scores.f1': fakeF1(loraRank(run), run.config.training.seed), 'qqp.scores.accuracy': 0.5 },
          finishedAt: now(),
        });
      },
      get: async (id) => (frozen ? hang() : store.evaluations.require(id)),
    },
  };
  return { jobs, started, resumed, evaluationsStarted, stopped };
}

const recipe: StudyRecipeInput = {
  name: 'rank-study',
  title: 'F1 by rank',
  base: { training: { maxSteps: 4 } },
  axes: [{ name: 'rank', path: 'lora.r', values: [2, 8] }],
  seeds: [1, 2, 3],
  evaluations: [{ id: 'qqp', suite: 'qqp', datasets: { qqp: '/data/qqp.jsonl' }, limit: 5 }],
  figures: [
    { id: 'f1', title: 'F1 by rank', x: { axis: 'rank' }, metric: { evaluation: 'qqp', key: 'qqp.scores.f1' } },
    { id: 'loss', title: 'Validation loss', kind: 'line', x: { steps: true }, series: { axis: 'rank' }, metric: { run: 'val/loss' } },
  ],
};

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('StudyService', () => {
  it('a study killed mid-way continues where it stopped: finished cells are not redone, the cut run resumes', async () => {
    const first = standIn({ freezeAtRun: 4 });
    const killed = new StudyService({ store, paths, pollMs: 1 });
    killed.connect(first.jobs);
    const study = await killed.start({ recipe });
    await until(() => first.started.length === 4, 'the fourth run');
    const before = store.studies.cells(study.id);
    expect(before.filter((c) => c.status === 'completed').map((c) => c.key)).toEqual(['rank=2 seed=1', 'rank=2 seed=2', 'rank=2 seed=3']);
    expect(before[3]).toMatchObject({ status: 'training', runId: first.started[3] });
    const midway = killed.get(study.id).progress;
    expect(midway).toMatchObject({ cellsDone: 3, cellsTotal: 6, current: { key: 'rank=8 seed=1', phase: 'training' } });
    expect(midway.etaSeconds).not.toBeNull();
    // The process dies here: its run is left 'running' and the RunManager of the next process marks it interrupted.
    store.runs.markInterrupted(() => true, 'interrupted');

    const second = standIn();
    const restarted = new StudyService({ store, paths, pollMs: 1 });
    restarted.connect(second.jobs);
    expect(restarted.get(study.id).status).toBe('interrupted');
    const continued = await restarted.start({ recipe });
    expect(continued.id).toBe(study.id);
    const final = await restarted.waitFor(study.id);
    expect(final.status).toBe('completed');
    expect(final.progress).toMatchObject({ cellsDone: 6, cellsTotal: 6, etaSeconds: 0 });
    expect(second.resumed).toEqual([first.started[3]]);
    expect(second.started).toHaveLength(2);
    expect(second.evaluationsStarted).toHaveLength(3);
    const after = store.studies.cells(study.id);
    expect(after.slice(0, 4).map((c) => c.runId)).toEqual(first.started);
    expect(after.slice(0, 3).map((c) => c.evaluations)).toEqual(before.slice(0, 3).map((c) => c.evaluations));
    // The recipe again with another figure redraws the completed study; fresh measures again.
    const redrawn = await restarted.start({
      recipe: { ...recipe, figures: [{ id: 'acc', title: 'Accuracy', x: { axis: 'rank' }, metric: { evaluation: 'qqp', key: 'qqp.scores.accuracy' } }] },
    });
    expect(redrawn).toMatchObject({ id: study.id, status: 'completed' });
    expect(restarted.detail(study.id).figures.map((f) => f.id)).toEqual(['acc']);
    expect(second.started).toHaveLength(2);
    const fresh = await restarted.start({ recipe, fresh: true });
    expect(fresh.id).not.toBe(study.id);
    await restarted.waitFor(fresh.id);
    expect(second.started).toHaveLength(8);
  });

  it('figure data equals the stored evaluations: mean and sample standard deviation over seeds', async () => {
    const { jobs } = standIn();
    const service = new StudyService({ store, paths, pollMs: 1 });
    service.connect(jobs);
    const study = await service.start({ recipe, scale: { seeds: [4, 9, 30] } });
    await service.waitFor(study.id);
    const detail = service.detail(study.id);
    const f1 = detail.figures.find((f) => f.id === 'f1')!;
    expect(f1.xs).toEqual(['2', '8']);
    for (const [i, rank] of ['2', '8'].entries()) {
      const stored = detail.cells.filter((c) => c.levels.rank === rank).map((c) => store.evaluations.get(c.evaluations.qqp!)!.summary!['qqp.scores.f1']!);
      expect(stored).toHaveLength(3);
      const mean = stored.reduce((a, b) => a + b, 0) / 3;
      const std = Math.sqrt(stored.reduce((a, v) => a + (v - mean) ** 2, 0) / 2);
      const point = f1.series[0]!.points[i]!;
      expect(point.values).toEqual(stored);
      expect(point.mean).toBeCloseTo(mean, 12);
      expect(point.std).toBeCloseTo(std, 12);
      expect(point.mean).toBeCloseTo(fakeF1(Number(rank), (4 + 9 + 30) / 3), 12);
    }
    const loss = detail.figures.find((f) => f.id === 'loss')!;
    expect(loss.xs).toEqual(['1', '2', '3']);
    expect(loss.series.map((s) => s.label)).toEqual(['2', '8']);
    expect(loss.series[1]!.points[2]).toMatchObject({ n: 3, mean: 3 - 0.3 - 0.08, std: 0 });
    expect(summarizeValues([1, 2, 3])).toMatchObject({ mean: 2, std: 1, min: 1, max: 3 });
  });

  it('stops the current run and continues from it later', async () => {
    const held = standIn({ holdRuns: true });
    const service = new StudyService({ store, paths, pollMs: 1 });
    service.connect(held.jobs);
    const study = await service.start({ recipe, scale: { seeds: [1] } });
    await until(() => held.started.length === 1, 'the first run');
    const stopped = await service.stop(study.id);
    expect(stopped.status).toBe('stopped');
    expect(held.stopped).toEqual(held.started);
    expect(store.studies.cells(study.id)[0]).toMatchObject({ status: 'pending', runId: held.started[0] });
    await expect(service.stop(study.id)).rejects.toThrow(/not running/);

    const free = standIn();
    service.connect(free.jobs);
    await service.resume(study.id);
    expect((await service.waitFor(study.id)).status).toBe('completed');
    expect(free.resumed).toEqual(held.started);
    expect(free.started).toHaveLength(1);
  });

  it('a stop asked while a run is being started stops that run as soon as it exists', async () => {
    const held = standIn({ holdRuns: true });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let asked = false;
    const slowStart: StudyJobs = {
      ...held.jobs,
      runs: { ...held.jobs.runs, start: async (input) => ((asked = true), await gate, held.jobs.runs.start(input)) },
    };
    const service = new StudyService({ store, paths, pollMs: 1 });
    service.connect(slowStart);
    const study = await service.start({ recipe, scale: { seeds: [1] } });
    await until(() => asked, 'runs.start');
    const stopping = service.stop(study.id);
    release();
    expect((await stopping).status).toBe('stopped');
    expect(held.stopped).toEqual(held.started);
    expect(store.runs.require(held.started[0]!).status).toBe('stopped');
  });

  it('leaves a study that another live process runs to that process', async () => {
    const service = new StudyService({ store, paths, pollMs: 1 });
    service.connect(standIn().jobs);
    const study = await service.start({ recipe, scale: { seeds: [1] } });
    await service.waitFor(study.id);
    // As if `lora-workbench study run` in the parent process were running it now.
    store.studies.update(study.id, { status: 'running', ownerPid: process.ppid });
    await expect(service.stop(study.id)).rejects.toThrow(/another process .*stop it there/);
    await expect(service.resume(study.id)).rejects.toThrow(/being run by process/);
    expect(new StudyService({ store, paths }).get(study.id).status).toBe('running');
  });

  it('a failed cell fails the study with its reason; continuing retries only that cell', async () => {
    const { jobs } = standIn();
    let failNext = true;
    const failing: StudyJobs = {
      ...jobs,
      runs: {
        ...jobs.runs,
        start: async (input) => (failNext ? ((failNext = false), Promise.reject(new WorkbenchError('not_found', 'no such model'))) : jobs.runs.start(input)),
      },
    };
    const service = new StudyService({ store, paths, pollMs: 1 });
    service.connect(failing);
    const study = await service.start({ recipe, scale: { seeds: [1] } });
    const failed = await service.waitFor(study.id);
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/1 of 2 cells failed.*rank=2 seed=1: no such model/);
    await service.resume(study.id);
    expect((await service.waitFor(study.id)).status).toBe('completed');
  });

  it('trains each cell on its own prepared data when the recipe has a data section', async () => {
    const source = path.join(dir, 'pairs.jsonl');
    const rows = Array.from({ length: 40 }, (_, i) => JSON.stringify({ q: `question ${i}`, label: i % 2 }));
    (await import('node:fs')).writeFileSync(source, `${rows.join('\n')}\n`);
    const { jobs, started } = standIn();
    const service = new StudyService({ store, paths, pollMs: 1 });
    service.connect(jobs);
    const study = await service.start({
      recipe: {
        ...recipe,
        data: {
          source: '${data}/pairs.jsonl',
          prompt: '{q}?',
          completion: ' {label}',
          values: { label: { '0': 'no', '1': 'yes' } },
          imbalance: { field: 'label', majority: '0', ratio: 1 },
        },
        axes: [{ name: 'imbalance', path: 'data.imbalance.ratio', values: [1, 4] }],
        figures: [],
      },
      variables: { data: dir },
      scale: { seeds: [1] },
    });
    expect((await service.waitFor(study.id)).status).toBe('completed');
    const files = started.map((id) => store.runs.require(id).config.dataset);
    const lines = files.map((f) =>
      readFileSync(f, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { prompt: string; completion: string }),
    );
    expect(lines[0]!.filter((r) => r.completion === ' no')).toHaveLength(20);
    expect(lines[0]!.filter((r) => r.completion === ' yes')).toHaveLength(20);
    expect(lines[1]!.filter((r) => r.completion === ' no')).toHaveLength(20);
    expect(lines[1]!.filter((r) => r.completion === ' yes')).toHaveLength(5);
    expect(lines[1]![0]).toEqual({ prompt: 'question 0?', completion: ' no' });
  });
});
