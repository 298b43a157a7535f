// The workbench database. This folder is the only place that imports better-sqlite3.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { AdapterRepository, CheckpointRepository, MetricRepository } from './artifacts-repo.ts';
import { DatasetRepository } from './datasets-repo.ts';
import { EvaluationRepository } from './evals-repo.ts';
import { migrate } from './migrations.ts';
import { RunRepository } from './runs-repo.ts';
import { StudyRepository } from './studies-repo.ts';

export { latestVersion, migrations, migrate, schemaVersion } from './migrations.ts';
export type { Checkpoint } from './artifacts-repo.ts';
export type { RunPatch } from './runs-repo.ts';
export type { EvaluationPatch, NewEvaluation } from './evals-repo.ts';
export type { NewDataset, StoredDataset } from './datasets-repo.ts';

/** Opens (creating if needed) a database file with the pragmas every connection needs. */
export function openDatabase(file: string): Database.Database {
  if (file !== ':memory:') mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  // WAL: the UI reads while a run writes; a CLI in another process may read at the same time.
  db.pragma('journal_mode = WAL');
  // NORMAL is durable across application crashes in WAL mode; only an OS crash can lose the last commits.
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  return db;
}

export class Store {
  readonly runs: RunRepository;
  readonly metrics: MetricRepository;
  readonly checkpoints: CheckpointRepository;
  readonly adapters: AdapterRepository;
  readonly evaluations: EvaluationRepository;
  readonly datasets: DatasetRepository;
  readonly studies: StudyRepository;

  private constructor(readonly db: Database.Database) {
    this.runs = new RunRepository(db);
    this.metrics = new MetricRepository(db);
    this.checkpoints = new CheckpointRepository(db);
    this.adapters = new AdapterRepository(db);
    this.evaluations = new EvaluationRepository(db);
    this.datasets = new DatasetRepository(db);
    this.studies = new StudyRepository(db);
  }

  static open(file: string): Store {
    const db = openDatabase(file);
    try {
      migrate(db);
    } catch (error) {
      db.close();
      throw error;
    }
    return new Store(db);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
