// Versioned schema. Step N takes a database at user_version N-1 to N; steps are append-only:
// a released step is never edited, a change is a new step.
import type Database from 'better-sqlite3';
import { migrateStoredRunConfig } from '../../src-shared/config.ts';

export interface Migration {
  version: number;
  description: string;
  sql: string;
  /** Row rewrites SQL cannot express, run after `sql` in the same transaction. */
  rewrite?: (db: Database.Database) => void;
}

/**
 * Run configurations stored before they were shaped by their method held every method's settings
 * section; keep the sections of each run's own method (the worker reads nothing else).
 */
function shapeStoredRunConfigs(db: Database.Database): void {
  const update = db.prepare('UPDATE runs SET config = ? WHERE id = ?');
  for (const row of db.prepare('SELECT id, config FROM runs').all() as { id: string; config: string }[]) {
    const rewritten = JSON.stringify(migrateStoredRunConfig(JSON.parse(row.config)));
    if (rewritten !== row.config) update.run(rewritten, row.id);
  }
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    description: 'runs, metrics, checkpoints',
    sql: `
      CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        config TEXT NOT NULL,                 -- RunConfig as JSON, stored whole to reproduce the run
        status TEXT NOT NULL,
        backend_name TEXT,
        backend_adapter TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        error TEXT,
        progress TEXT,                        -- Progress as JSON
        last_checkpoint_step INTEGER
      );
      CREATE INDEX runs_status ON runs (status);

      CREATE TABLE metrics (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        name TEXT NOT NULL,
        value REAL NOT NULL,
        time REAL NOT NULL
      );
      CREATE INDEX metrics_run_name_step ON metrics (run_id, name, step);

      CREATE TABLE checkpoints (
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        step INTEGER NOT NULL,
        dir TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (run_id, step)
      );
    `,
  },
  {
    version: 2,
    description: 'adapters; the process that owns a running run',
    sql: `
      CREATE TABLE adapters (
        id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        method TEXT NOT NULL,
        base_model TEXT NOT NULL,
        path TEXT NOT NULL,
        step INTEGER NOT NULL,
        trainable_params INTEGER NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE INDEX adapters_run ON adapters (run_id);

      -- Lets a starting process tell runs orphaned by a dead process from runs that another live
      -- process (a CLI train next to the app) is still training.
      ALTER TABLE runs ADD COLUMN owner_pid INTEGER;
    `,
  },
  {
    version: 3,
    description: 'evaluations',
    sql: `
      -- One row per evaluation job. The per-item result is a JSON file (result_path) because it can
      -- hold thousands of items; the row keeps what lists and comparisons need.
      CREATE TABLE evaluations (
        id TEXT PRIMARY KEY,
        run_id TEXT REFERENCES runs (id) ON DELETE SET NULL,
        adapter_id TEXT REFERENCES adapters (id) ON DELETE SET NULL,
        suite TEXT NOT NULL,
        status TEXT NOT NULL,
        model TEXT NOT NULL,                  -- 'default' or an absolute model folder
        backend_choice TEXT NOT NULL,         -- what was asked for ('auto', 'cpu', ...)
        backend_name TEXT,                    -- what ran, once the result is in
        backend_adapter TEXT,
        seed INTEGER NOT NULL,
        item_limit INTEGER,
        datasets TEXT NOT NULL,               -- the requested paths as JSON
        slices TEXT,                          -- DatasetSlice[] (path, limit, count, sha256) as JSON
        summary TEXT,                         -- the headline figures as JSON
        result_path TEXT,
        progress TEXT,                        -- { done, total } as JSON
        error TEXT,
        owner_pid INTEGER,
        created_at TEXT NOT NULL,
        finished_at TEXT
      );
      CREATE INDEX evaluations_adapter ON evaluations (adapter_id);
      CREATE INDEX evaluations_status ON evaluations (status);
    `,
  },
  {
    version: 4,
    description: 'registered datasets',
    sql: `
      -- The user's JSONL/CSV files, registered with a column mapping. Training reads normalized_path
      -- (prompt/completion JSONL written at registration); runs name a dataset by id in their config.
      CREATE TABLE datasets (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        source_path TEXT NOT NULL,
        format TEXT NOT NULL,                 -- jsonl, csv, tsv
        mapping_json TEXT NOT NULL,           -- ColumnMapping as JSON
        sha256 TEXT NOT NULL,                 -- of the source file's bytes at registration
        row_count INTEGER NOT NULL,           -- rows written to normalized_path
        skipped_rows INTEGER NOT NULL,        -- bad rows left out
        normalized_path TEXT NOT NULL,
        created_at TEXT NOT NULL,
        -- Set when the user removed a dataset that runs had trained on: it leaves the lists, but its
        -- file and row stay so those runs can still be resumed and reproduced.
        removed_at TEXT
      );
      CREATE UNIQUE INDEX datasets_name ON datasets (name) WHERE removed_at IS NULL;
    `,
  },
  {
    version: 5,
    description: 'adapter task descriptions (SG-LoRA)',
    sql: `
      -- The task an adapter was trained for, in words: SG-LoRA embeds it to weight the adapter as an
      -- expert. NULL: not described (the adapter stays out of the bank).
      ALTER TABLE adapters ADD COLUMN description TEXT;
    `,
  },
  {
    version: 6,
    description: "run configurations carry only their method's settings",
    sql: '',
    rewrite: shapeStoredRunConfigs,
  },
  {
    version: 7,
    description: 'studies: a recipe expanded into cells, each an ordinary run and its evaluations',
    sql: `
      -- recipe is the study as run (variables replaced, scaled); digest identifies it, so running the
      -- same recipe again continues its unfinished study instead of starting over.
      CREATE TABLE studies (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        title TEXT NOT NULL,
        recipe TEXT NOT NULL,
        digest TEXT NOT NULL,
        source TEXT,
        status TEXT NOT NULL,
        error TEXT,
        owner_pid INTEGER,
        created_at TEXT NOT NULL,
        finished_at TEXT
      );
      CREATE INDEX studies_digest ON studies (digest);

      -- The tag: which runs and evaluations belong to which study, and at which point of its grid.
      CREATE TABLE study_cells (
        study_id TEXT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
        cell_key TEXT NOT NULL,
        position INTEGER NOT NULL,
        levels TEXT NOT NULL,                 -- axis name -> level label, as JSON
        seed INTEGER NOT NULL,
        status TEXT NOT NULL,                 -- pending, training, evaluating, completed, failed
        run_id TEXT REFERENCES runs (id) ON DELETE SET NULL,
        evaluations TEXT NOT NULL DEFAULT '{}', -- recipe evaluation id -> evaluation id, as JSON
        error TEXT,
        started_at TEXT,
        finished_at TEXT,
        PRIMARY KEY (study_id, cell_key)
      );
      CREATE INDEX study_cells_run ON study_cells (run_id);
    `,
  },
];

export const latestVersion = migrations[migrations.length - 1]!.version;

export function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/** Applies every step above the database's user_version, each in its own transaction. */
export function migrate(db: Database.Database, upTo: number = latestVersion): number[] {
  const from = schemaVersion(db);
  if (from > latestVersion) {
    throw new Error(
      `The database is at schema version ${from}, newer than this build understands (${latestVersion}). Update lora-workbench or use another --data-dir.`,
    );
  }
  const applied: number[] = [];
  for (const step of migrations) {
    if (step.version <= from || step.version > upTo) continue;
    db.transaction(() => {
      db.exec(step.sql);
      step.rewrite?.(db);
      db.pragma(`user_version = ${step.version}`);
    })();
    applied.push(step.version);
  }
  return applied;
}
