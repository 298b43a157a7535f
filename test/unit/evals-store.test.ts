// The evaluations table: migration 3 over a version 2 database, and the repository.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultRunConfig } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { migrate, openDatabase, schemaVersion, Store } from '../../src-main/store/index.ts';

let dir: string;
let store: Store | null = null;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lw-evals-store-'));
});
afterEach(() => {
  store?.close();
  store = null;
  rmSync(dir, { recursive: true, force: true });
});
const dbFile = () => path.join(dir, 'workbench.sqlite');

const newEvaluation = (s: Store, id: string, extra: Partial<Parameters<Store['evaluations']['create']>[0]> = {}) =>
  s.evaluations.create({
    id,
    runId: null,
    adapterId: null,
    suite: 'bias',
    model: 'default',
    backendChoice: 'cpu',
    seed: 3,
    limit: 5,
    datasets: { crowsPairs: '/data/crows.csv' },
    createdAt: '2025-01-01T00:00:00.000Z',
    ownerPid: process.pid,
    ...extra,
  });

describe('migration 3 (evaluations)', () => {
  it('brings a version 2 database forward, keeps its rows, and links evaluations to them', () => {
    const v2 = openDatabase(dbFile());
    expect(migrate(v2, 2)).toEqual([1, 2]);
    v2.prepare(`INSERT INTO runs (id, name, config, status, created_at) VALUES ('r1', 'kept', ?, 'completed', '2024-01-01T00:00:00Z')`).run(
      JSON.stringify(defaultRunConfig()),
    );
    v2.prepare(
      `INSERT INTO adapters (id, run_id, name, method, base_model, path, step, trainable_params, created_at) VALUES ('a1', 'r1', 'kept', 'lora', 'default', '/x', 40, 10, '2024-01-02T00:00:00Z')`,
    ).run();
    v2.close();

    store = Store.open(dbFile());
    expect(schemaVersion(store.db)).toBeGreaterThanOrEqual(3);
    expect(store.runs.require('r1')).toMatchObject({ name: 'kept', status: 'completed', adapterId: 'a1' });
    expect(store.adapters.require('a1').step).toBe(40);
    expect(store.evaluations.list()).toEqual([]);

    newEvaluation(store, 'e1', { runId: 'r1', adapterId: 'a1' });
    expect(store.evaluations.require('e1')).toMatchObject({ runId: 'r1', adapterId: 'a1', status: 'queued' });
    // Deleting a run keeps its evaluations' figures; only the link goes.
    store.db.prepare(`DELETE FROM runs WHERE id = 'r1'`).run();
    expect(store.evaluations.require('e1')).toMatchObject({ runId: null, adapterId: null });
  });
});

describe('evaluations', () => {
  it('create, update with the result, and list newest first', () => {
    store = Store.open(dbFile());
    const created = newEvaluation(store, 'e1');
    expect(created).toMatchObject({
      id: 'e1',
      suite: 'bias',
      status: 'queued',
      model: 'default',
      backendChoice: 'cpu',
      backend: null,
      seed: 3,
      limit: 5,
      datasets: { crowsPairs: '/data/crows.csv' },
      slices: null,
      summary: null,
      resultPath: null,
      progress: null,
      finishedAt: null,
    });
    store.evaluations.update('e1', { status: 'running', progress: { done: 2, total: 5 } });
    const slice = { dataset: 'crows-pairs', path: '/data/crows.csv', limit: 5, count: 5, sha256: 'ab'.repeat(32) };
    const done = store.evaluations.update('e1', {
      status: 'completed',
      backend: { name: 'cpu', adapter: 'JavaScript' },
      slices: [slice],
      summary: { 'crowsPairs.overall.stereoPercent': 60 },
      resultPath: '/data/evals/e1.json',
      finishedAt: '2025-01-01T00:01:00.000Z',
    });
    expect(done).toMatchObject({
      status: 'completed',
      backend: { name: 'cpu', adapter: 'JavaScript' },
      slices: [slice],
      progress: { done: 2, total: 5 },
      summary: { 'crowsPairs.overall.stereoPercent': 60 },
      resultPath: '/data/evals/e1.json',
    });
    newEvaluation(store, 'e2', { createdAt: '2025-01-02T00:00:00.000Z' });
    expect(store.evaluations.list().map((e) => e.id)).toEqual(['e2', 'e1']);
  });

  it('report a missing evaluation as not_found', () => {
    store = Store.open(dbFile());
    expect(() => store!.evaluations.require('nope')).toThrow(WorkbenchError);
    expect(() => store!.evaluations.update('nope', { status: 'failed' })).toThrow(/No evaluation with id "nope"/);
  });

  it('mark evaluations of dead processes failed and leave finished ones alone', () => {
    store = Store.open(dbFile());
    const deadPid = spawnSync(process.execPath, ['-e', '0']).pid!;
    newEvaluation(store, 'orphan', { ownerPid: deadPid });
    store.evaluations.update('orphan', { status: 'running' });
    newEvaluation(store, 'done');
    store.evaluations.update('done', { status: 'completed' });
    const marked = store.evaluations.markInterrupted((pid) => pid === deadPid, 'Interrupted', '2025-01-03T00:00:00.000Z');
    expect(marked).toEqual(['orphan']);
    expect(store.evaluations.require('orphan')).toMatchObject({ status: 'failed', error: 'Interrupted', finishedAt: '2025-01-03T00:00:00.000Z' });
    expect(store.evaluations.require('done').status).toBe('completed');
  });
});
