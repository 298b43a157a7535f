// The runs table, mapped to src-shared's Run.
import type Database from 'better-sqlite3';
import { type RunConfig, StoredRunConfigSchema } from '../../src-shared/config.ts';
import { ByIdRepository } from './by-id.ts';
import { backendOf, camelCased, parsedJson } from './row-fields.ts';
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
    const columns: Record<string, unknown> = {};
    if (patch.status !== undefined) columns.status = patch.status;
    if (patch.backend !== undefined) {
      columns.backend_name = patch.backend?.name ?? null;
      columns.backend_adapter = patch.backend?.adapter ?? null;
    }
    if (patch.startedAt !== undefined) columns.started_at = patch.startedAt;
    if (patch.finishedAt !== undefined) columns.finished_at = patch.finishedAt;
    if (patch.error !== undefined) columns.error = patch.error;
    if (patch.progress !== undefined) columns.progress = patch.progress && JSON.stringify(patch.progress);
    if (patch.lastCheckpointStep !== undefined) columns.last_checkpoint_step = patch.lastCheckpointStep;
    if (patch.ownerPid !== undefined) columns.owner_pid = patch.ownerPid;
    const names = Object.keys(columns);
    if (names.length > 0) {
      const result = this.db.prepare(`UPDATE runs SET ${names.map((n) => `${n} = @${n}`).join(', ')} WHERE id = @id`).run({ ...columns, id });
      if (result.changes === 0) this.require(id);
    }
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
    const select = this.db.prepare(`SELECT id, owner_pid FROM runs WHERE status IN ('queued', 'running')`);
    const mark = this.db.prepare(`UPDATE runs SET status = 'interrupted', error = ?, owner_pid = NULL WHERE id = ?`);
    // IMMEDIATE: another process must not start a run between the check and the update.
    return this.db
      .transaction(() => {
        const candidates = select.all() as { id: string; owner_pid: number | null }[];
        const orphans = candidates.filter((c) => isOwnerGone(c.owner_pid)).map((c) => c.id);
        for (const id of orphans) mark.run(message, id);
        return orphans;
      })
      .immediate();
  }
}
