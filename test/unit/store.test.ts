import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultRunConfig, type RunConfigOf } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { resolvePaths } from '../../src-main/paths.ts';
import { RunManager } from '../../src-main/runs.ts';
import { latestVersion, migrate, openDatabase, schemaVersion, Store } from '../../src-main/store/index.ts';

let dir: string;
let store: Store | null = null;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lw-store-'));
});
afterEach(() => {
  store?.close();
  store = null;
  rmSync(dir, { recursive: true, force: true });
});

const dbFile = () => path.join(dir, 'workbench.sqlite');
const tables = (s: Store) => (s.db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as { name: string }[]).map((r) => r.name);
const newRun = (s: Store, id: string, createdAt = '2025-01-01T00:00:00.000Z', ownerPid: number | null = process.pid) =>
  s.runs.create({ id, name: `run ${id}`, config: defaultRunConfig(), createdAt, ownerPid });

describe('migrations', () => {
  it('create the latest schema in an empty file, with WAL, foreign keys and a busy timeout', () => {
    store = Store.open(dbFile());
    expect(schemaVersion(store.db)).toBe(latestVersion);
    expect(latestVersion).toBeGreaterThanOrEqual(2);
    expect(tables(store)).toEqual(expect.arrayContaining(['adapters', 'checkpoints', 'metrics', 'runs']));
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(store.db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(store.db.pragma('busy_timeout', { simple: true })).toBe(5000);
    const indexes = store.db.prepare(`SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'metrics'`).all() as { sql: string }[];
    expect(indexes.map((i) => i.sql).join()).toMatch(/\(run_id, name, step\)/);
  });

  it('bring a version 1 database forward and keep its rows', () => {
    const v1 = openDatabase(dbFile());
    expect(migrate(v1, 1)).toEqual([1]);
    expect(schemaVersion(v1)).toBe(1);
    v1.prepare(
      `INSERT INTO runs (id, name, config, status, created_at, last_checkpoint_step) VALUES ('old', 'from v1', ?, 'completed', '2024-01-01T00:00:00Z', 20)`,
    ).run(JSON.stringify({ training: { maxSteps: 40 } }));
    v1.prepare(`INSERT INTO metrics (run_id, step, name, value, time) VALUES ('old', 1, 'train/loss', 2.5, 1)`).run();
    v1.close();

    store = Store.open(dbFile());
    expect(schemaVersion(store.db)).toBe(latestVersion);
    const run = store.runs.require('old');
    expect(run).toMatchObject({ name: 'from v1', status: 'completed', lastCheckpointStep: 20, adapterId: null });
    // The stored partial config is read back with today's defaults filled in.
    expect(run.config.training.maxSteps).toBe(40);
    expect((run.config as RunConfigOf<'lora'>).lora.r).toBe(defaultRunConfig().lora.r);
    expect(store.metrics.list('old')).toEqual([{ step: 1, name: 'train/loss', value: 2.5, time: 1 }]);
    store.adapters.create({
      id: 'a1',
      runId: 'old',
      name: 'from v1',
      method: 'lora',
      baseModel: 'default',
      path: '/x',
      step: 40,
      trainableParams: 10,
      createdAt: '2024-01-02T00:00:00Z',
    });
    expect(store.runs.require('old').adapterId).toBe('a1');
  });

  it('refuse a database written by a newer version', () => {
    const db = openDatabase(dbFile());
    db.pragma(`user_version = ${latestVersion + 1}`);
    db.close();
    expect(() => Store.open(dbFile())).toThrow(/newer than this build/);
  });
});

describe('runs', () => {
  it('create, read, list newest first and update', () => {
    store = Store.open(dbFile());
    const a = newRun(store, 'a', '2025-01-01T00:00:00.000Z');
    newRun(store, 'b', '2025-01-02T00:00:00.000Z');
    expect(a).toMatchObject({ id: 'a', status: 'queued', backend: null, progress: null, startedAt: null, adapterId: null });
    expect(a.config).toEqual(defaultRunConfig());
    expect(store.runs.list().map((r) => r.id)).toEqual(['b', 'a']);

    const progress = { step: 3, maxSteps: 10, tokensPerSecond: 120.5, stepTimeMs: 40, etaSeconds: 7 };
    const updated = store.runs.update('a', {
      status: 'running',
      backend: { name: 'cpu', adapter: 'JavaScript' },
      startedAt: '2025-01-01T00:00:01.000Z',
      progress,
    });
    expect(updated).toMatchObject({ status: 'running', backend: { name: 'cpu', adapter: 'JavaScript' }, progress });
    expect(store.runs.update('a', { backend: null, error: 'boom' })).toMatchObject({ backend: null, error: 'boom', status: 'running' });
  });

  it('report a missing run as not_found', () => {
    store = Store.open(dbFile());
    expect(store.runs.get('nope')).toBeUndefined();
    const error = (() => {
      try {
        store!.runs.update('nope', { status: 'failed' });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(WorkbenchError);
    expect((error as WorkbenchError).code).toBe('not_found');
  });

  it('move the checkpoint pointer together with the checkpoint row', () => {
    store = Store.open(dbFile());
    newRun(store, 'a');
    store.checkpoints.add({ runId: 'a', step: 10, dir: '/ck/10', createdAt: 't1' });
    store.checkpoints.add({ runId: 'a', step: 20, dir: '/ck/20', createdAt: 't2' });
    expect(store.runs.require('a').lastCheckpointStep).toBe(20);
    expect(store.checkpoints.latest('a')).toEqual({ runId: 'a', step: 20, dir: '/ck/20', createdAt: 't2' });
    expect(store.checkpoints.list('a').map((c) => c.step)).toEqual([10, 20]);
    expect(() => store!.checkpoints.add({ runId: 'ghost', step: 1, dir: '/x', createdAt: 't' })).toThrow(/FOREIGN KEY/);
  });
});

describe('metrics', () => {
  it("insert several runs' points in one transaction and read them back in step order", () => {
    store = Store.open(dbFile());
    newRun(store, 'a');
    newRun(store, 'b');
    const points = Array.from({ length: 500 }, (_, i) => ({ step: i, name: i % 2 ? 'lr' : 'train/loss', value: i / 10, time: 1000 + i }));
    expect(
      store.metrics.insertBatch([
        ['a', points.slice(0, 300)],
        ['b', points.slice(300)],
      ]),
    ).toBe(500);
    expect(store.metrics.list('a')).toHaveLength(300);
    expect(store.metrics.list('b', 'lr').every((p) => p.name === 'lr' && p.step >= 300)).toBe(true);
    expect(store.metrics.list('a', 'train/loss').map((p) => p.step)).toEqual(
      points
        .slice(0, 300)
        .filter((p) => p.name === 'train/loss')
        .map((p) => p.step),
    );
  });

  it('write all points of a batch or none', () => {
    store = Store.open(dbFile());
    newRun(store, 'a');
    const good = [{ step: 1, name: 'train/loss', value: 1, time: 1 }];
    // The second run does not exist: its foreign key fails and takes the first run's points with it.
    expect(() =>
      store!.metrics.insertBatch([
        ['a', good],
        ['ghost', good],
      ]),
    ).toThrow(/FOREIGN KEY/);
    expect(store.metrics.list('a')).toEqual([]);
  });

  it('drop the points after a checkpoint so a resumed run does not draw a second curve', () => {
    store = Store.open(dbFile());
    newRun(store, 'a');
    store.metrics.insertBatch([['a', [1, 2, 3, 4].map((step) => ({ step, name: 'train/loss', value: step, time: step }))]]);
    expect(store.metrics.deleteAfter('a', 2)).toBe(2);
    expect(store.metrics.list('a').map((p) => p.step)).toEqual([1, 2]);
  });
});

describe('interrupted runs at startup', () => {
  let sleeper: ChildProcess | null = null;
  afterEach(() => {
    sleeper?.kill();
    sleeper = null;
  });

  it("marks runs of dead processes interrupted and leaves a live process's run alone", async () => {
    const deadPid = spawnSync(process.execPath, ['-e', '0']).pid!;
    sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    const livePid = sleeper.pid!;

    const paths = resolvePaths({ dataDir: dir });
    store = Store.open(paths.dbFile);
    newRun(store, 'killed', '2025-01-01T00:00:00.000Z', deadPid);
    store.runs.update('killed', { status: 'running', lastCheckpointStep: null });
    newRun(store, 'queued-orphan', '2025-01-01T00:00:01.000Z', null);
    newRun(store, 'same-process', '2025-01-01T00:00:02.000Z', process.pid);
    store.runs.update('same-process', { status: 'running' });
    newRun(store, 'other-process', '2025-01-01T00:00:03.000Z', livePid);
    store.runs.update('other-process', { status: 'running' });
    newRun(store, 'done', '2025-01-01T00:00:04.000Z', null);
    store.runs.update('done', { status: 'completed' });

    const manager = new RunManager({
      store,
      paths,
      createWorker: () => {
        throw new Error('no worker in this test');
      },
    });
    const status = (id: string) => store!.runs.require(id).status;
    expect(status('killed')).toBe('interrupted');
    expect(store.runs.require('killed').error).toMatch(/Resume it/);
    expect(status('queued-orphan')).toBe('interrupted');
    // An earlier manager of this very process that never closed lost its workers too.
    expect(status('same-process')).toBe('interrupted');
    expect(status('other-process')).toBe('running');
    expect(status('done')).toBe('completed');
    await manager.close();
  });
});
