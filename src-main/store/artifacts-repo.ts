// Metrics, checkpoints and adapters: what a run leaves behind.
import type Database from 'better-sqlite3';
import { ByIdRepository } from './by-id.ts';
import { camelCased } from './row-fields.ts';
import type { Adapter, MetricPoint } from '../../src-shared/runs.ts';

export class MetricRepository {
  private readonly insertStmt: Database.Statement;
  private readonly listStmt: Database.Statement;
  private readonly listNamedStmt: Database.Statement;
  private readonly deleteAfterStmt: Database.Statement;
  private readonly insertBatchTx: (batches: Iterable<[string, readonly MetricPoint[]]>) => number;

  constructor(db: Database.Database) {
    this.insertStmt = db.prepare(`INSERT INTO metrics (run_id, step, name, value, time) VALUES (?, ?, ?, ?, ?)`);
    this.listStmt = db.prepare(`SELECT step, name, value, time FROM metrics WHERE run_id = ? ORDER BY step, rowid`);
    this.listNamedStmt = db.prepare(`SELECT step, name, value, time FROM metrics WHERE run_id = ? AND name = ? ORDER BY step, rowid`);
    this.deleteAfterStmt = db.prepare(`DELETE FROM metrics WHERE run_id = ? AND step > ?`);
    this.insertBatchTx = db.transaction((batches: Iterable<[string, readonly MetricPoint[]]>) => {
      let count = 0;
      for (const [runId, points] of batches) {
        for (const p of points) {
          this.insertStmt.run(runId, p.step, p.name, p.value, p.time);
          count++;
        }
      }
      return count;
    });
  }

  /** Inserts the points of one or more runs in a single transaction: all of them or none. */
  insertBatch(batches: Iterable<[string, readonly MetricPoint[]]>): number {
    return this.insertBatchTx(batches);
  }

  list(runId: string, name?: string): MetricPoint[] {
    return (name ? this.listNamedStmt.all(runId, name) : this.listStmt.all(runId)) as MetricPoint[];
  }

  /** A resumed run repeats the steps after its checkpoint; their old points would draw a second curve. */
  deleteAfter(runId: string, step: number): number {
    return this.deleteAfterStmt.run(runId, step).changes;
  }
}

export interface Checkpoint {
  runId: string;
  step: number;
  dir: string;
  createdAt: string;
}

interface CheckpointRow {
  run_id: string;
  step: number;
  dir: string;
  created_at: string;
}
const toCheckpoint = (row: CheckpointRow): Checkpoint => camelCased(row);

export class CheckpointRepository {
  private readonly addTx: (c: Checkpoint) => void;
  private readonly latestStmt: Database.Statement;
  private readonly listStmt: Database.Statement;
  private readonly deleteStmt: Database.Statement;

  constructor(db: Database.Database) {
    const insert = db.prepare(`INSERT OR REPLACE INTO checkpoints (run_id, step, dir, created_at) VALUES (@runId, @step, @dir, @createdAt)`);
    const mark = db.prepare(`UPDATE runs SET last_checkpoint_step = ? WHERE id = ?`);
    // The row and the run's pointer move together, so resume never sees one without the other.
    this.addTx = db.transaction((c: Checkpoint) => {
      insert.run(c);
      mark.run(c.step, c.runId);
    });
    this.latestStmt = db.prepare(`SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step DESC LIMIT 1`);
    this.listStmt = db.prepare(`SELECT * FROM checkpoints WHERE run_id = ? ORDER BY step`);
    this.deleteStmt = db.prepare(`DELETE FROM checkpoints WHERE run_id = ? AND step = ?`);
  }

  delete(runId: string, step: number): void {
    this.deleteStmt.run(runId, step);
  }

  add(checkpoint: Checkpoint): void {
    this.addTx(checkpoint);
  }

  latest(runId: string): Checkpoint | undefined {
    const row = this.latestStmt.get(runId) as CheckpointRow | undefined;
    return row && toCheckpoint(row);
  }

  list(runId: string): Checkpoint[] {
    return (this.listStmt.all(runId) as CheckpointRow[]).map(toCheckpoint);
  }
}

interface AdapterRow {
  id: string;
  run_id: string;
  name: string;
  method: string;
  base_model: string;
  path: string;
  step: number;
  trainable_params: number;
  created_at: string;
  description: string | null;
}
const toAdapter = (row: AdapterRow): Adapter => camelCased(row);

export class AdapterRepository extends ByIdRepository<AdapterRow, Adapter> {
  private readonly insertStmt: Database.Statement;
  private readonly listStmt: Database.Statement;
  private readonly describeStmt: Database.Statement;
  private readonly deleteStmt: Database.Statement;

  constructor(db: Database.Database) {
    super(db.prepare(`SELECT * FROM adapters WHERE id = ?`), toAdapter, 'adapter');
    this.deleteStmt = db.prepare(`DELETE FROM adapters WHERE id = ?`);
    this.insertStmt = db.prepare(
      `INSERT INTO adapters (id, run_id, name, method, base_model, path, step, trainable_params, created_at, description)
       VALUES (@id, @runId, @name, @method, @baseModel, @path, @step, @trainableParams, @createdAt, @description)`,
    );
    this.describeStmt = db.prepare(`UPDATE adapters SET description = ? WHERE id = ?`);
    this.listStmt = db.prepare(`SELECT * FROM adapters ORDER BY created_at DESC, rowid DESC`);
  }

  /** `description` may be left out (null: not described yet). */
  create(adapter: Omit<Adapter, 'description'> & { description?: string | null }): Adapter {
    this.insertStmt.run({ ...adapter, description: adapter.description ?? null });
    return this.require(adapter.id);
  }

  /** Sets (or, with an empty text, clears) an adapter's task description. */
  describe(id: string, description: string): Adapter {
    this.require(id);
    const text = description.trim();
    this.describeStmt.run(text === '' ? null : text, id);
    return this.require(id);
  }

  list(): Adapter[] {
    return (this.listStmt.all() as AdapterRow[]).map(toAdapter);
  }

  /** Deletes the adapter's row; evaluations of it stay, without it (ON DELETE SET NULL). */
  delete(id: string): void {
    this.require(id);
    this.deleteStmt.run(id);
  }
}
