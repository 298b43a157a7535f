// The datasets table: migration 4 over a version 3 database, and the repository's rules
// (unique names among listed datasets, runs counted by the id in their config, remove keeps what runs use).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultRunConfig } from '../../src-shared/config.ts';
import { WorkbenchError } from '../../src-shared/errors.ts';
import { migrate, openDatabase, schemaVersion, Store, type NewDataset } from '../../src-main/store/index.ts';

let dir: string;
let store: Store | null = null;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lw-datasets-store-'));
});
afterEach(() => {
  store?.close();
  store = null;
  rmSync(dir, { recursive: true, force: true });
});
const dbFile = () => path.join(dir, 'workbench.sqlite');

const dataset = (id: string, extra: Partial<NewDataset> = {}): NewDataset => ({
  id,
  name: `set ${id}`,
  sourcePath: `/data/${id}.csv`,
  format: 'csv',
  mapping: { prompt: 'question', completion: 'answer', task: 'category' },
  sha256: 'ab'.repeat(32),
  rowCount: 4,
  skippedRows: 2,
  normalizedPath: `/home/datasets/${id}.jsonl`,
  createdAt: '2025-01-01T00:00:00.000Z',
  ...extra,
});

function addRun(s: Store, id: string, datasetId: string): void {
  s.runs.create({ id, name: id, config: { ...defaultRunConfig(), dataset: datasetId }, createdAt: '2025-01-02T00:00:00.000Z', ownerPid: null });
}

describe('migration 4 (datasets)', () => {
  it('brings a version 3 database forward and keeps its runs', () => {
    const v3 = openDatabase(dbFile());
    expect(migrate(v3, 3)).toEqual([1, 2, 3]);
    v3.prepare(`INSERT INTO runs (id, name, config, status, created_at) VALUES ('r1', 'kept', ?, 'completed', '2024-01-01T00:00:00Z')`).run(
      JSON.stringify({ ...defaultRunConfig(), dataset: 'd1' }),
    );
    v3.close();

    store = Store.open(dbFile());
    expect(schemaVersion(store.db)).toBeGreaterThanOrEqual(4);
    expect(store.runs.require('r1').name).toBe('kept');
    expect(store.datasets.list()).toEqual([]);
    // A run made before registration could name the id only by chance; it is counted once the id exists.
    expect(store.datasets.create(dataset('d1')).usedByRuns).toBe(1);
  });
});

describe('DatasetRepository', () => {
  it('round-trips every field and lists newest first', () => {
    store = Store.open(dbFile());
    const first = store.datasets.create(dataset('d1'));
    expect(first).toEqual({ ...dataset('d1'), usedByRuns: 0, removedAt: null });
    store.datasets.create(dataset('d2', { name: 'text set', format: 'jsonl', mapping: { text: 'body' }, createdAt: '2025-02-01T00:00:00.000Z' }));
    expect(store.datasets.list().map((d) => d.id)).toEqual(['d2', 'd1']);
    expect(store.datasets.require('d2').mapping).toEqual({ text: 'body' });
    expect(() => store!.datasets.require('nope')).toThrow(WorkbenchError);
  });

  it('refuses a second dataset with a listed name, naming the field', () => {
    store = Store.open(dbFile());
    store.datasets.create(dataset('d1', { name: 'mine' }));
    let error: unknown;
    try {
      store.datasets.create(dataset('d2', { name: 'mine' }));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(WorkbenchError);
    expect(error).toMatchObject({ code: 'conflict', details: { field: 'name' } });
  });

  it('deletes an unused dataset, and hides one that runs trained on while its id still resolves', () => {
    store = Store.open(dbFile());
    store.datasets.create(dataset('unused', { name: 'a' }));
    store.datasets.create(dataset('used', { name: 'b' }));
    addRun(store, 'r1', 'used');
    addRun(store, 'r2', 'used');
    expect(store.datasets.require('used').usedByRuns).toBe(2);

    expect(store.datasets.remove('unused', '2025-03-01T00:00:00.000Z')).toBe('deleted');
    expect(store.datasets.get('unused')).toBeUndefined();

    expect(store.datasets.remove('used', '2025-03-01T00:00:00.000Z')).toBe('kept');
    expect(store.datasets.list()).toEqual([]);
    expect(store.datasets.require('used')).toMatchObject({ removedAt: '2025-03-01T00:00:00.000Z', normalizedPath: '/home/datasets/used.jsonl' });
    expect(() => store!.datasets.remove('used', '2025-03-02T00:00:00.000Z')).toThrow(/already removed/);
    // The hidden one no longer holds its name.
    expect(store.datasets.create(dataset('again', { name: 'b' })).name).toBe('b');
  });
});
