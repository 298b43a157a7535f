// Adapter descriptions in the store (migration 5) and the bank's checks before it starts a worker.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultRunConfig } from '../../src-shared/config.ts';
import { AdapterBank } from '../../src-main/adapter-bank.ts';
import { resolvePaths, type WorkbenchPaths } from '../../src-main/paths.ts';
import { migrations } from '../../src-main/store/migrations.ts';
import { Store } from '../../src-main/store/index.ts';

let dir: string;
let paths: WorkbenchPaths;
let store: Store;
let workersStarted = 0;

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lw-bank-'));
  paths = resolvePaths({ dataDir: dir });
  store = Store.open(paths.dbFile);
  workersStarted = 0;
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

function addAdapter(id: string, baseModel: string, description?: string | null) {
  store.runs.create({ id: `run-${id}`, name: id, config: defaultRunConfig(), createdAt: '2025-01-01T00:00:00Z', ownerPid: null });
  return store.adapters.create({
    id,
    runId: `run-${id}`,
    name: id,
    method: 'lora',
    baseModel,
    path: path.join(dir, id),
    step: 1,
    trainableParams: 1,
    createdAt: '2025-01-01T00:00:00Z',
    description,
  });
}

const bank = () =>
  new AdapterBank({
    store,
    paths,
    createWorker: () => {
      workersStarted++;
      throw new Error('no worker in this test');
    },
  });

describe('adapter descriptions', () => {
  it('migration 5 adds a nullable description; describe sets, trims and clears it', () => {
    expect(migrations.find((m) => m.version === 5)?.sql).toMatch(/ALTER TABLE adapters ADD COLUMN description TEXT/);
    expect(addAdapter('a', 'default').description).toBeNull();
    expect(store.adapters.describe('a', '  Summarise news.  ').description).toBe('Summarise news.');
    expect(store.adapters.require('a').description).toBe('Summarise news.');
    expect(store.adapters.describe('a', '   ').description).toBeNull();
    expect(() => store.adapters.describe('nope', 'x')).toThrow(/No adapter with id "nope"/);
  });

  it('AdapterBank.describe validates its input', async () => {
    addAdapter('a', 'default');
    await expect(bank().describe({ adapterId: 'a', description: 'x'.repeat(5001) })).rejects.toMatchObject({ code: 'invalid_input' });
    expect((await bank().describe({ adapterId: 'a', description: 'Translate.' })).description).toBe('Translate.');
  });
});

describe('AdapterBank.generate refuses a bank it cannot use, before starting a worker', () => {
  it('no described adapter', async () => {
    addAdapter('a', 'default');
    await expect(bank().generate({ name: 'g', description: 'x' })).rejects.toThrow(/No adapter has a task description/);
  });
  it('described adapters of two base models', async () => {
    addAdapter('a', 'default', 'one');
    addAdapter('b', '/models/other', 'two');
    await expect(bank().generate({ name: 'g', description: 'x' })).rejects.toThrow(/2 base models/);
  });
  it('missing adapter files', async () => {
    addAdapter('a', 'default', 'one');
    await expect(bank().generate({ name: 'g', description: 'x', expertIds: ['a'] })).rejects.toThrow(/files of adapters "a"/);
  });
  it('an invalid request', async () => {
    addAdapter('a', 'default', 'one');
    await expect(bank().generate({ name: 'g', description: 'x', temperature: -1 })).rejects.toMatchObject({ code: 'invalid_input' });
    expect(workersStarted).toBe(0);
  });
});
