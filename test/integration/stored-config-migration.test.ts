// Runs stored before run configurations were shaped by their method (every method's settings section in
// the database row, the checkpoint's trainer_state.json and the adapter sidecars) still open, resume and
// export once the store migrates them.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { methodSettingsKeys, settingsSchemas } from '../../src-shared/config.ts';
import { resolvePaths, type WorkbenchPaths } from '../../src-main/paths.ts';
import { RunManager } from '../../src-main/runs.ts';
import { Store } from '../../src-main/store/index.ts';

let dataDir: string;
let paths: WorkbenchPaths;
beforeAll(() => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'lw-stored-config-'));
  paths = resolvePaths({ dataDir });
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

/** What the earlier schema stored: the run's own sections, and every other method's at its defaults. */
const allSections = (config: Record<string, unknown>) => ({
  ...Object.fromEntries(methodSettingsKeys.map((key) => [key, settingsSchemas[key].parse({})])),
  ...config,
});

/** Rewrites the `config` inside a JSON file (a sidecar or trainer_state.json) to the earlier shape. */
function makeOld(file: string): void {
  const json = JSON.parse(readFileSync(file, 'utf8')) as { config: Record<string, unknown> };
  writeFileSync(file, JSON.stringify({ ...json, config: allSections(json.config) }, null, 2));
}

describe('a run stored in the earlier all-sections shape', () => {
  it('opens, resumes from its checkpoint and exports after the migration', async () => {
    let store = Store.open(paths.dbFile);
    let manager = new RunManager({ store, paths });
    let runId: string;
    try {
      const run = await manager.start({
        name: 'stored-before',
        method: 'lora-plus',
        backend: 'cpu',
        loraPlus: { ratio: 4 },
        training: { maxSteps: 6, batchSize: 2, maxSeqLen: 24, checkpointEvery: 3, evalEvery: 3, evalBatches: 1, seed: 5 },
      });
      runId = run.id;
      expect((await manager.waitForRun(runId)).status).toBe('completed');
    } finally {
      await manager.close();
      store.close();
    }

    // Back to how an earlier build left it: interrupted after step 3, every file and row in the old shape.
    store = Store.open(paths.dbFile);
    const row = store.db.prepare('SELECT config FROM runs WHERE id = ?').get(runId) as { config: string };
    const step3 = store.checkpoints.list(runId).find((c) => c.step === 3)!;
    const step6 = store.checkpoints.list(runId).find((c) => c.step === 6)!;
    store.db
      .prepare(`UPDATE runs SET config = ?, status = 'interrupted', last_checkpoint_step = 3 WHERE id = ?`)
      .run(JSON.stringify(allSections(JSON.parse(row.config))), runId);
    store.db.prepare('DELETE FROM checkpoints WHERE run_id = ? AND step = 6').run(runId);
    store.db.prepare('DELETE FROM adapters WHERE run_id = ?').run(runId);
    // Schema version 5 had no studies (step 7): drop them so that the migration creates them again.
    store.db.exec('DROP TABLE study_cells; DROP TABLE studies;');
    store.db.pragma('user_version = 5');
    store.close();
    rmSync(step6.dir, { recursive: true, force: true });
    rmSync(path.join(paths.runDir(runId), 'adapter'), { recursive: true, force: true });
    makeOld(path.join(step3.dir, 'trainer_state.json'));
    makeOld(path.join(step3.dir, 'workbench_adapter.json'));

    store = Store.open(paths.dbFile);
    manager = new RunManager({ store, paths });
    try {
      const stored = JSON.parse((store.db.prepare('SELECT config FROM runs WHERE id = ?').get(runId) as { config: string }).config) as Record<string, unknown>;
      expect(Object.keys(stored).filter((key) => (methodSettingsKeys as readonly string[]).includes(key))).toEqual(['lora', 'loraPlus']);
      expect(manager.get(runId).config).toMatchObject({ method: 'lora-plus', loraPlus: { ratio: 4 } });

      await manager.resume(runId);
      const resumed = await manager.waitForRun(runId);
      expect(resumed.error).toBeNull();
      expect(resumed.status).toBe('completed');
      expect(resumed.progress?.step).toBe(6);

      // An adapter folder written by the earlier build: its sidecar holds every section.
      const adapter = store.adapters.require(resumed.adapterId!);
      makeOld(path.join(adapter.path, 'workbench_adapter.json'));
      const report = await manager.exportAdapter({ runId, outDir: path.join(dataDir, 'export') });
      expect(report.verification.passed).toBe(true);
      expect(existsSync(path.join(dataDir, 'export', 'adapter_config.json'))).toBe(true);
    } finally {
      await manager.close();
      store.close();
    }
  });
});
