// The runs table, mapped to src-shared's Run.
import type Database from 'better-sqlite3';
import { type RunConfig, StoredRunConfigSchema } from '../../src-shared/config.ts';
import { ByIdRepository } from './by-id.ts';
import { backendColumns, backendOf, camelCased, markOrphans, parsedJson, patchColumns, updateColumns } from './row-fields.ts';
import { ProgressSchema, type BackendInfo, type Progress, type Run, type RunStatus } from '../../src-shared/runs.ts';

interface RunRow {
  id: string;
  name: string;
  config: string;
  status: RunStatus;
  backend_name: BackendInfo['name'] | null;
  backend_adapter: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  error: string | null;
  progress: string | null;
  last_checkpoint_step: number | null;
  owner_pid: number | null;
  adapter_id: string | null;
}

export interface RunPatch {
  status?: RunStatus;
  backend?: BackendInfo | null;
  startedAt?: string | null;
  finishedAt?: string | null;
  error?: string | null;
  progress?: Progress | null;
  lastCheckpointStep?: number | null;
  ownerPid?: number | null;
}

const SELECT_RUN = `
  SELECT r.*,
    (SELECT a.id FROM adapters a WHERE a.run_id = r.id ORDER BY a.created_at DESC, a.rowid DESC LIMIT 1) AS adapter_id
  FROM runs r`;

function toRun(row: RunRow): Run {
  // owner_pid is the store's own bookkeeping (ownerPid() reads it), not part of a Run.
  const { config, backend_name, backend_adapter, progress, owner_pid, ...columns } = row;
  return {
    ...camelCased(columns),
    // Parsing (not casting) fills in settings added to RunConfig after the run was stored.
    config: StoredRunConfigSchema.parse(JSON.parse(config)),
    backend: backendOf(backend_name, backend_adapter),
    progress: parsedJson(ProgressSchema, progress),
  };
}

export class RunRepository extends ByIdRepository<RunRow, Run> {
  private readonly insertStmt: Database.Statement;
  private readonly listStmt: Database.Statement;
  private readonly ownerStmt: Database.Statement;

  constructor(private readonly db: Database.Database) {
    super(db.prepare(`${SELECT_RUN} WHERE r.id = ?`), toRun, 'run');
    this.insertStmt = db.prepare(
      `INSERT INTO runs (id, name, config, status, created_at, owner_pid) VALUES (@id, @name, @config, 'queued', @createdAt, @ownerPid)`,
    );
    this.listStmt = db.prepare(`${SELECT_RUN} ORDER BY r.created_at DESC, r.rowid DESC`);
    this.ownerStmt = db.prepare(`SELECT owner_pid FROM runs WHERE id = ?`);
  }

  create(run: { id: string; name: string; config: RunConfig; createdAt: string; ownerPid: number | null }): Run {
    this.insertStmt.run({ ...run, config: JSON.stringify(run.config) });
    return this.require(run.id);
  }

  list(): Run[] {
    return (this.listStmt.all() as RunRow[]).map(toRun);
  }

  ownerPid(id: string): number | null {
    return ((this.ownerStmt.get(id) as { owner_pid: number | null } | undefined) ?? { owner_pid: null }).owner_pid;
  }

  update(id: string, patch: RunPatch): Run {
    const { backend, ...fields } = patch;
    updateColumns(this.db, 'runs', { ...patchColumns(fields), ...(backend !== undefined ? backendColumns(backend) : {}) }, { id });
    return this.require(id);
  }

  /** Deletes the run's row; its metrics, checkpoints and adapters go with it (ON DELETE CASCADE), its evaluations stay without it. */
  delete(id: string): void {
    this.require(id);
    this.db.prepare(`DELETE FROM runs WHERE id = ?`).run(id);
  }

  /**
   * Marks runs still 'queued' or 'running' whose owning process is gone as 'interrupted'. Called
   * when a RunManager starts: those runs lost their worker when the previous process died.
   */
  markInterrupted(isOwnerGone: (pid: number | null) => boolean, message: string): string[] {
    return markOrphans(this.db, 'runs', isOwnerGone, { status: 'interrupted', error: message, owner_pid: null });
  }
}
